package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runModules(c *ctl, args []string) int {
	if len(args) > 0 {
		return c.usageError("modules", "modules takes no arguments")
	}
	r, err := c.call(&ipc.Request{Verb: ipc.VerbModules})
	if err != nil {
		return c.fail("modules", err)
	}
	writeModules(c.stdout, r.Modules)
	return exitOK
}

func writeModules(w io.Writer, mods []ipc.ModuleBrief) {
	if len(mods) == 0 {
		fmt.Fprintln(w, "no modules registered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tREGISTERED\tCALIBRATIONS\tEXPORTS")
	for _, m := range mods {
		exports := strings.Join(m.Exports, " ")
		if exports == "" {
			exports = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.Name, size(m.Size), m.SHA256[:min(12, len(m.SHA256))],
			m.Registered, m.Calibrations, exports)
	}
	tw.Flush()
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
