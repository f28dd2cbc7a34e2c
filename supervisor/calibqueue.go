package supervisor

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// Calibrations in flight and the background queue (DESIGN.md §2, §3).
//
// Every calibration of an estimator key goes through calibrator.join: the
// first caller measures, and callers arriving meanwhile wait for its
// outcome — the same *Calibration and error — so a waiter never mistakes
// another request's failure for a success. If the measuring caller gives
// up (its context ends), its waiters do not inherit that: one of them
// measures instead.
//
// Background calibrations (calibrateLater) are what a request that needs
// no token can cause, so everything about them is bounded: one per
// estimator key, at most maxCalibQueue waiting (more are dropped and
// counted), served in order by one goroutine that exists only while the
// queue is not empty, and never while a foreground calibration (register,
// /test, a /call's first use) is in flight, so an operator's register
// waits for at most the one background calibration benchd is running.

// Bounds of the calibration work one request can cause.
const (
	// maxCalibQueue bounds the background calibrations waiting. At the
	// default budget (2 s each, at most 5 s before benchd is killed) it
	// is at most a few minutes of benchd time, on a housekeeping CPU.
	maxCalibQueue = 32
	// maxRegisterCalibrations bounds the parameterless exports a register
	// without export_func calibrates, in export order; the others are
	// calibrated on first use.
	maxRegisterCalibrations = 16
)

// calibrator holds the calibrations in flight and the background queue.
// Its zero value is ready; it has its own lock, never held while waiting,
// so it may be used with or without s.mu held.
type calibrator struct {
	mu         sync.Mutex
	inflight   map[string]*sharedCalibration // by estimator key
	foreground int                           // foreground calibrations measuring
	cond       *sync.Cond                    // on mu: foreground fell to 0, or stopped

	pending []*queuedCalibration // FIFO, at most maxCalibQueue
	keys    map[string]bool      // estimator keys pending or running in the queue
	running *queuedCalibration
	serving bool // the serve goroutine exists
	stopped bool
	wg      sync.WaitGroup // the serve goroutine
	stats   CalibQueueStats

	// bound are the contexts of the calibrations measuring now
	// (boundContext), by module name: cancelModule ends them with their
	// module's bytes.
	bound map[string]map[*boundCalibration]struct{}

	// measure, if not nil, replaces benchd: tests set it.
	measure func(context.Context, *call) (*ipc.Calibrated, error)
}

// boundCalibration is one calibration tied to its module's bytes.
type boundCalibration struct {
	sha    string
	cancel context.CancelCauseFunc
}

// sharedCalibration is one calibration in flight. Its fields are written
// before done is closed and read after.
type sharedCalibration struct {
	done      chan struct{}
	cal       *Calibration
	err       error
	abandoned bool // the measuring caller gave up: a waiter measures instead
	waiters   int  // guarded by calibrator.mu
}

type queuedCalibration struct {
	cl     *call
	ctx    context.Context
	cancel context.CancelFunc
	urgent bool // a re-measure of a refused shape: ahead of first-use ones
}

// CalibQueueStats counts background calibrations since start; Pending and
// Running are the queue now.
type CalibQueueStats struct {
	Pending      int    `json:"pending"`
	Running      bool   `json:"running"`
	Queued       uint64 `json:"queued"`       // accepted into the queue
	Deduplicated uint64 `json:"deduplicated"` // that key was queued, running or being measured already
	Dropped      uint64 `json:"dropped"`      // the queue was full, or shut down
	Cancelled    uint64 `json:"cancelled"`    // module deleted or replaced, or shutdown, before it was measured
	Done         uint64 `json:"done"`         // measured in benchd (a failed measurement included)
}

// join returns the calibration of key in flight, or registers a new one
// that the caller (leader) must measure and end with finish. A foreground
// leader holds the background queue back until it finishes.
func (c *calibrator) join(key string, foreground bool) (sh *sharedCalibration, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh := c.inflight[key]; sh != nil {
		sh.waiters++
		return sh, false
	}
	if c.inflight == nil {
		c.inflight = map[string]*sharedCalibration{}
	}
	sh = &sharedCalibration{done: make(chan struct{})}
	c.inflight[key] = sh
	if foreground {
		c.foreground++
	}
	return sh, true
}

