package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
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
		c.tookJob.Store(false)
		_, c.errsAt = c.errs.last(0)
		offCore := c.core >= 0 && c.restarts > 0 // a lane respawned beside its running siblings
		s.mu.Unlock()

		sp, err := s.spawn(ctx, c, gen, offCore)
		if err != nil {
			c.log.Error("start", "err", err)
			kind := exitStartFailed
			if isResourceErr(err) {
				kind = exitResource
			}
			s.exited(c, gen, err.Error(), kind)
		} else {
			err = s.serve(c, gen, sp)
			sp.unwatch()
			sp.nc.Close()
			werr := s.reap(c, sp)
			s.exited(c, gen, describeExit(err, werr), exitKindOf(err, werr))
		}
		if !s.backoff(ctx, c) {
			return
		}
	}
}

// serve brings a spawned child up and serves its frames until its
// connection ends; an error before it was up is a startError.
func (s *Supervisor) serve(c *child, gen int, sp *spawned) error {
	loaded, err := s.bringUp(c, sp)
	if err != nil {
		return startError{err}
	}
	// s.mu held (bringUp).
	// A failed write closes the socket: the reader sees it and the exit
	// path runs.
	out := newOutbox(sp.conn, func() { sp.nc.Close() })
	go out.run()
	defer out.close()
	if !c.wanted || c.state == Stopping || c.gen != gen {
		s.mu.Unlock()
		return net.ErrClosed // stopped while it started: a clean stop
	}
	c.out, c.loaded = out, loaded
	c.upAt = time.Now()
	var lp *laneProc
	if c.core >= 0 {
		lp = &laneProc{c: c, proc: sp.proc, out: out, nc: sp.nc, pc: sp.pc}
		c.lp = lp
	}
	s.transition(c, EvUp)
	if c.state == Running {
		s.childUp(c)
	}
	s.mu.Unlock()
	c.log.Info("running", "pid", sp.proc.Pid)
	sp.pc.live.Store(true)
	return s.serveChild(c, lp, sp.conn)
}

// startError is an error of a child before it was up: a failed start.
type startError struct{ error }

func (e startError) Unwrap() error { return e.error }

// bringUp finishes a start: a worker compiles every registered module (and
// every one being installed) before it joins admission, so its first job
// never waits for a compile and a load never delays a job unseen. A module
// that fails to load fails the start. On success it returns what was
// loaded (name → sha256) with s.mu held, taken for the last check that
// nothing is missing: the caller marks the child up under it, so a module
// installed after that check finds the lane up (installOnWorkers).
func (s *Supervisor) bringUp(c *child, sp *spawned) (map[string]string, error) {
	loaded := map[string]string{}
	if c.core < 0 {
		s.mu.Lock()
		return loaded, nil
	}
	placed, probed := !sp.offCore, false
	for {
		s.mu.Lock()
		missing := s.missing(loaded)
		if len(missing) == 0 && placed {
			if !probed && s.claimProbe(c) {
				s.mu.Unlock()
				pc, err := probe(sp, max(s.cfg.WorkerSpin, 0))
				s.mu.Lock()
				s.probedCore(c, pc, err)
				s.mu.Unlock()
				if err != nil {
					return nil, fmt.Errorf("measure the dispatch overhead: %w", err)
				}
				probed = true
				continue
			}
			if s.probingCore(c) {
				// Another lane of its CPU measures the hop: it takes no
				// call before that is done, which would time them both.
				ch := s.wake
				s.mu.Unlock()
				<-ch
				continue
			}
			return loaded, nil
		}
		s.mu.Unlock()
		for _, m := range missing {
			f, err := s.loadFrameOf(m)
			if err == nil {
				err = loadOn(sp, m, f)
			}
			if err != nil {
				if !s.wanted(m) {
					continue // deleted or replaced meanwhile, its file with it
				}
				return nil, err
			}
			loaded[m.Name] = m.SHA256
		}
		if !placed {
			// Up and idle: onto its CPU, in its cgroup, with its policy
			// (SCHED_OTHER, or SCHED_FIFO where real-time is on), no
			// longer the SCHED_IDLE it warmed up under.
			s.settle(c, sp.proc.Pid)
			placed = true
		}
	}
}

