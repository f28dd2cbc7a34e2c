package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// This file installs a module on the running worker lanes so that the
// load never delays a job unseen by admission: each lane is held out of
// service (dispatch.Hold) while it compiles — once its job, if any, has
// ended — and compiles under SCHED_IDLE, so the lane running a job beside
// it on the same CPU is not slowed either. A core's lanes are held one at a
// time, so it stays in admission with one lane less. Lanes that are not up
// load the module in bringUp (Supervisor.installing).

// loadIDs numbers the load frames whose answers an install waits for.
var loadIDs atomic.Uint64

// installOnWorkers loads m on every running worker lane and returns once
// each has answered, or failed: the error names every lane whose load
// failed. Until done is called (after m is served, or given up), a lane
// that starts loads m too. Installs run one at a time.
func (s *Supervisor) installOnWorkers(ctx context.Context, m *Module) (done func(), err error) {
	if s.installHook != nil {
		if err := s.installHook(m); err != nil {
			return func() {}, err
		}
	}
	s.installMu.Lock()
	defer s.installMu.Unlock()
	// Read once, sent to every lane: the bytes leave memory with the
	// install.
	frame, err := m.loadFrame()
	if err != nil {
		return func() {}, err
	}
	s.mu.Lock()
	if s.installing == nil {
		s.installing = map[string]*Module{}
	}
	s.installing[m.Name] = m
	byCore := make([][]*child, len(s.choice.Workers))
	for _, w := range s.workers {
		if w.lp != nil && w.state == Running {
			byCore[w.core] = append(byCore[w.core], w)
		}
	}
	s.mu.Unlock()
	// Idle lanes first: a busy one is held only once its job ends.
	_, cores, _ := s.disp.Stats()
	for core, lanes := range byCore {
		slices.SortStableFunc(lanes, func(a, b *child) int {
			return cmp.Compare(busy(cores[core], a.lane), busy(cores[core], b.lane))
		})
	}
	done = func() {
		s.mu.Lock()
		if s.installing[m.Name] == m {
			delete(s.installing, m.Name)
		}
		s.mu.Unlock()
	}

	errs := make(chan error, len(s.workers))
	for _, lanes := range byCore {
		go func() {
			var err error
			for _, c := range lanes {
				if ctx.Err() != nil {
					err = errors.Join(err, ctx.Err()) // the register is given up: no more lanes
					break
				}
				err = errors.Join(err, s.installLane(c, m, frame))
			}
			errs <- err
		}()
	}
	for range byCore {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		done()
		return func() {}, err
	}
	return done, nil
}

// busy is 1 if lane li of core holds a job, else 0.
func busy(core dispatch.CoreInfo, li int) int {
	if core.Lanes[li].Task != 0 {
		return 1
	}
	return 0
}

// installLane loads m, whose frame is frame, on lane c while it is held.
// A lane that goes away meanwhile is not an error: its next generation
// loads m in bringUp. It waits for the lane's answer even when the
// register is given up: the lane stays held, out of admission, as long as
// it compiles (bounded by loadTimeout), so the load delays no job unseen.
func (s *Supervisor) installLane(c *child, m *Module, frame *ipc.Load) error {
	s.mu.Lock()
	lp := c.lp
	s.mu.Unlock()
	if lp == nil {
		return nil
	}
	// The wait is bounded by the running job's deadline or cap.
	<-s.disp.Hold(c.core, c.lane, lp)
	if !s.disp.Held(c.core, c.lane, lp) {
		return nil
	}
	defer s.disp.Release(c.core, c.lane, lp)
	if lp.proc != nil { // nil for the fake lanes of unit tests
		pid := lp.proc.Pid
		if err := isolate.SetIdlePolicy(pid); err != nil {
			c.log.Debug("load: idle policy", "err", err)
		}
		defer s.settle(c, pid)
	}

	id := loadIDs.Add(1)
	reply := make(chan *ipc.Loaded, 1)
	s.mu.Lock()
	if c.lp != lp {
		s.mu.Unlock()
		return nil
	}
	if c.loads == nil {
		c.loads = map[uint64]chan *ipc.Loaded{}
	}
	c.loads[id] = reply
	f := *frame // the bytes are shared, read only
	f.ID = id
	lp.out.push(ipc.KindLoad, &f)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(c.loads, id)
		s.mu.Unlock()
	}()

	timer := time.NewTimer(loadTimeout)
	defer timer.Stop()
	select {
	case l, ok := <-reply:
		switch {
		case !ok:
			return nil // the lane went away
		case l.Err != "":
			return fmt.Errorf("%s: load %s: %s", c.name, m.Name, l.Err)
		}
		s.mu.Lock()
		if c.lp == lp && c.loaded != nil {
			c.loaded[m.Name] = m.SHA256
		}
		s.mu.Unlock()
		return nil
	case <-timer.C:
		// A lane that cannot compile in time is of no use: its next
		// generation loads the module in bringUp, under its deadline.
		c.kill(lp.proc, fmt.Sprintf("loading %s took over %v", m.Name, loadTimeout))
		return fmt.Errorf("%s: load %s: no answer within %v", c.name, m.Name, loadTimeout)
	}
}

// loadedReply hands a worker lane's Loaded frame to the install waiting
// for it.
func (s *Supervisor) loadedReply(c *child, l *ipc.Loaded) {
	s.mu.Lock()
	ch := c.loads[l.ID]
	delete(c.loads, l.ID)
	s.mu.Unlock()
	if ch != nil {
		ch <- l
	} else if l.Err != "" {
		c.log.Error("load module", "module", l.Name, "err", l.Err)
	}
}
