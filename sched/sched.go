package sched

import (
	"fmt"
	"slices"
)

// Job is one call as the scheduler sees it.
type Job struct {
	// ID identifies the job; it must be unique among the jobs queued or
	// running (not forever). On equal deadlines the smaller ID runs first.
	ID uint64
	// Deadline is the absolute deadline in ns on the caller's clock; 0 makes
	// the job best-effort.
	Deadline int64
	// Estimate is the execution-time estimate C in ns. It must be > 0 for a
	// verified deadline job. For a best-effort job it is the learned
	// estimate, or BestEffortCap (or more) when none is known; while it runs
	// within it, it blocks its core for that long in the admission test,
	// past it (or unknown) until its cap.
	Estimate int64
	// LateCap, for a deadline job, is how long past its deadline it may
	// keep running before the supervisor kills it: 0 for a firm deadline
	// (the default), more for a call that asked to finish late rather than
	// be killed. The admission test counts a running job as blocking its
	// core until that kill.
	LateCap int64
	// Unverified marks a deadline job whose estimate nobody measured: a
	// client's claim, or nothing. Such a job is admitted as if it ran until
	// its kill (Deadline+LateCap+Grace) from the moment it is admitted, and
	// its lane then restarted (RestartCost), for every job it could delay;
	// its own finishing time is not checked. So a wrong claim can only make
	// the claimant's own call late. Estimate is ignored.
	Unverified bool
}

// Defaults for the zero fields of [Config].
const (
	// DefaultBestEffortCap is 1 s: long enough for the calls a user runs by
	// hand without a deadline, short enough that a best-effort job cannot
	// keep a core from deadline work for longer than that.
	DefaultBestEffortCap int64 = 1e9
	// DefaultGrace is 2 ms: timer slack plus the delivery of SIGKILL, the
	// time between a deadline passing and its core running something else.
	DefaultGrace int64 = 2e6
	// DefaultRestartCost is 50 ms, a placeholder for starting a worker
	// (fork/exec, hello, loading modules from the compilation cache). It
	// counts only when a kill leaves a core without a free lane. The
	// supervisor measures it and passes the measured value.
	DefaultRestartCost int64 = 50e6
	// DefaultMaxBestEffort is the default bound of the best-effort FIFO.
	DefaultMaxBestEffort = 1024
	// DefaultMaxQueue is the default bound of each core's deadline queue.
	DefaultMaxQueue = 1 << 16
	// DefaultLanes is 1: one job started per core at a time, the
	// non-preemptive model.
	DefaultLanes = 1
	// DefaultPreemptCost is 100 µs, a placeholder for stopping the running
	// lane, waking another and later resuming the first. The supervisor
	// passes the measured value.
	DefaultPreemptCost int64 = 100e3
	// DefaultQuantum is 10 ms, the best-effort round-robin time slice.
	DefaultQuantum int64 = 10e6
	// MaxLanes bounds Config.Lanes.
	MaxLanes = 64
)

// Config holds the scheduler's settings. Times are in ns. The zero value of
// every field selects its default; [New] validates it once.
type Config struct {
	// BestEffortCap is the longest a best-effort job may run (run time, not
	// counting the time it is stopped) before the supervisor kills it. Zero
	// means DefaultBestEffortCap; negative is invalid.
	BestEffortCap int64
	// Grace is how long after a deadline (or a best-effort cap) passes the
	// killed job may still hold its core. Zero means DefaultGrace; negative
	// means none.
	Grace int64
	// RestartCost is how long a core stays unusable when a kill or a lost
	// lane leaves it without a free lane while a replacement lane starts
	// (always so with one lane). Zero means DefaultRestartCost; negative
	// means none. A restart that takes longer is not covered: mark the core
	// unavailable (SetAvailable) until its lane is up.
	RestartCost int64
	// MaxBestEffort bounds the global best-effort FIFO; Admit returns
	// ErrQueueFull beyond it. Zero means DefaultMaxBestEffort; negative is
	// invalid.
	MaxBestEffort int
	// MaxQueue bounds each core's deadline queue, and so its memory (64
	// bytes a job); a full core counts as infeasible. Zero means
	// DefaultMaxQueue; negative is invalid.
	MaxQueue int
	// Lanes is how many jobs a core may have started at once (running or
	// stopped): its lane processes. With 1, jobs are never preempted. Zero
	// means DefaultLanes; it must be in [1, MaxLanes].
	Lanes int
	// PreemptCost is charged to a job that preempts another: stopping the
	// running lane, waking an idle one, and resuming the first later. Zero
	// means DefaultPreemptCost; negative means none.
	PreemptCost int64
	// Quantum is the best-effort round-robin time slice. Zero means
	// DefaultQuantum; negative turns round-robin off (a best-effort job
	// then runs until it ends, is preempted by deadline work, or is killed).
	Quantum int64
	// WakeCost is charged once to the work that starts on an idle core
	// whose lanes sleep: waking its CPU. A core whose last job's lane
	// still polls for the next (SetWarm) is not charged. Zero or negative
	// means none.
	WakeCost int64
	// TailCost is slack every core's plan keeps at its head: one dispatch
	// round trip's tail beyond the per-job overhead in the estimates. The
	// estimates carry a typical hop (the supervisor charges its p90); a
	// hop as slow as the p99 is rare enough that a plan meets one, not
	// one per job, so it is charged once per plan rather than to every
	// job. A preempting job pays PreemptCost instead. Zero or negative
	// means none.
	TailCost int64
}

