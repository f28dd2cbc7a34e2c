package sched

import "fmt"

// Job is one call as the scheduler sees it.
type Job struct {
	// ID identifies the job; it must be unique among the jobs queued or
	// running (not forever). On equal deadlines the smaller ID runs first.
	ID uint64
	// Deadline is the absolute deadline in ns on the caller's clock; 0 makes
	// the job best-effort.
	Deadline int64
	// Estimate is the execution-time estimate C in ns. It must be > 0 for a
	// deadline job. For a best-effort job it is the learned estimate, or
	// BestEffortCap (or more) when none is known; while it runs within it,
	// it blocks its core for that long in the admission test, past it (or
	// unknown) until its cap.
	Estimate int64
	// LateCap, for a deadline job, is how long past its deadline it may
	// keep running before the supervisor kills it: 0 for a firm deadline
	// (the default), more for a call that asked to finish late rather than
	// be killed. The admission test counts a running job as blocking its
	// core until that kill.
	LateCap int64
}

// Defaults for the zero fields of [Config].
const (
	// DefaultBestEffortCap is 1 s: long enough for the calls a user runs by
	// hand without a deadline, short enough that a best-effort job cannot
	// keep a core from deadline work for longer than that.
	DefaultBestEffortCap int64 = 1e9
	// DefaultGrace is 2 ms: timer slack plus the delivery of cgroup.kill or
	// SIGKILL, the time between a deadline passing and its worker being dead.
	DefaultGrace int64 = 2e6
	// DefaultRestartCost is 50 ms, a placeholder for starting a worker
	// (fork/exec, hello, loading modules from the compilation cache). The
	// supervisor should measure it and pass the measured value.
	DefaultRestartCost int64 = 50e6
	// DefaultMaxBestEffort is the default bound of the best-effort FIFO.
	DefaultMaxBestEffort = 1024
	// DefaultMaxQueue is the default bound of each core's deadline queue.
	DefaultMaxQueue = 1 << 16
)

// Config holds the scheduler's settings. Times are in ns. The zero value of
// every field selects its default; [New] validates it once.
type Config struct {
	// BestEffortCap is the longest a best-effort job may run before the
	// supervisor kills it. Zero means DefaultBestEffortCap; negative is
	// invalid.
	BestEffortCap int64
	// Grace is how long after a deadline (or a best-effort cap) passes the
	// killed worker may still hold its core. Zero means DefaultGrace;
	// negative means none.
	Grace int64
	// RestartCost is how long the core stays unusable while a killed worker
	// is replaced. Zero means DefaultRestartCost; negative means none. A
	// restart that takes longer is not covered: mark the core unavailable
	// (SetAvailable) until its worker is up.
	RestartCost int64
	// MaxBestEffort bounds the global best-effort FIFO; Admit returns
	// ErrQueueFull beyond it. Zero means DefaultMaxBestEffort; negative is
	// invalid.
	MaxBestEffort int
	// MaxQueue bounds each core's deadline queue, and so its memory (56
	// bytes a job); a full core counts as infeasible. Zero means
	// DefaultMaxQueue; negative is invalid.
	MaxQueue int
}

