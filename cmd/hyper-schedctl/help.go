package main

import (
	"fmt"
	"strings"
)

// command is one verb of hyper-schedctl.
type command struct {
	name  string
	usage string // the synopsis
	help  string // what it does, for help VERB
	run   func(c *ctl, args []string) int
}

// commandList is every verb, in the order help lists them.
func commandList() []command {
	return []command{
		{"status", "status [name...]", "State of benchd and every worker lane (worker-<cpu>:<lane>; worker-<cpu> names\n" +
			"all lanes of a CPU), or of the named ones, as supervisorctl shows it, with each\n" +
			"process's CPUs, isolation, queue and lane state (the task it runs or holds\n" +
			"stopped). Under a process that exited too quickly (BACKOFF, FATAL) come its last\n" +
			"stderr lines.\n" +
			"Exit status 3 if a named (or, with no name, any) process is not RUNNING, 4 for\n" +
			"a name that does not exist.", runStatus},
		{"start", "start name...|all", "Start a STOPPED or FATAL process and wait until it is RUNNING; a worker is\n" +
			"then back in admission. Exit status 7 if it does not get there.", runStart},
		{"stop", "stop name...|all", "Stop a process and wait until it is STOPPED. A lane holding a call is killed and\n" +
			"the call answered Error_Worker_lost. Once every lane of a CPU is stopped, the\n" +
			"core leaves admission: its queued calls move to other cores, or are answered\n" +
			"when none can meet their deadline. It stays STOPPED until start.", runStop},
		{"restart", "restart name...|all", "stop, then start.", runRestart},
		{"pid", "pid [name...|all]", "The daemon's pid, or each named process's (0 when it is not running).", runPid},
		{"tail", "tail [-f|-N] name [stderr|stdout]", "The last 20 (or N) lines a process wrote to stderr; -f follows, until Ctrl-C.\n" +
			"Children's stdout is not captured: it is /dev/null, their logs go to stderr.", runTail},
		{"maintail", "maintail [-f|-N]", "The daemon's own last 20 (or N) log lines; -f follows, until Ctrl-C.", runMainTail},
		{"modules", "modules", "The registered modules: size, sha256, exports.", runModules},
		{"shutdown", "shutdown", "Stop the daemon as SIGTERM does: new calls are refused, every admitted call\n" +
			"is answered, the children stop. Returns when the daemon is done.", runShutdown},
		{"version", "version", "The versions of the daemon, of hyper-schedctl and of their protocol.", runVersion},
		{"help", "help [command]", "The commands, or one command's description.", runHelp},
	}
}

func lookup(name string) (command, bool) {
	for _, k := range commandList() {
		if k.name == name {
			return k, true
		}
	}
	return command{}, false
}

const usage = `hyper-schedctl controls a running hyper-sched daemon, as supervisorctl does supervisord.

Usage:
  hyper-schedctl [-s unix:///path] command [args]
  hyper-schedctl [-s unix:///path]        a hyper-sched> prompt; quit, exit or ^D leave it

Commands:
  status [name...]                    process states (benchd, worker-<cpu>[:<lane>])
  start name...|all                   start and wait until RUNNING (also from FATAL)
  stop name...|all                    stop; a worker's running call finishes first
  restart name...|all                 stop, then start
  pid [name...|all]                   the daemon's pid, or the processes'
  tail [-f|-N] name [stderr|stdout]   a process's last stderr lines
  maintail [-f|-N]                    the daemon's own last log lines
  modules                             the registered modules
  shutdown                            stop the daemon, answering every admitted call
  version                             versions of the daemon and of this tool
  help [command]                      this text, or one command's

Options:
  -s unix:///path   the control socket; default $HYPER_SCHED_SOCKET, else
                    unix:///run/hyper-sched/control.sock (<runtime-dir>/control.sock)

Exit status, as supervisorctl's:
  0  success
  1  failure: no such process, the daemon failed the command, ...
  2  usage error
  3  status: a named (or, with no name, any) process is not RUNNING
  4  the control socket cannot be reached, or refused this user;
     status: no such process
  7  start, restart: the process did not reach RUNNING
`

func runHelp(c *ctl, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	k, ok := lookup(args[0])
	if !ok || len(args) > 1 {
		return c.usageError("help", "no command %q", strings.Join(args, " "))
	}
	fmt.Fprintf(c.stdout, "%s\n\n%s\n", k.usage, k.help)
	return exitOK
}
