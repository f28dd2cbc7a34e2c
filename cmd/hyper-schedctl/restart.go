package main

import "github.com/hyper-sched/hyper-sched/ipc"

// runRestart is stop then start, done by the daemon in one request so that
// a worker is back in admission as soon as it can be.
func runRestart(c *ctl, args []string) int { return c.act(ipc.VerbRestart, args) }
