package main

import (
	"errors"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runMainTail(c *ctl, args []string) int {
	req, err := parseMainTail(args)
	if err != nil {
		return c.usageError("maintail", "%v", err)
	}
	return c.tail(req)
}

// parseMainTail reads maintail [-f|-N].
func parseMainTail(args []string) (*ipc.Request, error) {
	req := &ipc.Request{Verb: ipc.VerbMainTail}
	args, err := tailOption(req, args)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 {
		return nil, errors.New("too many arguments")
	}
	return req, nil
}
