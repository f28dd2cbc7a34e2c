package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runTail(c *ctl, args []string) int {
	req, err := parseTail(args)
	if err != nil {
		return c.usageError("tail", "%v", err)
	}
	return c.tail(req)
}

// parseTail reads tail [-f|-N] name [stderr|stdout]. The stream defaults
// to stderr, unlike supervisorctl's stdout: children's stdout is never
// captured, so stderr is the only log there is.
func parseTail(args []string) (*ipc.Request, error) {
	req := &ipc.Request{Verb: ipc.VerbTail}
	args, err := tailOption(req, args)
	if err != nil {
		return nil, err
	}
	switch len(args) {
	case 0:
		return nil, errors.New("tail needs a process name")
	case 1:
		req.Names = args
	case 2:
		req.Names, req.Stream = args[:1], strings.ToLower(args[1])
		if req.Stream != "stderr" && req.Stream != "stdout" {
			return nil, fmt.Errorf("bad stream %q: stderr or stdout", args[1])
		}
	default:
		return nil, errors.New("too many arguments")
	}
	return req, nil
}

// tailOption consumes a leading -f or -N.
func tailOption(req *ipc.Request, args []string) ([]string, error) {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
		return args, nil
	}
	opt := args[0][1:]
	if opt == "f" {
		req.Follow = true
		return args[1:], nil
	}
	n, err := strconv.Atoi(opt)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("bad option %q: -f, or -N for the last N lines", args[0])
	}
	req.Lines = n
	return args[1:], nil
}

// tail prints the lines of a tail or maintail request; with -f it keeps
// printing new ones until Ctrl-C, which ends only the follow (in the shell
// the prompt comes back).
func (c *ctl) tail(req *ipc.Request) int {
	cc := *c
	if req.Follow {
		ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt)
		defer stop()
		cc.ctx = ctx
		fmt.Fprintln(c.stderr, "==> Press Ctrl-C to exit <==")
	}
	s, err := cc.open(req)
	if err != nil {
		return c.fail(req.Verb, err)
	}
	defer s.close()
	for {
		r, err := s.next()
		switch {
		case err != nil && cc.ctx.Err() != nil:
			return exitOK // Ctrl-C
		case err != nil && req.Follow && errors.Is(err, io.EOF):
			fmt.Fprintf(c.stderr, "hyper-schedctl: %s: hyper-sched closed the connection (shut down?)\n", c.sock.url)
			return exitFailure
		case err != nil:
			if _, _, ok := asExit(err); !ok {
				err = fmt.Errorf("%s: read response: %w", c.sock.url, err)
			}
			return c.fail(req.Verb, err)
		case len(r.Results) > 0:
			return writeResults(c.stdout, r.Results)
		}
		if r.Skipped > 0 {
			fmt.Fprintf(c.stderr, "hyper-schedctl: %d lines came faster than they could be followed and were dropped\n", r.Skipped)
		}
		for _, line := range r.Lines {
			fmt.Fprintln(c.stdout, line)
		}
		if !req.Follow {
			return exitOK
		}
	}
}
