// Command hyper-schedctl controls a running hyper-sched daemon over its
// control socket, as supervisorctl controls supervisord: the same verbs
// (status, start, stop, restart, pid, tail, maintail, shutdown, version),
// the same output and the same exit statuses, plus modules.
//
// With a command it runs it and exits; without one it reads commands at a
// "hyper-sched> " prompt until EOF, quit or exit. It never talks HTTP and
// keeps no state: every command is one connection to the socket.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Exit statuses, supervisorctl's (which takes them from LSB init scripts).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotRunning  = 3 // status: a named process is not RUNNING
	exitUnreachable = 4 // the socket cannot be reached or refused us; status: no such process
	exitStartFailed = 7 // start: the process did not reach RUNNING
)

// defaultSocket is where hyper-sched puts its control socket with the
// default --runtime-dir.
const defaultSocket = "unix:///run/hyper-sched/control.sock"

// ctl is one invocation: where the daemon is and where output goes.
type ctl struct {
	ctx         context.Context
	sock        socket
	in          *bufio.Scanner // interactive input (and shutdown's question)
	stdout      io.Writer
	stderr      io.Writer
	interactive bool
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, rest, err := parseOptions(args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "hyper-schedctl: %v\n", err)
		fmt.Fprint(stderr, "run hyper-schedctl help for the commands\n")
		return exitUsage
	}
	c := &ctl{ctx: ctx, sock: opts, in: bufio.NewScanner(stdin), stdout: stdout, stderr: stderr}
	if len(rest) > 0 {
		return c.exec(rest)
	}
	return c.shell()
}

// parseOptions reads the options before the command: -s URL (else
// HYPER_SCHED_SOCKET, else the default) and -h.
func parseOptions(args []string, getenv func(string) (string, bool)) (socket, []string, error) {
	fs := flag.NewFlagSet("hyper-schedctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := fs.String("s", "", "control socket, unix:///path")
	if err := fs.Parse(args); err != nil {
		return socket{}, nil, err
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "s" })
	switch v, ok := getenv("HYPER_SCHED_SOCKET"); {
	case set:
		sock, err := parseSocket(*s, "-s")
		return sock, fs.Args(), err
	case ok && v != "":
		sock, err := parseSocket(v, "HYPER_SCHED_SOCKET")
		return sock, fs.Args(), err
	}
	sock, err := parseSocket(defaultSocket, "")
	return sock, fs.Args(), err
}

// exec runs one command line and returns its exit status.
func (c *ctl) exec(words []string) int {
	cmd, ok := lookup(words[0])
	if !ok {
		fmt.Fprintf(c.stderr, "hyper-schedctl: unknown command %q; run help for the list\n", words[0])
		return exitUsage
	}
	return cmd.run(c, words[1:])
}

// shell is the interactive prompt, which starts with status as
// supervisorctl's does.
func (c *ctl) shell() int {
	c.interactive = true
	code := c.exec([]string{"status"})
	for {
		fmt.Fprint(c.stdout, "hyper-sched> ")
		if !c.in.Scan() {
			fmt.Fprintln(c.stdout)
			return code
		}
		words := strings.Fields(c.in.Text())
		switch {
		case len(words) == 0:
			continue
		case words[0] == "quit" || words[0] == "exit":
			return code
		}
		code = c.exec(words)
	}
}

// usageError prints what was wrong and the command's usage.
func (c *ctl) usageError(cmd, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "hyper-schedctl: %s: %s\n", cmd, fmt.Sprintf(format, args...))
	if k, ok := lookup(cmd); ok {
		fmt.Fprintf(c.stderr, "usage: %s\n", k.usage)
	}
	return exitUsage
}

// fail prints a failure that is not the socket's or the usage's.
func (c *ctl) fail(cmd string, err error) int {
	if code, msg, ok := asExit(err); ok {
		fmt.Fprintf(c.stderr, "hyper-schedctl: %s\n", msg)
		return code
	}
	fmt.Fprintf(c.stderr, "hyper-schedctl: %s: %v\n", cmd, err)
	return exitFailure
}
