package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      string
		wantURL  string
		wantFrom string
		wantRest []string
		wantErr  string
	}{
		{"default", []string{"status"}, "", "unix:///run/hyper-sched/control.sock", "", []string{"status"}, ""},
		{"flag", []string{"-s", "unix:///tmp/x.sock", "pid"}, "", "unix:///tmp/x.sock", "-s", []string{"pid"}, ""},
		{"bare path", []string{"-s", "/tmp/x.sock"}, "", "unix:///tmp/x.sock", "-s", []string{}, ""},
		{"env", []string{"status", "worker-1"}, "unix:///e.sock", "unix:///e.sock", "HYPER_SCHED_SOCKET", []string{"status", "worker-1"}, ""},
		{"flag beats env", []string{"-s", "unix:///f.sock"}, "unix:///e.sock", "unix:///f.sock", "-s", []string{}, ""},
		{"verb flags are the verb's", []string{"tail", "-f", "benchd"}, "", "unix:///run/hyper-sched/control.sock", "", []string{"tail", "-f", "benchd"}, ""},
		{"http", []string{"-s", "http://localhost:9001"}, "", "", "", nil, `-s "http://localhost:9001": want unix:///path`},
		{"relative", []string{"-s", "unix://run/x.sock"}, "", "", "", nil, "must be absolute"},
		{"bad env", nil, "x.sock", "", "", nil, `HYPER_SCHED_SOCKET "x.sock"`},
		{"unknown flag", []string{"-x"}, "", "", "", nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) (string, bool) { return tt.env, tt.env != "" && k == "HYPER_SCHED_SOCKET" }
			sock, rest, err := parseOptions(tt.args, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sock.url != tt.wantURL || sock.source != tt.wantFrom || strings.Join(rest, " ") != strings.Join(tt.wantRest, " ") {
				t.Errorf("got %q from %q, rest %q; want %q from %q, rest %q", sock.url, sock.source, rest, tt.wantURL, tt.wantFrom, tt.wantRest)
			}
		})
	}
	if _, _, err := parseOptions([]string{"-h"}, func(string) (string, bool) { return "", false }); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
}

func TestParseTail(t *testing.T) {
	tests := []struct {
		args    string
		want    ipc.Request
		wantErr string
	}{
		{"worker-1", ipc.Request{Verb: "tail", Names: []string{"worker-1"}}, ""},
		{"-f worker-1", ipc.Request{Verb: "tail", Names: []string{"worker-1"}, Follow: true}, ""},
		{"-100 benchd stderr", ipc.Request{Verb: "tail", Names: []string{"benchd"}, Stream: "stderr", Lines: 100}, ""},
		{"benchd STDOUT", ipc.Request{Verb: "tail", Names: []string{"benchd"}, Stream: "stdout"}, ""},
		{"", ipc.Request{}, "needs a process name"},
		{"-f", ipc.Request{}, "needs a process name"},
		{"-x benchd", ipc.Request{}, `bad option "-x"`},
		{"-0 benchd", ipc.Request{}, `bad option "-0"`},
		{"benchd stdin", ipc.Request{}, `bad stream "stdin"`},
		{"a b c", ipc.Request{}, "too many"},
	}
	for _, tt := range tests {
		got, err := parseTail(strings.Fields(tt.args))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("tail %s: got error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Verb != tt.want.Verb || strings.Join(got.Names, ",") != strings.Join(tt.want.Names, ",") ||
			got.Stream != tt.want.Stream || got.Lines != tt.want.Lines || got.Follow != tt.want.Follow {
			t.Errorf("tail %s: got %+v %v, want %+v", tt.args, got, err, tt.want)
		}
	}
	for args, wantErr := range map[string]string{"": "", "-f": "", "-5": "", "x": "too many", "-f x": "too many", "-g": "bad option"} {
		_, err := parseMainTail(strings.Fields(args))
		if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("maintail %s: got %v, want %q", args, err, wantErr)
		}
	}
}

func TestUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                  "0:00:00",
		62 * time.Second:                   "0:01:02",
		-time.Second:                       "0:00:00",
		10*time.Hour + 59*time.Second:      "10:00:59",
		24*time.Hour + 3723*time.Second:    "1 day, 1:02:03",
		3*24*time.Hour + time.Second:       "3 days, 0:00:01",
		time.Second + 999*time.Millisecond: "0:00:01",
	} {
		if got := uptime(d); got != want {
			t.Errorf("uptime(%v): got %q, want %q", d, got, want)
		}
	}
}