// missing returns the modules registered or being installed that loaded
// does not have in their current version; s.mu held.
func (s *Supervisor) missing(loaded map[string]string) []*Module {
	var out []*Module
	for _, m := range s.store.all() {
		if loaded[m.Name] != m.SHA256 {
			out = append(out, m)
		}
	}
	for _, m := range s.installing {
		if loaded[m.Name] != m.SHA256 && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// wanted reports whether m is still registered or being installed.
func (s *Supervisor) wanted(m *Module) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.store.get(m.Name); ok && cur.SHA256 == m.SHA256 {
		return true
	}
	i := s.installing[m.Name]
	return i != nil && i.SHA256 == m.SHA256
}

// loadTimeout bounds one module load in a starting lane: a compile (a
// cache hit after benchd compiled it) and the answer.
const loadTimeout = compileLimit

// loadFrameOf reads m's bytes for a lane being started. Out of
// descriptors to open its file, it uses the reserve kept for starting
// children, as spawn does: a lane killed while connections hold every
// descriptor comes back with its modules.
func (s *Supervisor) loadFrameOf(m *Module) (f *ipc.Load, err error) {
	err = s.fds.retry(func() (err error) {
		f, err = m.loadFrame()
		return err
	})
	return f, err
}

// loadOn loads m, whose frame is f, into a lane that is not up yet,
// waiting for its answer.
func loadOn(sp *spawned, m *Module, f *ipc.Load) error {
	sp.nc.SetDeadline(time.Now().Add(loadTimeout))
	defer sp.nc.SetDeadline(time.Time{})
	if err := sp.conn.Write(ipc.KindLoad, f); err != nil {
		return fmt.Errorf("load %s: %w", m.Name, err)
	}
	k, err := sp.conn.Read()
	if err != nil {
		return fmt.Errorf("load %s: %w", m.Name, err)
	}
	if k != ipc.KindLoaded {
		return fmt.Errorf("load %s: got %v frame", m.Name, k)
	}
	var l ipc.Loaded
	if err := sp.conn.Decode(&l); err != nil {
		return fmt.Errorf("load %s: %w", m.Name, err)
	}
	if l.Err != "" {
		return fmt.Errorf("load %s: %s", m.Name, l.Err)
	}
	return nil
}

// settle gives a lane that warmed up off its CPU its place: its policy
// back from SCHED_IDLE (at laneNice), then its cgroup, CPU and real-time
// priority.
func (s *Supervisor) settle(c *child, pid int) {
	if err := isolate.SetNormalPolicy(pid, laneNice); err != nil {
		c.log.Warn("place lane", "pid", pid, "err", err)
	}
	if err := s.place(c, pid); err != nil {
		c.log.Info("place lane", "pid", pid, "note", err)
	}
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
			} else {
				s.loadedReply(c, &l)
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
		if errors.As(rerr, new(startError)) {
			return werr.Error() + " while starting: " + rerr.Error()
		}
		return werr.Error()
	case rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, net.ErrClosed): // closed by us: a stop
		return "connection: " + rerr.Error()
	case werr != nil:
		return werr.Error()
	}
	return "exit status 0"
}

// exitKind is how an exit counts for what comes after it.
type exitKind uint8

const (
	exitOrdinary    exitKind = iota // after it was up: restarted at once (unless quick)
	exitKilled                      // SIGKILL: ours, an operator's, the OOM killer's; never a failed start
	exitStartFailed                 // never came up: a failed start
	exitResource                    // could not start for want of descriptors or memory: retried, never FATAL
)

// exitKindOf classifies the end of a child that was spawned: rerr is what
// ended serving it, werr its exit.
func exitKindOf(rerr, werr error) exitKind {
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return exitKilled
		}
	}
	if errors.As(rerr, new(startError)) {
		return exitStartFailed
	}
	return exitOrdinary
}

// exited records that generation gen of c is gone and fails over its work.
// An exit counts as a failed start (supervisord's startsecs) when the child
// never came up, or exited on its own within startSecs of starting
// without having taken a job: a job that crashes its lane is that job's
// failure, answered as a lost call, and the lane comes back at once.
// A SIGKILL is an ordinary exit; a start that failed for want of
// resources is retried after a growing delay but never makes c FATAL.
func (s *Supervisor) exited(c *child, gen int, why string, kind exitKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != c.gen {
		return
	}
	if last := c.errs.lastSince(c.errsAt); last != "" && kind != exitKilled && !c.killedByUs.Load() {
		why += "; last stderr line: " + last
	}
	c.lastExit = why
	c.pid, c.nc, c.proc, c.out, c.loaded = 0, nil, nil, nil, nil
	for id, ch := range c.loads {
		close(ch) // its install finds the lane gone
		delete(c.loads, id)
	}
	stopping := c.state == Stopping || !c.wanted
	switch {
	case kind == exitResource:
		c.resourceFails++
	case kind == exitStartFailed && !stopping,
		kind == exitOrdinary && time.Since(c.started) < startSecs && !c.tookJob.Load():
		c.failures++
		c.resourceFails = 0
	default:
		c.failures, c.resourceFails = 0, 0
	}
	switch {
	case stopping:
		c.log.Info("stopped", "how", why)
	case c.killedByUs.Load():
		c.log.Info("exited", "why", why, "note", "killed by the supervisor")
	default:
		c.log.Warn("exited", "why", why)
	}
	s.transition(c, EvExit)
	s.childDown(c, why)
	c.killedByUs.Store(false)
	c.restarts++
}

// backoff waits before the next start as Next decided: none after an
// ordinary exit (a deadline kill must come back fast), growing delays after
// quick failures or starts short of resources, and FATAL after
// startRetries quick failures in a row.
func (s *Supervisor) backoff(ctx context.Context, c *child) bool {
	s.mu.Lock()
	state, failures, short := c.state, c.failures, c.resourceFails
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
	if short > 0 {
		c.log.Warn("start short of resources; retrying", "attempt", short, "in", backoffDelay(short))
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(backoffDelay(max(failures, short))):
	}
	s.mu.Lock()
	s.transition(c, EvRetry)
	s.mu.Unlock()
	return true
}

// backoffDelay is the wait before retry n (from 1): 100 ms, doubling, at
// most 3.2 s.
func backoffDelay(n int) time.Duration {
	return time.Duration(1<<min(n, 6)) * 50 * time.Millisecond
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
// so; any other is of no use: one that crashed is gone already (its
// socket closed as it died), one that is not is killed after exitGrace.
func (s *Supervisor) reap(c *child, sp *spawned) error {
	s.mu.Lock()
	stopping := c.state == Stopping || !c.wanted
	s.mu.Unlock()
	grace := exitGrace
	if stopping {
		grace = stopGrace
	}
	select {
	case err := <-sp.wait:
		sp.drain()
		return err
	case <-time.After(grace):
	}
	c.kill(sp.proc, fmt.Sprintf("its connection ended and it did not exit within %v", grace))
	return sp.reap()
}

// exitGrace is how long a child whose connection ended on its own (a
// crash, a broken frame) may take to exit before it is killed.
const exitGrace = 100 * time.Millisecond
