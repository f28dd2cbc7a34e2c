package supervisor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// hangingExe is a child binary that never answers its hello: a child hung
// in its start.
func hangingExe(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "hang")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitState waits until c is in state with a process, or fails.
func waitState(t *testing.T, s *Supervisor, c *child, state State) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		ok := c.state == state && c.proc != nil
		s.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatalf("%s never %v with a process", c.name, state)
}

// A child hung in its start (before its hello, or loading modules) is
// stopped at once by hyper-schedctl stop, and by a shutdown: its process
// is known from its start. Before, the process became the child's only
// once it was up: a stop waited 5 s, found nothing to kill, waited 5 s
// more and gave up; a shutdown waited for the hello's 10 s timeout.
func TestStopDuringStart(t *testing.T) {
	for _, how := range []string{"stop", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			s := testSupervisor(t)
			s.cfg.Exe = hangingExe(t)
			s.bench.s = s
			c := s.benchd
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() { defer close(done); s.supervise(ctx, c) }()
			waitState(t, s, c, Starting)
			s.mu.Lock()
			pid := c.pid
			s.mu.Unlock()
			start := time.Now()
			if how == "stop" {
				res := s.stopProc(nil, c)
				if res.Fault != "" || res.Action != "stopped" {
					t.Errorf("stop: %+v", res)
				}
			} else {
				cancel()
				select {
				case <-done:
				case <-time.After(stopGrace + 2*time.Second):
					t.Fatal("supervise still runs after its context ended")
				}
			}
			if took := time.Since(start); took > stopGrace {
				t.Errorf("%s of a child hung in its start took %v", how, took)
			}
			if err := syscallKill0(pid); err == nil {
				t.Errorf("the hung child (pid %d) is still alive", pid)
			}
			cancel()
			<-done
		})
	}
}

// A module a starting lane cannot load fails the start: the lane is not
// up with the module missing (calls routed to it would all fail).
func TestBringUpFailedLoad(t *testing.T) {
	s := laneSupervisor(t, 1)
	m := fibModule(t)
	unlock, err := s.store.lock(context.Background(), m.Name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.store.commit([]*Module{m})
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	c.finish()
	sup, lane := net.Pipe()
	defer sup.Close()
	defer lane.Close()
	sp := &spawned{conn: ipc.NewConn(sup, 0), nc: sup, offCore: false}
	go func() {
		lc := ipc.NewConn(lane, 0)
		var l ipc.Load
		if k, err := lc.Read(); err != nil || k != ipc.KindLoad || lc.Decode(&l) != nil {
			return
		}
		lc.Write(ipc.KindLoaded, &ipc.Loaded{ID: l.ID, Name: l.Name, Err: "out of memory"})
	}()
	loaded, err := s.bringUp(s.workers[0], sp)
	if err == nil || !strings.Contains(err.Error(), "load fib.wasm: out of memory") {
		t.Fatalf("bringUp: %v %v, want the load's failure", loaded, err)
	}
}

// With every worker FATAL or stopped, a call with a deadline is refused
// 503 Error_Worker_lost saying no worker is available — not
// Error_Unschedulable with a Retry-After, as if the machine were only full.
func TestNoWorkerAvailable(t *testing.T) {
	r := newHonRig(t, 1, time.Millisecond)
	r.s.mu.Lock()
	for _, w := range r.s.workers {
		w.wanted, w.state = false, Fatal
	}
	r.s.mu.Unlock()
	for _, deadline := range []time.Duration{0, 40 * hms} {
		_, err := r.s.Call(context.Background(), r.spec("", 1, hms, deadline))
		if apierr.CodeOf(err) != apierr.WorkerLost || !strings.Contains(err.Error(), "no worker is available") {
			t.Errorf("deadline %v: got %v, want Error_Worker_lost, no worker available", deadline, err)
		}
	}
}

func syscallKill0(pid int) error { return syscall.Kill(pid, 0) }