// statusFixture has one process in every state status formats differently.
func statusFixture() *ipc.Response {
	return &ipc.Response{
		Results: []ipc.ProcResult{{Name: "worker-9", Fault: ipc.FaultBadName}},
		Procs: []ipc.ProcInfo{
			{Name: "benchd", State: "RUNNING", Pid: 1233, CPU: -1, Affinity: "0", Isolation: "cgroup v2", UptimeNs: int64(62 * time.Second), Spawned: true},
			{Name: "worker-1", State: "RUNNING", Pid: 1234, CPU: 1, Affinity: "1", Isolation: "cgroup v2 isolated", UptimeNs: int64(3723 * time.Second),
				Spawned: true, Worker: true, Available: true, Queued: 3, Running: 17, Restarts: 2},
			{Name: "worker-2", State: "STOPPED", CPU: 2, Isolation: "affinity", Spawned: true, Restarts: 1, LastExit: "exit status 0", Worker: true},
			{Name: "worker-3", State: "FATAL", CPU: 3, Isolation: "affinity", Spawned: true, Restarts: 5, LastExit: "exit status 2", Worker: true,
				Stderr: []string{"panic: cannot pin to cpu 3", "goroutine 1 [running]:"}},
			{Name: "worker-4", State: "BACKOFF", CPU: 4, Isolation: "affinity", Spawned: true, Restarts: 1, Worker: true},
			{Name: "worker-5", State: "STOPPED", CPU: 5, Isolation: "affinity", Worker: true},
			{Name: "worker-6", State: "STARTING", CPU: 6, Isolation: "affinity", Spawned: true, Worker: true},
		},
	}
}

func TestWriteStatus(t *testing.T) {
	var buf bytes.Buffer
	code := writeStatus(&buf, statusFixture())
	golden(t, "status.golden", buf.String())
	if code != exitUnreachable {
		t.Errorf("status with an unknown name: got exit %d, want %d", code, exitUnreachable)
	}
	// Names longer than 30 widen the column, as in supervisorctl.
	buf.Reset()
	writeStatus(&buf, &ipc.Response{Procs: []ipc.ProcInfo{{Name: strings.Repeat("w", 31), State: "RUNNING"}, {Name: "b", State: "RUNNING"}}})
	if lines := strings.Split(buf.String(), "\n"); strings.Index(lines[0], "RUNNING") != 34 || strings.Index(lines[1], "RUNNING") != 34 {
		t.Errorf("long name: got\n%s\nwant the state at column 34 on both lines", buf.String())
	}
	tests := []struct {
		states []string
		want   int
	}{
		{[]string{"RUNNING", "RUNNING"}, exitOK},
		{[]string{"RUNNING", "STOPPED"}, exitNotRunning},
		{[]string{"STARTING"}, exitNotRunning},
		{[]string{"FATAL"}, exitNotRunning},
		{nil, exitOK},
	}
	for _, tt := range tests {
		r := &ipc.Response{}
		for i, s := range tt.states {
			r.Procs = append(r.Procs, ipc.ProcInfo{Name: "worker-" + string(rune('0'+i)), State: s})
		}
		if got := writeStatus(&bytes.Buffer{}, r); got != tt.want {
			t.Errorf("status of %v: got exit %d, want %d", tt.states, got, tt.want)
		}
	}
}

func TestWriteResults(t *testing.T) {
	tests := []struct {
		name    string
		results []ipc.ProcResult
		out     string
		code    int
	}{
		{"started", []ipc.ProcResult{{Name: "worker-1", Op: "start", Action: "started"}}, "worker-1: started\n", exitOK},
		{"restart", []ipc.ProcResult{{Name: "worker-1", Op: "stop", Action: "stopped"}, {Name: "worker-1", Op: "start", Action: "started"}},
			"worker-1: stopped\nworker-1: started\n", exitOK},
		{"already started", []ipc.ProcResult{{Name: "benchd", Op: "start", Fault: ipc.FaultAlreadyStarted}}, "benchd: ERROR (already started)\n", exitOK},
		{"stop a stopped one", []ipc.ProcResult{{Name: "benchd", Op: "stop", Fault: ipc.FaultNotRunning}}, "benchd: ERROR (not running)\n", exitOK},
		{"spawn error", []ipc.ProcResult{{Name: "worker-1", Op: "start", Fault: ipc.FaultSpawn, Detail: "exit status 2"}},
			"worker-1: ERROR (spawn error: exit status 2)\n", exitStartFailed},
		{"no such process", []ipc.ProcResult{{Name: "worker-9", Fault: ipc.FaultBadName}, {Name: "worker-1", Op: "stop", Action: "stopped"}},
			"worker-9: ERROR (no such process)\nworker-1: stopped\n", exitFailure},
		{"shutting down", []ipc.ProcResult{{Name: "worker-1", Op: "start", Fault: ipc.FaultShuttingDown}}, "worker-1: ERROR (shutting down)\n", exitFailure},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if code := writeResults(&buf, tt.results); code != tt.code || buf.String() != tt.out {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, code, buf.String(), tt.code, tt.out)
		}
	}
}

func TestWriteModules(t *testing.T) {
	var buf bytes.Buffer
	writeModules(&buf, []ipc.ModuleBrief{
		{Name: "fib.wasm", SHA256: "3f2a9c1b04d2e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e", Size: 1234,
			Exports: []string{"add(i32,i32) i32", "fib_r(i32) i32"}, Registered: "2025-01-02T03:04:05Z", Calibrations: 2},
		{Name: "big.wasm", SHA256: "00", Size: 5 << 20, Registered: "2025-01-02T03:04:05Z"},
	})
	writeModules(&buf, nil)
	golden(t, "modules.golden", buf.String())
}

