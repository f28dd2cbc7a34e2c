package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

func runStatus(c *ctl, args []string) int {
	r, err := c.call(&ipc.Request{Verb: ipc.VerbStatus, Names: args})
	if err != nil {
		return c.fail("status", err)
	}
	return writeStatus(c.stdout, r)
}

// writeStatus prints a status answer and returns supervisorctl's exit
// status for it: 4 when a name is unknown, else 3 when a listed process is
// not RUNNING.
func writeStatus(w io.Writer, r *ipc.Response) int {
	code := exitOK
	for _, b := range r.Results {
		fmt.Fprintf(w, "%s: ERROR (%s)\n", b.Name, b.Fault)
		code = exitUnreachable
	}
	width := 30
	for _, p := range r.Procs {
		width = max(width, len(p.Name))
	}
	for _, p := range r.Procs {
		fmt.Fprintf(w, "%-*s%-10s%s\n", width+3, p.Name, p.State, describe(p))
		if p.State == "BACKOFF" || p.State == "FATAL" {
			for _, line := range p.Stderr {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
		if p.State != "RUNNING" && code == exitOK {
			code = exitNotRunning
		}
	}
	return code
}

// describe is supervisorctl's description column ("pid 1234, uptime
// 0:01:02"), then this daemon's: CPUs, isolation, queue.
func describe(p ipc.ProcInfo) string {
	var parts []string
	switch p.State {
	case "RUNNING", "STOPPING":
		parts = append(parts, fmt.Sprintf("pid %d, uptime %s", p.Pid, uptime(time.Duration(p.UptimeNs))))
	case "BACKOFF", "FATAL":
		parts = append(parts, "exited too quickly: "+orUnknown(p.LastExit))
	case "STOPPED", "EXITED":
		if !p.Spawned {
			parts = append(parts, "Not started")
		} else {
			parts = append(parts, orUnknown(p.LastExit))
		}
	}
	if p.Worker {
		parts = append(parts, fmt.Sprintf("cpu %d", p.CPU))
	} else if p.Affinity != "" {
		parts = append(parts, "cpus "+p.Affinity)
	}
	if p.Isolation != "" {
		parts = append(parts, "isolation "+p.Isolation)
	}
	if p.Worker {
		q := fmt.Sprintf("queue %d", p.Queued)
		switch {
		case p.Running != 0 && p.Lane != "":
			q += fmt.Sprintf(", lane %s task %d", p.Lane, p.Running)
		case p.Running != 0:
			q += fmt.Sprintf(", running task %d", p.Running)
		case p.Lane != "" && p.Lane != "idle":
			q += ", lane " + p.Lane
		}
		if p.State == "RUNNING" && !p.Available {
			q += ", out of admission"
		}
		parts = append(parts, q)
	}
	if p.Restarts > 0 {
		parts = append(parts, fmt.Sprintf("restarts %d", p.Restarts))
	}
	return strings.Join(parts, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown error (try tail)"
	}
	return s
}

// uptime formats d as Python's timedelta does, which is what supervisorctl
// prints: 0:01:02, 1 day, 2:03:04, 3 days, 0:00:01.
func uptime(d time.Duration) string {
	sec := int64(max(d, 0) / time.Second)
	days, sec := sec/86400, sec%86400
	hms := fmt.Sprintf("%d:%02d:%02d", sec/3600, sec%3600/60, sec%60)
	switch days {
	case 0:
		return hms
	case 1:
		return "1 day, " + hms
	}
	return fmt.Sprintf("%d days, %s", days, hms)
}