// resolve applies the defaults and validates c. Grace, RestartCost,
// PreemptCost and Quantum come back >= 0 ("none" is 0).
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
	case c.Lanes < 0 || c.Lanes > MaxLanes:
		return c, fmt.Errorf("sched: config: Lanes %d not in [1, %d]", c.Lanes, MaxLanes)
	}
	c.BestEffortCap = def(c.BestEffortCap, DefaultBestEffortCap)
	c.Grace = def(c.Grace, DefaultGrace)
	c.RestartCost = def(c.RestartCost, DefaultRestartCost)
	c.PreemptCost = def(c.PreemptCost, DefaultPreemptCost)
	c.Quantum = def(c.Quantum, DefaultQuantum)
	c.WakeCost = max(c.WakeCost, 0)
	c.TailCost = max(c.TailCost, 0)
	if c.MaxBestEffort == 0 {
		c.MaxBestEffort = DefaultMaxBestEffort
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Lanes == 0 {
		c.Lanes = DefaultLanes
	}
	return c, nil
}

// paused is a started job whose lane is stopped, with its run time so far.
type paused struct {
	job  Job
	used int64
}

// core is the state of one worker core.
//
// Its deadline jobs that have not finished, other than the running one,
// are in q in EDF order: the queued ones with their estimates, and the
// stopped ones with what remains of theirs. The stopped deadline jobs are
// also in stack, bottom first: a job only ever starts above another when
// it has the earlier deadline, so deadlines fall towards the top, and the
// top is the earliest stopped job, the one q yields first.
type core struct {
	idx    int // in Scheduler.cores
	q      queue
	run    Job   // the running job, if busy
	busy   bool  //
	runAt  int64 // when run was last started or resumed
	used   int64 // run's run time before runAt
	stack  []paused
	be     []paused // stopped best-effort jobs, least recently run first
	lanes  int      // live lanes
	off    bool     // unavailable: admits nothing, takes no new best-effort work
	pinned bool     // run may not be preempted: q holds a job admitted to wait for it
	// blocked is when a kill or a lost lane that left no lane free is
	// assumed replaced (now + RestartCost at the time), else 0.
	blocked int64
	// warmUntil is until when a lane of the idle core polls for its next
	// job (SetWarm): before it, starting one costs no WakeCost.
	warmUntil int64
	st        CoreStats
}

// started returns how many of c's lanes hold a job.
func (c *core) started() int {
	n := len(c.stack) + len(c.be)
	if c.busy {
		n++
	}
	return n
}

// free returns how many of c's lanes are idle.
func (c *core) free() int { return c.lanes - c.started() }

// bestEffort returns how many best-effort jobs c has started.
func (c *core) bestEffort() int {
	n := len(c.be)
	if c.busy && c.run.Deadline == 0 {
		n++
	}
	return n
}

// clearRun leaves c with no running job, and so unpinned.
func (c *core) clearRun() { c.busy, c.run, c.used, c.runAt, c.pinned = false, Job{}, 0, 0, false }

