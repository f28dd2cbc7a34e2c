package main

import (
	"fmt"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runPid(c *ctl, args []string) int {
	r, err := c.call(&ipc.Request{Verb: ipc.VerbPid, Names: args})
	if err != nil {
		return c.fail("pid", err)
	}
	if len(args) == 0 {
		fmt.Fprintln(c.stdout, r.Pid)
		return exitOK
	}
	code := exitOK
	for _, b := range r.Results {
		fmt.Fprintf(c.stdout, "No such process %s\n", b.Name)
		code = exitFailure
	}
	for _, p := range r.Procs {
		fmt.Fprintln(c.stdout, p.Pid)
	}
	return code
}