// leave undoes a waiter's join when it stops waiting.
func (c *calibrator) leave(sh *sharedCalibration) {
	c.mu.Lock()
	sh.waiters--
	c.mu.Unlock()
}

// finish publishes the leader's outcome to the waiters.
func (c *calibrator) finish(key string, sh *sharedCalibration, foreground bool, cal *Calibration, err error, abandoned bool) {
	c.mu.Lock()
	if c.inflight[key] == sh {
		delete(c.inflight, key)
	}
	sh.cal, sh.err, sh.abandoned = cal, err, abandoned
	if foreground {
		c.foreground--
		if c.foreground == 0 && c.cond != nil {
			c.cond.Broadcast()
		}
	}
	c.mu.Unlock()
	close(sh.done)
}

// waiting returns how many callers wait on key's calibration (tests).
func (c *calibrator) waiting(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh := c.inflight[key]; sh != nil {
		return sh.waiters
	}
	return -1
}

// enqueue queues cl for run unless its key is queued, running or being
// measured already (queued is then true as well), the queue is full or it
// was stopped (queued false; counted as dropped). It never blocks, and
// starts the serve goroutine only when none exists.
//
// An urgent request (a shape refused on its own learned estimate, which a
// re-measure may let in again) goes ahead of every first-use one, and on a
// full queue takes the place of the newest first-use one: a tenant flooding
// the queue with never-measured shapes cannot keep a measured shape locked
// out.
func (c *calibrator) enqueue(cl *call, run func(context.Context, *call) bool, urgent bool) (queued bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		c.stats.Dropped++
		return false
	case c.keys[cl.key] || c.inflight[cl.key] != nil:
		c.stats.Deduplicated++
		return true
	case len(c.pending) >= maxCalibQueue:
		// Urgent requests come first, so the last one is the newest
		// first-use request, if there is any.
		last := len(c.pending) - 1
		if !urgent || c.pending[last].urgent {
			c.stats.Dropped++
			return false
		}
		evicted := c.pending[last]
		evicted.cancel()
		delete(c.keys, evicted.cl.key)
		c.pending = c.pending[:last]
		c.stats.Dropped++
	}
	if c.keys == nil {
		c.keys = map[string]bool{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &queuedCalibration{cl: cl, ctx: ctx, cancel: cancel, urgent: urgent}
	if urgent { // behind the urgent ones, ahead of every first-use one
		at := slices.IndexFunc(c.pending, func(q *queuedCalibration) bool { return !q.urgent })
		if at < 0 {
			at = len(c.pending)
		}
		c.pending = slices.Insert(c.pending, at, q)
	} else {
		c.pending = append(c.pending, q)
	}
	c.keys[cl.key] = true
	c.stats.Queued++
	if !c.serving {
		c.serving = true
		c.wg.Add(1)
		go c.serve(run)
	}
	return true
}

// serve runs the queue in order, one calibration at a time, and returns
// when it is empty or stopped. run reports whether it measured.
func (c *calibrator) serve(run func(context.Context, *call) bool) {
	defer c.wg.Done()
	c.mu.Lock()
	for {
		for c.foreground > 0 && !c.stopped && len(c.pending) > 0 {
			if c.cond == nil {
				c.cond = sync.NewCond(&c.mu)
			}
			c.cond.Wait()
		}
		if c.stopped || len(c.pending) == 0 {
			c.serving = false
			c.mu.Unlock()
			return
		}
		q := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		c.running = q
		c.mu.Unlock()

		measured := run(q.ctx, q.cl)

		c.mu.Lock()
		switch {
		case q.ctx.Err() != nil: // counted by cancelModule or stop
		case measured:
			c.stats.Done++
		default:
			c.stats.Cancelled++
		}
		q.cancel()
		delete(c.keys, q.cl.key)
		c.running = nil
	}
}

// boundContext returns ctx, ended as well when module m's bytes are
// deleted or replaced (cancelModule; context.Cause then says which), and
// a func to call once the calibration is over. Every calibration measures
// under one: whoever asked for it — a register, /test, the background
// queue — it lives no longer than the bytes it measures.
func (c *calibrator) boundContext(ctx context.Context, m *Module) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	b := &boundCalibration{sha: m.SHA256, cancel: cancel}
	c.mu.Lock()
	if c.bound == nil {
		c.bound = map[string]map[*boundCalibration]struct{}{}
	}
	if c.bound[m.Name] == nil {
		c.bound[m.Name] = map[*boundCalibration]struct{}{}
	}
	c.bound[m.Name][b] = struct{}{}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		delete(c.bound[m.Name], b)
		if len(c.bound[m.Name]) == 0 {
			delete(c.bound, m.Name)
		}
		c.mu.Unlock()
		cancel(nil)
	}
}

