package main

import (
	"fmt"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runVersion(c *ctl, args []string) int {
	if len(args) > 0 {
		return c.usageError("version", "version takes no arguments")
	}
	r, err := c.call(&ipc.Request{Verb: ipc.VerbVersion})
	if err != nil {
		fmt.Fprintf(c.stdout, "hyper-schedctl %s (protocol %d)\n", version, ipc.Version)
		return c.fail("version", err)
	}
	fmt.Fprintf(c.stdout, "hyper-sched %s (hyper-schedctl %s, protocol %d)\n", r.Version, version, ipc.Version)
	return exitOK
}