// endRun ends c's running job at now, its run time counted as busy, and
// returns it.
func (c *core) endRun(now int64) Job {
	j := c.run
	c.st.Busy += max(now-c.runAt, 0)
	c.clearRun()
	return j
}

// stopped reports whether j, the head of c's queue, is a stopped job.
func (c *core) stopped(j Job) bool {
	return len(c.stack) > 0 && c.stack[len(c.stack)-1].job.ID == j.ID
}

// loc says where a queued or started job is: core -1 is the best-effort
// FIFO. With the ID, deadline is the job's key in its core's queue.
type loc struct {
	core     int
	deadline int64
	started  bool
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
	index map[uint64]loc // every queued or started job

	admitted   uint64
	bestEffort uint64
	rejected   uint64
	invalid    uint64
	full       uint64
	chains     uint64
}

// New returns a scheduler for cores worker cores (numbered 0..cores-1), all
// available and idle, each with Config.Lanes live lanes.
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
		s.cores[i].lanes, s.cores[i].idx = cfg.Lanes, i
	}
	return s, nil
}

// Cores returns the number of cores.
func (s *Scheduler) Cores() int { return len(s.cores) }

// Config returns the resolved configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// Admit accepts j at time now or refuses it.
//
// A deadline job runs the exact admission test on every available core (see
// the package documentation) and is enqueued on the feasible core with the
// largest minimum slack, whose index is returned. Errors: ErrInvalidDeadline
// if Estimate >= Deadline-now (for an unverified job: Deadline <= now),
// ErrInvalidEstimate if a verified job's Estimate <= 0, ErrDuplicate if the
// ID is queued or started, and *Unschedulable if no available core can take
// it.
//
// A best-effort job (Deadline 0) is appended to the global FIFO and core is
// -1; the error is ErrQueueFull when the FIFO is at Config.MaxBestEffort, or
// ErrDuplicate.
//
// Admit never starts or preempts a job: the caller calls Next on the
// returned core (for a best-effort job, on every core), which does.
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
		j.Unverified = false
		s.be.push(j)
		s.index[j.ID] = loc{core: -1}
		s.bestEffort++
		return -1, nil
	}
	if err := s.checkJob(now, &j); err != nil {
		return -1, err
	}
	best, preempt := s.pick(now, j)
	if best < 0 {
		s.rejected++
		return -1, &Unschedulable{RetryAfter: s.retryAfter(now, j)}
	}
	c := &s.cores[best]
	if preempt {
		j.Estimate += s.cfg.PreemptCost
	} else if c.busy && (c.run.Deadline == 0 || before(j.Deadline, j.ID, c.run.Deadline, c.run.ID)) {
		// Admitted to wait for the running job, not to preempt it: keep it
		// running, as planned.
		c.pinned = true
	}
	c.q.insert(j, dueOf(j))
	c.st.Admitted++
	s.index[j.ID] = loc{core: best, deadline: j.Deadline}
	s.admitted++
	return best, nil
}

// checkJob refuses a deadline job that cannot be admitted anywhere, and
// gives an unverified one the estimate it is admitted with: it may run
// until its kill, and its lane then restart, which is its estimate for
// everyone else.
func (s *Scheduler) checkJob(now int64, j *Job) error {
	switch {
	case j.Unverified && (j.Deadline <= now || j.LateCap < 0):
		s.invalid++
		return ErrInvalidDeadline
	case j.Unverified:
		j.Estimate = j.Deadline + j.LateCap + s.cfg.Grace + s.cfg.RestartCost - now
	case j.Estimate <= 0:
		s.invalid++
		return ErrInvalidEstimate
	case j.Deadline < 0 || j.Estimate >= j.Deadline-now:
		s.invalid++
		return ErrInvalidDeadline
	}
	return nil
}

// dueOf returns when a queued job must finish: its deadline, or infinity
// for an unverified one.
func dueOf(j Job) int64 {
	if j.Unverified {
		return infinity
	}
	return j.Deadline
}

