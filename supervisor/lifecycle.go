package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"syscall"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// supervise keeps c running until ctx ends or c is stopped: spawn, bring
// up, serve frames, and on exit decide with Next what comes after.
func (s *Supervisor) supervise(ctx context.Context, c *child) {
	for ctx.Err() == nil {
		s.mu.Lock()
		if !c.wanted {
			s.mu.Unlock()
			if !s.waitWanted(ctx, c) {
				return
			}
			continue
		}
		s.transition(c, EvStart)
		c.gen++
		gen := c.gen
		c.started = time.Now()
		offCore := c.core >= 0 && c.restarts > 0 // a lane respawned beside its running siblings
		s.mu.Unlock()

		sp, err := s.spawn(ctx, c, offCore)
		var loaded map[string]string
		if err == nil {
			loaded, err = s.bringUp(c, sp)
		}
		if err == nil && sp.offCore {
			// Up and idle: onto its CPU, in its cgroup, with its policy
			// (SCHED_OTHER, or SCHED_FIFO where real-time is on), no longer
			// the SCHED_IDLE it warmed up under.
			if perr := isolate.SetNormalPolicy(sp.proc.Pid); perr != nil {
				c.log.Warn("place respawned lane", "pid", sp.proc.Pid, "err", perr)
			}
			if perr := s.place(c, sp.proc.Pid); perr != nil {
				c.log.Info("place respawned lane", "pid", sp.proc.Pid, "note", perr)
			}
		}
		if err != nil {
			c.log.Error("start", "err", err)
			if sp != nil {
				sp.abort()
			}
			s.exited(c, gen, err.Error(), false)
		} else {
			out := newOutbox()
			go func() {
				if err := out.run(sp.conn); err != nil {
					sp.nc.Close() // the reader sees it and the exit path runs
				}
			}()
			// Shutdown (ctx) or stop may have come while this child started:
			// closing its socket is its stop signal, now or later.
			stopOnCancel := context.AfterFunc(ctx, func() { sp.nc.Close() })
			s.mu.Lock()
			if !c.wanted || c.state == Stopping {
				sp.nc.Close()
			}
			c.pid, c.nc, c.proc, c.out = sp.proc.Pid, sp.nc, sp.proc, out
			c.upAt = time.Now()
			var lp *laneProc
			if c.core >= 0 {
				lp = &laneProc{c: c, proc: sp.proc, out: out, nc: sp.nc}
				c.lp = lp
			}
			if c.core >= 0 {
				// Modules registered while this worker was loading.
				for _, m := range s.store.all() {
					if loaded[m.Name] != m.SHA256 {
						out.push(ipc.KindLoad, m.loadFrame())
					}
				}
			}
			s.transition(c, EvUp)
			if c.state == Running { // not when stopped while starting
				s.childUp(c)
			}
			s.mu.Unlock()
			c.log.Info("running", "pid", sp.proc.Pid)

			rerr := s.serveChild(c, lp, sp.conn)
			stopOnCancel()
			out.close()
			sp.nc.Close()
			werr := s.reap(c, sp)
			s.exited(c, gen, describeExit(rerr, werr), killed(werr))
		}
		if !s.backoff(ctx, c) {
			return
		}
	}
}

// bringUp finishes a start: a worker compiles every registered module
// before it joins admission, so its first job never waits for a compile.
// It returns what was loaded (name → sha256).
func (s *Supervisor) bringUp(c *child, sp *spawned) (map[string]string, error) {
	loaded := map[string]string{}
	if c.core < 0 {
		return loaded, nil
	}
	for _, m := range s.store.all() {
		if err := sp.conn.Write(ipc.KindLoad, m.loadFrame()); err != nil {
			return nil, fmt.Errorf("load %s: %w", m.Name, err)
		}
		k, err := sp.conn.Read()
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", m.Name, err)
		}
		var l ipc.Loaded
		if k != ipc.KindLoaded {
			return nil, fmt.Errorf("load %s: got %v frame", m.Name, k)
		}
		if err := sp.conn.Decode(&l); err != nil {
			return nil, err
		}
		if l.Err != "" {
			c.log.Error("load module", "module", m.Name, "err", l.Err)
		}
		loaded[m.Name] = m.SHA256
	}
	return loaded, nil
}