// resolve applies the defaults and validates c. Grace and RestartCost come
// back >= 0 ("none" is 0).
func (c Config) resolve() (Config, error) {
	def := func(v, d int64) int64 {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	switch {
	case c.BestEffortCap < 0:
		return c, fmt.Errorf("sched: config: BestEffortCap %d is negative", c.BestEffortCap)
	case c.MaxBestEffort < 0:
		return c, fmt.Errorf("sched: config: MaxBestEffort %d is negative", c.MaxBestEffort)
	case c.MaxQueue < 0:
		return c, fmt.Errorf("sched: config: MaxQueue %d is negative", c.MaxQueue)
	}
	c.BestEffortCap = def(c.BestEffortCap, DefaultBestEffortCap)
	c.Grace = def(c.Grace, DefaultGrace)
	c.RestartCost = def(c.RestartCost, DefaultRestartCost)
	if c.MaxBestEffort == 0 {
		c.MaxBestEffort = DefaultMaxBestEffort
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	return c, nil
}

// core is the state of one worker core.
type core struct {
	q     queue
	run   Job   // the running job, if busy
	start int64 // when run started
	busy  bool
	off   bool // unavailable: admits nothing, takes no best-effort work
	st    CoreStats
}

// loc says where a queued or running job is: core -1 is the best-effort
// FIFO. With the ID, deadline is the job's key in its core's queue.
type loc struct {
	core     int
	deadline int64
}

// Scheduler holds one EDF queue per worker core and the best-effort FIFO.
//
// # Notes
//
// A Scheduler is not safe for concurrent use: the supervisor owns it from one
// goroutine. Every method that takes a core panics if core is not in
// [0, Cores()), which is a programmer error. Time (now) must not decrease
// between calls.
type Scheduler struct {
	cfg   Config
	cores []core
	be    fifo
	index map[uint64]loc // every queued or running job

	admitted   uint64
	bestEffort uint64
	rejected   uint64
	invalid    uint64
	full       uint64
}

// New returns a scheduler for cores worker cores (numbered 0..cores-1), all
// available and idle.
func New(cores int, cfg Config) (*Scheduler, error) {
	if cores < 1 {
		return nil, fmt.Errorf("sched: new: %d cores, need at least 1", cores)
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:   cfg,
		cores: make([]core, cores),
		index: make(map[uint64]loc),
	}
	for i := range s.cores {
		s.cores[i].q.init(uint64(i+1) * 0x9e3779b97f4a7c15)
	}
	return s, nil
}

// Cores returns the number of cores.
func (s *Scheduler) Cores() int { return len(s.cores) }

// Admit accepts j at time now or refuses it.
//
// A deadline job runs the exact admission test on every available core (see
// the package documentation) and is enqueued on the feasible core with the
// largest minimum slack, whose index is returned. Errors: ErrInvalidDeadline
// if Estimate >= Deadline-now (or the deadline is negative),
// ErrInvalidEstimate if Estimate <= 0, ErrDuplicate if the ID is queued or
// running, and *Unschedulable if no available core can take it.
//
// A best-effort job (Deadline 0) is appended to the global FIFO and core is
// -1; the error is ErrQueueFull when the FIFO is at Config.MaxBestEffort, or
// ErrDuplicate.
//
// Admit never starts a job: if the returned core is idle, or for a
// best-effort job if some available core is idle, the caller calls Next.
func (s *Scheduler) Admit(now int64, j Job) (core int, err error) {
	if _, dup := s.index[j.ID]; dup {
		s.invalid++
		return -1, ErrDuplicate
	}
	if j.Deadline == 0 {
		if s.be.len() >= s.cfg.MaxBestEffort {
			s.full++
			return -1, ErrQueueFull
		}
		s.be.push(j)
		s.index[j.ID] = loc{core: -1}
		s.bestEffort++
		return -1, nil
	}
	switch {
	case j.Estimate <= 0:
		s.invalid++
		return -1, ErrInvalidEstimate
	case j.Deadline < 0 || j.Estimate >= j.Deadline-now:
		s.invalid++
		return -1, ErrInvalidDeadline
	}
	best := s.pick(now, j)
	if best < 0 {
		s.rejected++
		return -1, &Unschedulable{RetryAfter: s.retryAfter(now, j)}
	}
	c := &s.cores[best]
	c.q.insert(j)
	c.st.Admitted++
	s.index[j.ID] = loc{core: best, deadline: j.Deadline}
	s.admitted++
	return best, nil
}

// Next starts the next job on core, which the caller found idle, at time
// now: the earliest-deadline job queued on that core or, if none is queued
// and the core is available, the head of the best-effort FIFO. ok is false
// if there is nothing to run, or if core is already running a job (a core
// runs one job at a time; call Done first).
func (s *Scheduler) Next(core int, now int64) (j Job, ok bool) {
	c := &s.cores[core]
	switch {
	case c.busy:
		return Job{}, false
	case c.q.len() > 0:
		j = c.q.pop()
	case !c.off && s.be.len() > 0:
		j = s.be.pop()
		s.index[j.ID] = loc{core: core}
	default:
		return Job{}, false
	}
	c.run, c.start, c.busy = j, now, true
	return j, true
}

// Done marks the running job of core finished at now and returns it; its
// run time counts as busy time. ok is false if core was idle.
//
// When the supervisor kills a job, it should call Done only once the
// replacement worker is up, so that the restart keeps counting as blocking
// time in the admission test (as Config.RestartCost promised), or Drain the
// core and mark it unavailable meanwhile.
func (s *Scheduler) Done(core int, now int64) (j Job, ok bool) {
	c := &s.cores[core]
	if !c.busy {
		return Job{}, false
	}
	j = c.run
	c.st.Busy += max(now-c.start, 0)
	c.st.Completed++
	c.run, c.start, c.busy = Job{}, 0, false
	delete(s.index, j.ID)
	return j, true
}

// Cancel removes the queued job id, from whichever core's queue or the
// best-effort FIFO, and reports whether it was queued. A running job is not
// cancelled (false): it ends with Done or Drain.
func (s *Scheduler) Cancel(id uint64) bool {
	at, ok := s.index[id]
	if !ok {
		return false
	}
	if at.core < 0 {
		if !s.be.remove(id) {
			panic("sched: index names a best-effort job the FIFO lacks") // broken invariant
		}
		delete(s.index, id)
		return true
	}
	c := &s.cores[at.core]
	if c.busy && c.run.ID == id {
		return false
	}
	if !c.q.remove(at.deadline, id) {
		panic("sched: index names a job its core's queue lacks") // broken invariant
	}
	c.st.Cancelled++
	delete(s.index, id)
	return true
}

// Drain empties core for re-dispatch after its worker was lost or restarted:
// it removes and returns the queued deadline jobs in EDF order and forgets
// the running job without counting it as done (read it with Running first;
// its answer is the caller's). The caller then re-Admits each returned job,
// typically after SetAvailable(core, false) so that they go elsewhere. The
// best-effort FIFO is untouched. The result is nil if nothing was queued.
func (s *Scheduler) Drain(core int) []Job {
	c := &s.cores[core]
	var out []Job
	if n := c.q.len(); n > 0 {
		out = c.q.appendJobs(make([]Job, 0, n))
		for _, j := range out {
			delete(s.index, j.ID)
		}
		c.st.Drained += uint64(n)
		c.q.clear()
	}
	if c.busy {
		delete(s.index, c.run.ID)
		c.run, c.start, c.busy = Job{}, 0, false
	}
	return out
}

// SetAvailable takes core into (ok) or out of admission. An unavailable
// core admits no new deadline job and starts no best-effort job, but Next
// still hands out the deadline jobs already queued on it; Drain them if its
// worker is gone. Cores start available.
func (s *Scheduler) SetAvailable(core int, ok bool) { s.cores[core].off = !ok }

// Running returns the job running on core and when it started; ok is false
// if the core is idle.
func (s *Scheduler) Running(core int) (j Job, start int64, ok bool) {
	c := &s.cores[core]
	return c.run, c.start, c.busy
}

// CoreStats describes one core. The counters only grow.
type CoreStats struct {
	Available bool   // admits new work (SetAvailable)
	Queued    int    // deadline jobs queued
	Running   bool   // a job is running
	RunningID uint64 // the running job's ID, if Running
	// Backlog is the planned work from now, ns: the running job's
	// remaining blocking time (as in the admission test) plus every queued
	// estimate.
	Backlog int64
	// Slack is the minimum over the queued jobs of deadline minus planned
	// finish, ns; negative if one is already late, 0 if none is queued.
	Slack int64
	// Busy is the run time of the jobs ended with Done, ns.
	Busy int64

	Admitted   uint64 // deadline jobs enqueued here by Admit
	Completed  uint64 // jobs ended with Done
	Cancelled  uint64 // queued jobs removed by Cancel
	Drained    uint64 // queued jobs removed by Drain
	Infeasible uint64 // Admit tests this core failed
}

// Stats describes the scheduler at time now.
type Stats struct {
	Cores            []CoreStats // indexed by core
	BestEffortQueued int         // jobs waiting in the best-effort FIFO

	Admitted   uint64 // deadline jobs admitted
	BestEffort uint64 // best-effort jobs accepted into the FIFO
	Rejected   uint64 // deadline jobs refused as Unschedulable
	Invalid    uint64 // ErrInvalidDeadline, ErrInvalidEstimate, ErrDuplicate
	Full       uint64 // ErrQueueFull
}

// Stats returns a snapshot of the scheduler at time now.
func (s *Scheduler) Stats(now int64) Stats {
	st := Stats{
		Cores:            make([]CoreStats, len(s.cores)),
		BestEffortQueued: s.be.len(),
		Admitted:         s.admitted,
		BestEffort:       s.bestEffort,
		Rejected:         s.rejected,
		Invalid:          s.invalid,
		Full:             s.full,
	}
	for i := range s.cores {
		c := &s.cores[i]
		cs := c.st
		cs.Available = !c.off
		cs.Queued = c.q.len()
		cs.Running = c.busy
		cs.RunningID = c.run.ID
		t0 := s.free(c, now)
		cs.Backlog = t0 - now + c.q.total()
		if cs.Queued > 0 {
			cs.Slack = c.q.latest() - t0
		}
		st.Cores[i] = cs
	}
	return st
}

// fifo is the global best-effort queue.
type fifo struct {
	buf  []Job
	head int
}

func (f *fifo) len() int { return len(f.buf) - f.head }

func (f *fifo) push(j Job) {
	if len(f.buf) == cap(f.buf) && f.head > 0 && f.head >= f.len() {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, j)
}

func (f *fifo) pop() Job {
	j := f.buf[f.head]
	f.buf[f.head] = Job{}
	f.head++
	if f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
	return j
}

// remove deletes the job id, reporting whether it was there.
func (f *fifo) remove(id uint64) bool {
	l := f.buf[f.head:]
	for i := range l {
		if l[i].ID == id {
			copy(l[i:], l[i+1:])
			f.buf[len(f.buf)-1] = Job{}
			f.buf = f.buf[:len(f.buf)-1]
			if f.head == len(f.buf) {
				f.buf, f.head = f.buf[:0], 0
			}
			return true
		}
	}
	return false
}