// Action is what [Scheduler.Next] asks the caller to do on a core, in this
// order: answer Expired, stop Stop's lane (keeping it), then start Run on an
// idle lane or, if Resume, resume Run's stopped lane.
type Action struct {
	// Expired are queued firm deadline jobs whose deadline passed before
	// they could start; they were removed and must be answered.
	Expired []Job
	// Stop, if its ID is not 0, is the running job to stop: preempted by a
	// deadline job, or a best-effort job at the end of its quantum.
	Stop Job
	// Run, if its ID is not 0, is the job to run now.
	Run Job
	// Resume says Run was stopped before and its lane is to be resumed.
	Resume bool
	// Used is Run's run time so far, ns (for its best-effort cap).
	Used int64
	// Recheck, if not 0, is when to call Next on this core again: the end
	// of a best-effort quantum while others wait.
	Recheck int64
}

// Next decides what core does next at now: whether the running job is
// preempted, and which job runs when the core is idle. The earliest
// deadline job runs: a stopped one is resumed, a queued one starts on a
// free lane; with no deadline work, best-effort jobs share the core
// round-robin, each for Config.Quantum at a time, at most Lanes-1 of them
// started (so that a lane is left for deadline work to preempt them).
// The caller carries out the returned Action and calls Next again after
// every event on the core (Admit, Done, Remove, LaneUp, LaneDown, Recheck).
func (s *Scheduler) Next(core int, now int64) (a Action) {
	c := &s.cores[core]
	for c.q.len() > 0 {
		h := c.q.first()
		if c.stopped(h) || h.Deadline+h.LateCap >= now {
			break
		}
		c.q.remove(h.Deadline, h.ID)
		delete(s.index, h.ID)
		c.st.Expired++
		a.Expired = append(a.Expired, h)
	}
	if c.pinned && (c.q.len() == 0 || c.run.Deadline != 0 && !before(c.q.first().Deadline, c.q.first().ID, c.run.Deadline, c.run.ID)) {
		c.pinned = false // the jobs that waited for it are gone (expired, cancelled)
	}
	if c.busy {
		if c.pinned {
			return a
		}
		if c.q.len() > 0 {
			h := c.q.first()
			if !s.preemptible(c) || c.run.Deadline != 0 && (c.stopped(h) || !before(h.Deadline, h.ID, c.run.Deadline, c.run.ID)) {
				return a
			}
			a.Stop = s.stop(c, now)
			c.st.Preemptions++
			s.start(c, now, &a)
			return a
		}
		if c.run.Deadline != 0 || !s.beWaiting(c) {
			return a
		}
		if end := c.runAt + s.cfg.Quantum; s.cfg.Quantum == 0 || now < end {
			if s.cfg.Quantum > 0 {
				a.Recheck = end
			}
			return a
		}
		a.Stop = s.stop(c, now)
		c.st.Rotations++
	}
	s.start(c, now, &a)
	return a
}

// preemptible reports whether c's running job may be stopped now.
func (s *Scheduler) preemptible(c *core) bool {
	return c.busy && !c.pinned && c.free() > 0
}

// beWaiting reports whether a best-effort job other than the running one
// could take c: a stopped one, or one from the FIFO on a lane it may use.
func (s *Scheduler) beWaiting(c *core) bool {
	return len(c.be) > 0 || (s.be.len() > 0 && !c.off && c.free() > 0 && c.bestEffort() < s.beLimit(c))
}

// beLimit is how many best-effort jobs c may have started: all but one
// lane, so that deadline work can always preempt them, or the one lane.
func (s *Scheduler) beLimit(c *core) int { return max(c.lanes-1, 1) }

// stop stops c's running job at now and returns it.
func (s *Scheduler) stop(c *core, now int64) Job {
	r, used := c.run, c.used+now-c.runAt
	if r.Deadline == 0 {
		c.be = append(c.be, paused{r, used})
	} else {
		// What remains of it runs after the preempting job. Past its
		// estimate (or unverified) nothing bounds it but its kill.
		rem, due := r.Estimate-used, r.Deadline
		if rem < 0 || r.Unverified {
			rem, due = max(r.Deadline+r.LateCap+s.cfg.Grace-now, 0), infinity
		}
		c.stack = append(c.stack, paused{r, used})
		rq := r
		rq.Estimate = rem
		c.q.insert(rq, due)
	}
	c.busy, c.run, c.used, c.runAt = false, Job{}, 0, 0
	return r
}