// serveChild reads c's frames until its connection fails; lp is c's lane
// generation for a worker lane.
func (s *Supervisor) serveChild(c *child, lp *laneProc, conn *ipc.Conn) error {
	for {
		k, err := conn.Read()
		if err != nil {
			return err
		}
		switch k {
		case ipc.KindResult:
			if lp == nil {
				return fmt.Errorf("unexpected %v frame from %s", k, c.name)
			}
			res := new(ipc.Result) // handed to the call's goroutine
			if err := conn.Decode(res); err != nil {
				return err
			}
			c.resultFor.Store(res.ID) // seen by the kill timer (Finishing)
			if !s.disp.Result(c.core, c.lane, lp, res.ID, res) {
				c.log.Warn("result for a job not running", "task", res.ID)
			}
		case ipc.KindCalibrated, ipc.KindProgress:
			if err := s.bench.deliver(k, conn); err != nil {
				return err
			}
		case ipc.KindLoaded:
			var l ipc.Loaded
			if err := conn.Decode(&l); err != nil {
				return err
			}
			if c.core < 0 {
				s.bench.reply(&l)
			} else if l.Err != "" {
				c.log.Error("load module", "module", l.Name, "err", l.Err)
			}
		default:
			return fmt.Errorf("unexpected %v frame from %s", k, c.name)
		}
	}
}

func describeExit(rerr, werr error) string {
	var ee interface{ ExitCode() int }
	switch {
	case werr != nil && errors.As(werr, &ee):
		return werr.Error()
	case rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, net.ErrClosed): // closed by us: a stop
		return "connection: " + rerr.Error()
	case werr != nil:
		return werr.Error()
	}
	return "exit status 0"
}

// killed reports whether a child died of SIGKILL: our deadline kill, an
// operator's kill -9 or the OOM killer, never a failure to start.
func killed(werr error) bool {
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}

// exited records that generation gen of c is gone and fails over its work.
// An exit counts as a failed start (supervisord's startsecs) when the child
// never reached RUNNING, or exited on its own within startSecs of starting;
// a SIGKILL after RUNNING is an ordinary exit, restarted at once.
func (s *Supervisor) exited(c *child, gen int, why string, sigkill bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.lastExit = why
	c.pid, c.nc, c.proc, c.out = 0, nil, nil, nil
	quick := c.state == Starting || (time.Since(c.started) < startSecs && !sigkill)
	if quick {
		c.failures++
	} else {
		c.failures = 0
	}
	if !c.killedByUs.Load() {
		c.log.Warn("exited", "why", why)
	}
	s.transition(c, EvExit)
	s.childDown(c, why)
	c.killedByUs.Store(false)
	c.restarts++
}

// backoff waits before the next start as Next decided: none after an
// ordinary exit (a deadline kill must come back fast), growing delays after
// quick failures, and FATAL after startRetries of them.
func (s *Supervisor) backoff(ctx context.Context, c *child) bool {
	s.mu.Lock()
	state, failures := c.state, c.failures
	if state == Backoff && failures >= startRetries {
		s.transition(c, EvGiveUp)
		c.log.Error("giving up", "failures", failures, "last", c.lastExit)
		c.wanted = false
		s.coreDownIfUnwanted(c, "it is FATAL")
		s.loseBestEffortIfNoWorker()
		s.mu.Unlock()
		return s.waitWanted(ctx, c)
	}
	s.mu.Unlock()
	if state != Backoff {
		return ctx.Err() == nil
	}
	delay := time.Duration(1<<min(failures, 6)) * 50 * time.Millisecond
	select {
	case <-ctx.Done():
		return false
	case <-time.After(delay):
	}
	s.mu.Lock()
	s.transition(c, EvRetry)
	s.mu.Unlock()
	return true
}

// waitWanted blocks until c is wanted again (hyper-schedctl start) or ctx ends.
func (s *Supervisor) waitWanted(ctx context.Context, c *child) bool {
	return s.waitChild(ctx.Done(), 0, func() bool { return c.wanted })
}

// transition applies e to c; s.mu must be held.
func (s *Supervisor) transition(c *child, e Event) {
	quick := e == EvExit && c.failures > 0
	next, ok := Next(c.state, e, c.wanted, quick)
	if !ok {
		c.log.Debug("ignored transition", "state", c.state, "event", e)
		return
	}
	if next != c.state {
		c.state = next
		s.broadcast() // hyper-schedctl start/stop wait for states (FATAL too)
	}
}

// reap returns the exit of a child whose connection ended. A stopping
// child exits 0 on its own once its socket closed, and gets stopGrace to do
// so; any other is of no use and is killed at once.
func (s *Supervisor) reap(c *child, sp *spawned) error {
	s.mu.Lock()
	stopping := c.state == Stopping
	s.mu.Unlock()
	if stopping {
		select {
		case err := <-sp.wait:
			return err
		case <-time.After(stopGrace):
		}
	}
	sp.proc.Kill()
	return <-sp.wait
}