// errModuleGone is the cause of a calibration ended by cancelModule.
var errModuleGone = errors.New("the module was deleted or replaced during its calibration")

// cancelModule drops the queued calibrations of module name, except those
// of the bytes keepSHA ("" for none), and cancels the running one and
// every one measuring those bytes (boundContext): a register's, a
// /test's. The supervisor calls it when it deletes or replaces a module.
// A calibration already in benchd runs to its end, at most twice the
// calibration budget (bench.do), but nothing more is measured for those
// bytes, and its result is not stored for other bytes
// (store.putCalibration).
func (c *calibrator) cancelModule(name, keepSHA string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := range c.bound[name] {
		if keepSHA == "" || b.sha != keepSHA {
			b.cancel(errModuleGone)
		}
	}
	match := func(q *queuedCalibration) bool {
		return q.cl.module.Name == name && (keepSHA == "" || q.cl.module.SHA256 != keepSHA)
	}
	kept := c.pending[:0]
	for _, q := range c.pending {
		if match(q) {
			q.cancel()
			delete(c.keys, q.cl.key)
			c.stats.Cancelled++
			continue
		}
		kept = append(kept, q)
	}
	clear(c.pending[len(kept):])
	c.pending = kept
	if q := c.running; q != nil && q.ctx.Err() == nil && match(q) {
		q.cancel()
		c.stats.Cancelled++
	}
}

// stop drops the queue, cancels the running calibration, refuses new ones
// and waits for the serve goroutine to return.
func (c *calibrator) stop() {
	c.mu.Lock()
	c.stopped = true
	for _, q := range c.pending {
		q.cancel()
		delete(c.keys, q.cl.key)
		c.stats.Cancelled++
	}
	c.pending = nil
	if q := c.running; q != nil && q.ctx.Err() == nil {
		q.cancel()
		c.stats.Cancelled++
	}
	if c.cond != nil {
		c.cond.Broadcast()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// snapshot returns the counters and the queue's length.
func (c *calibrator) snapshot() CalibQueueStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Pending, st.Running = len(c.pending), c.running != nil
	return st
}

// calibrateLater queues a background calibration of cl (DESIGN.md §2: a
// call admitted on a declared estimate, a shape to re-measure). It never
// blocks — it takes only the calibrator's lock, never s.mu, so it may be
// called with s.mu held — and starts no goroutine per call. queued is true
// when a calibration of cl's estimator key is now queued or under way, and
// false when the request was dropped: the queue is full (maxCalibQueue) or
// shut down. CalibrationQueue counts both.
func (s *Supervisor) calibrateLater(cl *call) (queued bool) {
	return s.calib.enqueue(cl, s.runBackground, false)
}

// remeasureLater is calibrateLater for a shape refused on its learned
// estimate: it goes ahead of first-use calibrations (enqueue).
func (s *Supervisor) remeasureLater(cl *call) (queued bool) {
	return s.calib.enqueue(cl, s.runBackground, true)
}

// CalibrationQueue returns the background calibration counters, for
// /status and /metrics.
func (s *Supervisor) CalibrationQueue() CalibQueueStats {
	return s.calib.snapshot()
}

// runBackground measures one queued call unless its module was deleted or
// replaced, or the daemon is shutting down, and reports whether it did.
func (s *Supervisor) runBackground(ctx context.Context, cl *call) bool {
	if cur, ok := s.store.get(cl.module.Name); !ok || cur.SHA256 != cl.module.SHA256 {
		return false
	}
	s.mu.Lock()
	shutting := s.shutting
	s.mu.Unlock()
	if shutting {
		return false
	}
	cal, err := s.calibrateAs(ctx, cl, calBackground)
	if err != nil && ctx.Err() == nil {
		s.log.Info("background calibration failed", "module", cl.module.Name, "export", cl.export.Name, "err", err)
	}
	return cal != nil
}