// start fills a's Run for idle core c: the earliest deadline job, else a
// best-effort one; nothing when that needs a lane and none is free.
func (s *Scheduler) start(c *core, now int64, a *Action) {
	var p paused
	switch {
	case c.q.len() > 0:
		h := c.q.first()
		if c.stopped(h) {
			c.q.remove(h.Deadline, h.ID)
			p = c.stack[len(c.stack)-1]
			c.stack = c.stack[:len(c.stack)-1]
			a.Resume = true
		} else if c.free() > 0 {
			c.q.remove(h.Deadline, h.ID)
			p.job = h
		} else {
			return // it waits for a lane
		}
	case s.be.len() > 0 && !c.off && c.free() > 0 && c.bestEffort() < s.beLimit(c):
		p.job = s.be.pop()
	case len(c.be) > 0:
		p = c.be[0]
		c.be = slices.Delete(c.be, 0, 1)
		a.Resume = true
	default:
		return
	}
	c.run, c.used, c.runAt, c.busy, c.pinned = p.job, p.used, now, true, false
	s.index[p.job.ID] = loc{core: c.idx, deadline: p.job.Deadline, started: true}
	a.Run, a.Used = p.job, p.used
	if p.job.Deadline == 0 && s.cfg.Quantum > 0 && s.beWaiting(c) {
		a.Recheck = now + s.cfg.Quantum
	}
}

// Done marks the running job of core finished at now and returns it; its
// lane is idle again. ok is false if core was idle. Call Next afterwards.
func (s *Scheduler) Done(core int, now int64) (j Job, ok bool) {
	c := &s.cores[core]
	if !c.busy {
		return Job{}, false
	}
	j = c.endRun(now)
	c.st.Completed++
	delete(s.index, j.ID)
	return j, true
}

// Remove takes the started job id (running or stopped) off core at now
// because its lane is gone: killed at its deadline or cap, or crashed. The
// core has one live lane less until LaneUp; if that leaves no lane free,
// the core counts as blocked for Config.RestartCost. ok is false if id is
// not started on core. Call Next afterwards.
func (s *Scheduler) Remove(core int, id uint64, now int64) (j Job, ok bool) {
	c := &s.cores[core]
	switch {
	case c.busy && c.run.ID == id:
		j = c.endRun(now)
	default:
		if i := slices.IndexFunc(c.stack, func(p paused) bool { return p.job.ID == id }); i >= 0 {
			j = c.stack[i].job
			c.stack = slices.Delete(c.stack, i, i+1)
			if !c.q.remove(j.Deadline, j.ID) {
				panic("sched: a stopped job is missing from its core's queue") // broken invariant
			}
		} else if i := slices.IndexFunc(c.be, func(p paused) bool { return p.job.ID == id }); i >= 0 {
			j = c.be[i].job
			c.be = slices.Delete(c.be, i, i+1)
		} else {
			return Job{}, false
		}
	}
	c.st.Removed++
	delete(s.index, id)
	s.laneLost(c, now)
	return j, true
}

// LaneDown records that an idle lane of core died at now (Remove covers a
// lane that held a job). Call Next afterwards.
func (s *Scheduler) LaneDown(core int, now int64) {
	c := &s.cores[core]
	if c.free() > 0 {
		s.laneLost(c, now)
	}
}

func (s *Scheduler) laneLost(c *core, now int64) {
	c.lanes--
	if c.free() <= 0 {
		c.blocked = now + s.cfg.RestartCost
	}
}

// LaneUp records that a lane of core (re)started, up to Config.Lanes. Call
// Next afterwards.
func (s *Scheduler) LaneUp(core int) {
	c := &s.cores[core]
	c.lanes = min(c.lanes+1, s.cfg.Lanes)
	if c.free() > 0 {
		c.blocked = 0
	}
}

// SetLanes sets how many lanes of core are live, for a core whose lanes
// are (re)started together; at least the started jobs.
func (s *Scheduler) SetLanes(core, n int) {
	c := &s.cores[core]
	c.lanes = min(max(n, c.started()), s.cfg.Lanes)
	if c.free() > 0 {
		c.blocked = 0
	}
}

