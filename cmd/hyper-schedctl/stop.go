package main

import "github.com/hyper-sched/hyper-sched/ipc"

func runStop(c *ctl, args []string) int { return c.act(ipc.VerbStop, args) }
