package main

import (
	"fmt"
	"strings"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// runShutdown asks the daemon to stop and waits until it has: it closes
// the connection only once every admitted call is answered and the children
// are gone, so a script can start a new daemon right after.
func runShutdown(c *ctl, args []string) int {
	if len(args) > 0 {
		return c.usageError("shutdown", "shutdown takes no arguments")
	}
	if c.interactive {
		fmt.Fprint(c.stdout, "Really shut the remote hyper-sched process down y/N? ")
		if !c.in.Scan() || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(c.in.Text())), "y") {
			return exitOK
		}
	}
	s, err := c.open(&ipc.Request{Verb: ipc.VerbShutdown})
	if err != nil {
		return c.fail("shutdown", err)
	}
	defer s.close()
	r, err := s.next()
	if err != nil {
		return c.fail("shutdown", err)
	}
	if len(r.Results) > 0 && r.Results[0].Fault == ipc.FaultShuttingDown {
		fmt.Fprintln(c.stdout, "ERROR: already shutting down")
		return exitOK
	}
	for {
		if _, err := s.next(); err != nil {
			break // EOF: the daemon is done
		}
	}
	fmt.Fprintln(c.stdout, "Shut down")
	return exitOK
}
