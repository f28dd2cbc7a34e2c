package main

import (
	"fmt"
	"io"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runStart(c *ctl, args []string) int { return c.act(ipc.VerbStart, args) }

// act sends start, stop or restart and prints one line per process and
// action, as supervisorctl does.
func (c *ctl) act(verb string, names []string) int {
	if len(names) == 0 {
		return c.usageError(verb, "%s needs a process name, or all", verb)
	}
	r, err := c.call(&ipc.Request{Verb: verb, Names: names})
	if err != nil {
		return c.fail(verb, err)
	}
	return writeResults(c.stdout, r.Results)
}

// writeResults prints "name: started" or "name: ERROR (fault)" lines and
// returns the exit status of the last failure, with supervisorctl's
// leniency: starting a started process and stopping a stopped one succeed.
func writeResults(w io.Writer, results []ipc.ProcResult) int {
	code := exitOK
	for _, r := range results {
		if r.Fault == "" {
			fmt.Fprintf(w, "%s: %s\n", r.Name, r.Action)
			continue
		}
		if r.Detail != "" {
			fmt.Fprintf(w, "%s: ERROR (%s: %s)\n", r.Name, r.Fault, r.Detail)
		} else {
			fmt.Fprintf(w, "%s: ERROR (%s)\n", r.Name, r.Fault)
		}
		if c := faultStatus(r); c != exitOK {
			code = c
		}
	}
	return code
}

func faultStatus(r ipc.ProcResult) int {
	switch {
	case r.Fault == ipc.FaultAlreadyStarted && r.Op == ipc.VerbStart,
		r.Fault == ipc.FaultNotRunning && r.Op == ipc.VerbStop:
		return exitOK
	case r.Op == ipc.VerbStart && (r.Fault == ipc.FaultSpawn || r.Fault == ipc.FaultNotRunning):
		return exitStartFailed
	}
	return exitFailure
}