// Cancel removes the queued job id, from whichever core's queue or the
// best-effort FIFO, and reports whether it was queued. A started job is not
// cancelled (false): it ends with Done or Remove.
func (s *Scheduler) Cancel(id uint64) bool {
	at, ok := s.index[id]
	if !ok || at.started {
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
	if !c.q.remove(at.deadline, id) {
		panic("sched: index names a job its core's queue lacks") // broken invariant
	}
	c.st.Cancelled++
	delete(s.index, id)
	return true
}

// Drain empties core after all its lanes were lost or stopped: it removes
// and returns the queued (never started) deadline jobs in EDF order, for
// the caller to re-Admit elsewhere (typically after SetAvailable(core,
// false)), and the started ones (running, then stopped), whose answers are
// the caller's. The best-effort FIFO is untouched.
func (s *Scheduler) Drain(core int) (queued, started []Job) {
	c := &s.cores[core]
	if c.busy {
		started = append(started, c.run)
	}
	for i := len(c.stack) - 1; i >= 0; i-- {
		started = append(started, c.stack[i].job)
	}
	for _, p := range c.be {
		started = append(started, p.job)
	}
	for _, j := range c.q.appendJobs(nil) {
		if at := s.index[j.ID]; !at.started {
			queued = append(queued, j)
		}
	}
	for _, j := range started {
		delete(s.index, j.ID)
	}
	for _, j := range queued {
		delete(s.index, j.ID)
	}
	c.st.Drained += uint64(len(queued))
	c.q.clear()
	c.clearRun()
	c.stack, c.be = c.stack[:0], c.be[:0]
	return queued, started
}

// SetWarm records that a lane of core polls for its next job until until
// (ns, the scheduler's clock): work starting on the idle core before then
// is not charged WakeCost.
func (s *Scheduler) SetWarm(core int, until int64) { s.cores[core].warmUntil = until }

// SetAvailable takes core into (ok) or out of admission. An unavailable
// core admits no new deadline job and starts no new best-effort job, but
// Next still runs the work it has; Drain it if its lanes are gone. Cores
// start available.
func (s *Scheduler) SetAvailable(core int, ok bool) { s.cores[core].off = !ok }

// Running returns the job running on core and when it last started or
// resumed; ok is false if no job runs.
func (s *Scheduler) Running(core int) (j Job, start int64, ok bool) {
	c := &s.cores[core]
	return c.run, c.runAt, c.busy
}

// CoreStats describes one core. The counters only grow.
type CoreStats struct {
	Available bool   // admits new work (SetAvailable)
	Queued    int    // deadline jobs queued, not started
	Running   bool   // a job is running
	RunningID uint64 // the running job's ID, if Running
	Stopped   int    // started jobs whose lanes are stopped
	Lanes     int    // live lanes
	// Backlog is the planned work from now, ns: the running job's
	// remaining blocking time (as in the admission test) plus every queued
	// or stopped job's remaining estimate.
	Backlog int64
	// Slack is the minimum over the queued jobs of deadline minus planned
	// finish, ns; negative if one is already late, 0 if none is queued.
	Slack int64
	// Busy is the run time of the jobs ended with Done or Remove, ns.
	Busy int64

	Admitted    uint64 // deadline jobs enqueued here by Admit
	Completed   uint64 // jobs ended with Done
	Removed     uint64 // started jobs ended with Remove (killed, lost)
	Cancelled   uint64 // queued jobs removed by Cancel
	Drained     uint64 // queued jobs removed by Drain
	Expired     uint64 // queued jobs dropped by Next past their deadline
	Infeasible  uint64 // Admit tests this core failed
	Preemptions uint64 // running jobs stopped for a deadline job
	Rotations   uint64 // best-effort jobs stopped at the end of a quantum
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
	Chains     uint64 // chains admitted (AdmitChain); their stages count in Admitted
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
		Chains:           s.chains,
	}
	for i := range s.cores {
		c := &s.cores[i]
		cs := c.st
		cs.Available = !c.off
		cs.Queued = c.q.len() - len(c.stack)
		cs.Stopped = len(c.stack) + len(c.be)
		cs.Lanes = c.lanes
		cs.Running = c.busy
		cs.RunningID = c.run.ID
		t0 := s.free(c, now)
		cs.Backlog = s.head(c, now) - now + c.q.total() // without the slack kept
		if c.q.len() > 0 {
			if l := c.q.latest(); l != infinity {
				cs.Slack = l - t0
			}
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