func TestUnreachable(t *testing.T) {
	def, _ := parseSocket(defaultSocket, "")
	env, _ := parseSocket("unix:///x/control.sock", "HYPER_SCHED_SOCKET")
	tests := []struct {
		sock socket
		err  error
		want string
	}{
		{def, syscall.ENOENT, "unix:///run/hyper-sched/control.sock: connect: no such file or directory (is hyper-sched running? set -s or HYPER_SCHED_SOCKET)"},
		{env, syscall.ENOENT, "unix:///x/control.sock: connect: no such file or directory (is hyper-sched running? the path came from HYPER_SCHED_SOCKET)"},
		{def, syscall.ECONNREFUSED, "unix:///run/hyper-sched/control.sock: connect: connection refused (nothing serves it: hyper-sched is not running, or died without removing it; set -s or HYPER_SCHED_SOCKET)"},
		{def, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)},
			"unix:///run/hyper-sched/control.sock: connect: permission denied (the socket is mode 0600, or 0660 with --control-group: run as root, as the daemon's user, or as a member of its control group)"},
	}
	for _, tt := range tests {
		code, msg, ok := asExit(unreachable(tt.sock, tt.err))
		if !ok || code != exitUnreachable || msg != tt.want {
			t.Errorf("got %d %q, want %d %q", code, msg, exitUnreachable, tt.want)
		}
	}
}

// fakeDaemon answers every control connection with answer(request).
func fakeDaemon(t *testing.T, answer func(*ipc.Request) []*ipc.Response) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				c := ipc.NewConn(nc, ipc.ControlMaxFrame)
				if _, err := ipc.ReadHello(c); err != nil {
					return
				}
				var req ipc.Request
				if _, err := c.Read(); err != nil || c.Decode(&req) != nil {
					return
				}
				c.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "supervisor"})
				for _, r := range answer(&req) {
					c.Write(ipc.KindResponse, r)
				}
			}()
		}
	}()
	return "unix://" + path
}

func TestRunAgainstFake(t *testing.T) {
	url := fakeDaemon(t, func(req *ipc.Request) []*ipc.Response {
		switch {
		case req.Verb == "pid" && len(req.Names) == 0:
			return []*ipc.Response{{Pid: 4321}}
		case req.Verb == "status":
			return []*ipc.Response{{Procs: []ipc.ProcInfo{{Name: "worker-1", State: "STOPPED", Worker: true, CPU: 1}}}}
		case req.Verb == "version":
			return []*ipc.Response{{Denied: true, Err: "permission denied: uid 65534 may not use the control socket"}}
		}
		return []*ipc.Response{{Err: "unknown command"}}
	})
	tests := []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-s", url, "pid"}, "", exitOK, "4321\n", ""},
		{[]string{"-s", url, "status"}, "", exitNotRunning, "STOPPED", ""},
		{[]string{"-s", url, "version"}, "", exitUnreachable, "", "refused by hyper-sched: permission denied: uid 65534"},
		{[]string{"-s", url, "frobnicate"}, "", exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"-s", url, "stop"}, "", exitUsage, "", "usage: stop name...|all"},
		{[]string{"-s", url, "help", "tail"}, "", exitOK, "tail [-f|-N] name [stderr|stdout]", ""},
		{[]string{"-h"}, "", exitOK, "Exit status, as supervisorctl's", ""},
		{[]string{"-s", url}, "pid\n\nhelp nope\nquit\nstatus\n", exitUsage, "hyper-sched> 4321\nhyper-sched> hyper-sched> hyper-sched> ", ""},
		{[]string{"-s", url}, "pid\n", exitOK, "hyper-sched> 4321\nhyper-sched> \n", ""},
		{[]string{"-s", "unix:///nonexistent/control.sock", "status"}, "", exitUnreachable, "",
			"unix:///nonexistent/control.sock: connect: no such file or directory (is hyper-sched running? the path came from -s)"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("%q <%q: got %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
				tt.args, tt.stdin, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestReplyError checks how every command prints a daemon's Response.Err:
// "hyper-schedctl: VERB: ERR" on stderr, nothing on stdout, exit status 1.
func TestReplyError(t *testing.T) {
	url := fakeDaemon(t, func(req *ipc.Request) []*ipc.Response {
		return []*ipc.Response{{Err: req.Verb + " went wrong"}}
	})
	for _, args := range [][]string{
		{"status"}, {"status", "worker-1"}, {"pid"}, {"pid", "worker-1"}, {"modules"},
		{"start", "all"}, {"stop", "worker-1"}, {"restart", "benchd"}, {"shutdown"},
		{"tail", "worker-1"}, {"tail", "-5", "benchd", "stdout"}, {"maintail"}, {"maintail", "-3"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"-s", url}, args...), strings.NewReader(""), &stdout, &stderr)
		want := fmt.Sprintf("hyper-schedctl: %s: %s went wrong\n", args[0], args[0])
		if code != exitFailure || stdout.String() != "" || stderr.String() != want {
			t.Errorf("%q: got exit %d, stdout %q, stderr %q; want exit %d, no stdout, stderr %q",
				args, code, stdout.String(), stderr.String(), exitFailure, want)
		}
	}
}
