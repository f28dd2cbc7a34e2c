// Package dispatch carries out the scheduler's decisions on the worker
// cores: it owns the [sched.Scheduler], the lanes of every core (the lane
// processes, behind the [Lane] interface), and the timers that enforce
// firm deadlines, best-effort caps and round-robin quanta.
//
// The supervisor turns HTTP calls into [Task]s and hands them to Admit; it
// reports lane processes coming up and going down, and every result frame.
// The dispatcher starts, stops, resumes and kills lanes, and gives every
// admitted task exactly one [Outcome] on its Done channel. Time comes from
// an injected [Clock], so the whole unit runs in tests with fake lanes and
// a fake clock, without processes or root.
//
// # Preemption
//
// At most one lane of a core runs. To preempt, the dispatcher first sends
// the urgent job to an idle lane (waking it), then stops the running lane;
// when a job ends it resumes the stopped lane the scheduler names. Waking
// first keeps the CPU busy across the switch, which avoids the cost of
// waking an idle CPU (docs/preemption.md).
//
// # Locking
//
// A Dispatcher is safe for concurrent use; one mutex guards it. It calls
// only its Lane and Clock methods while holding it, so those must not call
// back into the Dispatcher. Outcomes are sent on buffered channels, never
// through callbacks.
package dispatch

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hyper-sched/hyper-sched/sched"
)

// ErrAborted is Admit's error after Abort.
var ErrAborted = errors.New("dispatch: aborted")

// Clock is the dispatcher's time source.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Lane is one lane process. Its methods must not block for long and must
// not call the Dispatcher. A lane that fails is reported by the supervisor
// with LaneDown; errors here are only logged by the caller's Lane.
type Lane interface {
	// Start sends t's job to the idle lane.
	Start(t *Task)
	// Stop stops the running lane (SIGSTOP).
	Stop()
	// Resume resumes a stopped lane (SIGCONT).
	Resume()
	// Kill kills the lane (SIGKILL); LaneDown follows when it is gone.
	Kill()
	// Finishing reports whether the result of job id has been read from
	// the lane or waits in its socket: the job ended, and killing the lane
	// now would lose the answer.
	Finishing(id uint64) bool
	// Park tells an idle lane that may still be spinning after its last
	// job (Config.Spin) to block now, because another lane of its core is
	// about to run.
	Park()
}

// Kind says how a task ended.
type Kind int

// Outcomes of a task.
const (
	Finished  Kind = iota // the lane answered; Result holds its frame
	Killed                // still running at its firm deadline or best-effort cap
	Expired               // its deadline passed while it was queued
	Lost                  // its lane died, or its core went away with no room elsewhere
	Cancelled             // Cancel before it started
	Aborted               // Abort (shutdown)
)

func (k Kind) String() string {
	switch k {
	case Finished:
		return "finished"
	case Killed:
		return "killed"
	case Expired:
		return "expired"
	case Lost:
		return "lost"
	case Cancelled:
		return "cancelled"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Outcome is how a task ended.
type Outcome struct {
	Kind   Kind
	Result any    // Finished: the lane's result, as passed to Result
	Why    string // Killed, Lost, Aborted: what happened
	// Core and Lane ran the task (-1 if it never started).
	Core, Lane int
	Started    time.Time // first start; zero if it never started
	Finished   time.Time // when the outcome was decided
	// Ran is the task's run time: from each start or resume to the next
	// stop or its end.
	Ran time.Duration
	// Preempted says the task stopped another when it started; Stops is
	// how many times its own lane was stopped.
	Preempted bool
	Stops     int
}

// Task is one call as the dispatcher sees it. The caller fills the fields
// above the line and receives the outcome on Done.
type Task struct {
	ID         uint64
	Deadline   time.Time     // zero: best effort
	LateCap    time.Duration // how long past Deadline it may run (allow_late)
	Estimate   time.Duration // the execution time admission assumes
	Unverified bool          // Estimate is nobody's measurement (sched.Job.Unverified)
	Payload    any           // the caller's, for Lane.Start
	// Feed, for a stage of a chain after the first (AdmitChain), is
	// called with the Result of the stage before it when that one
	// finished, before this one can start, with the dispatcher's lock
	// held: it must not call the Dispatcher. It sets up the stage's input
	// (in Payload) and returns false when that result is a failure (a
	// trap, a non-zero exit), which ends the chain there. Nil: every
	// result is fed on.
	Feed func(prev any) bool

	Done chan Outcome // buffered 1; receives exactly one Outcome

	// Guarded by the dispatcher's mutex; read with Timeline.
	core, lane int
	started    time.Time
	resumed    time.Time // last start or resume, zero while stopped
	ran        time.Duration
	steps      []Step
	timer      Timer // firm deadline or best-effort cap
	answered   bool
	preempting bool // it stopped another job when it started
	stops      int
	chain      *chain // nil: not a stage of a chain
	stage      int    // its index in chain
}

// NewTask returns a task with its Done channel.
func NewTask(id uint64) *Task {
	// Room for the usual steps (admitted, started, finished, …) in one
	// allocation, rather than three as the slice grows.
	return &Task{ID: id, Done: make(chan Outcome, 1), core: -1, lane: -1, steps: make([]Step, 0, 4)}
}

// Step is one dispatcher event of a task.
type Step struct {
	At     time.Time
	What   string // admitted, started, stopped, resumed, …
	Detail string
}

// Config configures a Dispatcher.
type Config struct {
	Cores int
	Sched sched.Config // Lanes is the number of lanes per core
	// Grace is added to a firm deadline (plus LateCap) before the kill:
	// timer slack. sched.Config.Grace covers it and the kill itself.
	Grace time.Duration
	// Spin is how long a lane polls for its next job after answering one
	// before it blocks (the coreworker's side of Hello.SpinNs). The
	// dispatcher then gives a core's next job to the lane that may still
	// spin, and parks that lane before any other lane of the core runs:
	// on a CPU of its own a spinning lane would hold it from them.
	Spin  time.Duration
	Clock Clock // nil: RealClock
}

// Dispatcher runs admitted tasks on the lanes of every core.
type Dispatcher struct {
	mu    sync.Mutex
	clock Clock
	epoch time.Time
	grace time.Duration
	spin  time.Duration
	cap   time.Duration
	sc    *sched.Scheduler
	cores []coreState
	tasks map[uint64]*Task // admitted, not yet answered
	count Counters
	// aborted: every task was answered (Abort); nothing starts or resumes
	// any more, and Admit refuses.
	aborted bool
	// names are the steps' details, made once: formatting them for every
	// job was a third of the dispatcher's allocations.
	names struct {
		core, lane []string
		coreLane   [][]string
	}
}

type coreState struct {
	lanes   []laneState
	recheck Timer
	// expiry fires when the head of the queue passes its deadline
	// (sched.Expiry), at expiryAt.
	expiry   Timer
	expiryAt int64
	// warm is the lane that answered the core's last job and may still
	// spin until warmUntil; -1 when none may.
	warm      int
	warmUntil time.Time
}

type laneState struct {
	l       Lane  // nil: down (not started, or died and not yet back)
	dead    bool  // killed by us, LaneDown not yet seen
	task    *Task // started on it: running or stopped
	stopped bool
	// hold is set by Hold and closed once the lane is out of service
	// (held): nothing is started on it until Release.
	hold chan struct{}
	held bool
}

// Counters are the dispatcher's lifetime totals.
type Counters struct {
	Admitted    uint64 `json:"admitted"`
	Preemptions uint64 `json:"preemptions"` // running jobs stopped for a deadline job
	Resumes     uint64 `json:"resumes"`
	Rotations   uint64 `json:"quantum_rotations"` // best-effort jobs stopped at a quantum's end
	Kills       uint64 `json:"kills"`             // lanes killed at a firm deadline or cap
	Expired     uint64 `json:"expired"`           // deadlines passed while queued
	Lost        uint64 `json:"lost"`              // jobs whose lane or core went away
	LanesLost   uint64 `json:"lanes_lost"`        // lanes that died without being killed
	Holds       uint64 `json:"holds"`             // lanes taken out of service for a while (module loads)
	Chains      uint64 `json:"chains"`            // chains admitted (AdmitChain); each stage counts in Admitted
}

// New returns a dispatcher with no lane up: every core is unavailable
// until LaneUp.
func New(cfg Config) (*Dispatcher, error) {
	sc, err := sched.New(cfg.Cores, cfg.Sched)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	d := &Dispatcher{clock: cfg.Clock, grace: cfg.Grace, spin: cfg.Spin, sc: sc, cores: make([]coreState, cfg.Cores),
		tasks: map[uint64]*Task{}}
	d.epoch = d.clock.Now()
	d.cap = time.Duration(sc.Config().BestEffortCap)
	lanes := sc.Config().Lanes
	for li := range lanes {
		d.names.lane = append(d.names.lane, fmt.Sprintf("lane %d", li))
	}
	for i := range d.cores {
		d.names.core = append(d.names.core, fmt.Sprintf("core %d", i))
		d.names.coreLane = append(d.names.coreLane, make([]string, lanes))
		for li := range lanes {
			d.names.coreLane[i][li] = fmt.Sprintf("core %d lane %d", i, li)
		}
		d.cores[i].warm = -1
		d.cores[i].lanes = make([]laneState, sc.Config().Lanes)
		sc.SetLanes(i, 0)
		sc.SetAvailable(i, false)
	}
	return d, nil
}

// Lanes returns the number of lanes per core.
func (d *Dispatcher) Lanes() int { return d.sc.Config().Lanes }

// now is the scheduler's clock: ns since the dispatcher was made.
func (d *Dispatcher) now() int64 { return d.at(d.clock.Now()) }

func (d *Dispatcher) at(t time.Time) int64 { return t.Sub(d.epoch).Nanoseconds() }

// Admit admits t or returns the scheduler's error (sched.ErrInvalidDeadline,
// *sched.Unschedulable, sched.ErrQueueFull, …). Once admitted, t gets
// exactly one Outcome on t.Done. It returns the chosen core (-1 for best
// effort).
func (d *Dispatcher) Admit(t *Task) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		return -1, ErrAborted
	}
	core, err := d.sc.Admit(d.now(), d.job(t))
	if err != nil {
		return -1, err
	}
	d.tasks[t.ID] = t
	d.count.Admitted++
	t.core = core
	if core >= 0 {
		d.step(t, "admitted", d.names.core[core])
	} else {
		d.step(t, "queued", "best effort")
	}
	d.nextFor(t)
	return core, nil
}

// job is t as the scheduler sees it.
func (d *Dispatcher) job(t *Task) sched.Job {
	j := sched.Job{ID: t.ID, Estimate: t.Estimate.Nanoseconds(), LateCap: t.LateCap.Nanoseconds(),
		Unverified: t.Unverified}
	if !t.Deadline.IsZero() {
		j.Deadline = max(d.at(t.Deadline), 1)
	}
	return j
}

// Cancel answers t Cancelled if it has not started (its client went away)
// and reports whether it did. A started task runs to its outcome.
func (d *Dispatcher) Cancel(id uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil || !d.sc.Cancel(id) {
		return false
	}
	d.answer(t, Outcome{Kind: Cancelled, Why: "cancelled before it started"})
	d.nextFor(t) // a job pinned for it may be preempted again, best effort may rotate
	return true
}

// nextFor runs next on the core of t, which was just admitted or left its
// queue, or on every core for a best-effort t; d.mu held.
func (d *Dispatcher) nextFor(t *Task) {
	if t.core >= 0 {
		d.next(t.core)
		return
	}
	for i := range d.cores {
		d.next(i)
	}
}

// LaneUp records that lane li of core is up and idle, served by l.
func (d *Dispatcher) LaneUp(core, li int, l Lane) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls := &d.cores[core].lanes[li]
	if ls.l != nil {
		d.laneDown(core, li, "replaced") // its LaneDown never came
	}
	*ls = laneState{l: l}
	d.sc.LaneUp(core)
	d.sc.SetAvailable(core, true)
	d.next(core)
}

// LaneDown records that lane li of core, served by l, is gone. Its job,
// if it had one that was not answered yet, is answered Lost with why.
// A report for a lane already replaced is ignored. It reports whether the
// lane held a job (running or stopped).
func (d *Dispatcher) LaneDown(core, li int, l Lane, why string) (busy bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls := &d.cores[core].lanes[li]
	if ls.l != l || l == nil {
		return false
	}
	busy = ls.task != nil
	d.laneDown(core, li, why)
	return busy
}

// Hold takes lane li of core, served by l, out of service for a while
// (a module load): at once when it is idle, else once its job ends. The
// returned channel is closed then, or when the lane goes away first, which
// Held tells apart. Until Release nothing is started on it, and admission
// counts its core one lane short. A lane has one hold at a time; the
// caller serializes them.
func (d *Dispatcher) Hold(core, li int, l Lane) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan struct{})
	ls := &d.cores[core].lanes[li]
	if ls.l != l || l == nil || ls.dead || ls.hold != nil {
		close(ch)
		return ch
	}
	ls.hold = ch
	if ls.task == nil {
		d.sc.LaneDown(core, d.now())
		d.holdNow(core, ls)
	}
	return ch
}

// holdNow marks ls, a lane of core, held, its job being over; d.mu held,
// the scheduler told.
func (d *Dispatcher) holdNow(core int, ls *laneState) {
	ls.held = true
	d.count.Holds++
	if d.spin > 0 {
		// It may spin after its last job, and the holder's frame may
		// come later: others of its core run meanwhile.
		ls.l.Park()
		if cs := &d.cores[core]; cs.warm >= 0 && &cs.lanes[cs.warm] == ls {
			cs.warm = -1
			d.sc.SetWarm(core, 0)
		}
	}
	close(ls.hold)
}

// Held reports whether lane li of core, served by l, is held (Hold).
func (d *Dispatcher) Held(core, li int, l Lane) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls := &d.cores[core].lanes[li]
	return ls.l == l && l != nil && ls.held
}

// Release puts a held lane back in service, or withdraws a hold still
// waiting for the lane's job to end; for a lane replaced meanwhile it does
// nothing.
func (d *Dispatcher) Release(core, li int, l Lane) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls := &d.cores[core].lanes[li]
	if ls.l != l || l == nil || ls.hold == nil {
		return
	}
	if !ls.held {
		close(ls.hold)
		ls.hold = nil
		return
	}
	ls.held, ls.hold = false, nil
	d.sc.LaneUp(core)
	d.next(core)
}

// laneDown forgets lane li of core; d.mu held.
func (d *Dispatcher) laneDown(core, li int, why string) {
	ls := &d.cores[core].lanes[li]
	dead, t, held := ls.dead, ls.task, ls.held
	if ls.hold != nil && !held {
		close(ls.hold) // whoever waits finds the lane gone
	}
	*ls = laneState{}
	if cs := &d.cores[core]; cs.warm == li {
		cs.warm = -1
		d.sc.SetWarm(core, 0)
	}
	if dead {
		return // our kill: the scheduler knows already
	}
	d.count.LanesLost++
	now := d.now()
	switch {
	case t != nil:
		d.sc.Remove(core, t.ID, now)
		d.count.Lost++
		d.answer(t, Outcome{Kind: Lost, Why: why})
	case !held: // a held lane is out of the count already
		d.sc.LaneDown(core, now)
	}
	d.next(core)
}

// CoreDown takes core out of service (every lane stopped or given up):
// its queued tasks are admitted again on the other cores, or answered Lost
// with why when none can take them; its started ones are answered Lost.
// The caller kills the lanes and reports them with LaneDown as usual.
func (d *Dispatcher) CoreDown(core int, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sc.SetAvailable(core, false)
	queued, started := d.sc.Drain(core)
	for li := range d.cores[core].lanes {
		ls := &d.cores[core].lanes[li]
		ls.task, ls.stopped = nil, false
	}
	for _, j := range started {
		if t := d.tasks[j.ID]; t != nil {
			d.count.Lost++
			d.answer(t, Outcome{Kind: Lost, Why: why})
		}
	}
	now := d.now()
	readmitted := map[*chain]bool{}
	for _, j := range queued {
		t := d.tasks[j.ID]
		if t == nil {
			continue
		}
		if t.chain != nil {
			// The rest of a chain stays together (AdmitChain).
			if !readmitted[t.chain] {
				readmitted[t.chain] = true
				d.readmitChain(t, why)
			}
			continue
		}
		c, err := d.sc.Admit(now, d.job(t))
		if err != nil {
			d.count.Lost++
			d.answer(t, Outcome{Kind: Lost, Why: why + ", and no other core can finish it in time"})
			continue
		}
		t.core = c
		d.step(t, "re-admitted", fmt.Sprintf("core %d after %s", c, why))
		d.next(c)
	}
}

// Result delivers lane li's result frame for job id; res is passed through
// in the Outcome. A result for a task no longer on that lane is dropped
// (false).
//
// A stopped lane's result is its job's too: the job ended just before the
// lane was stopped, and its frame was read after. The lane, idle, is
// resumed to take the next job.
func (d *Dispatcher) Result(core, li int, l Lane, id uint64, res any) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls := &d.cores[core].lanes[li]
	if ls.l != l || ls.dead || ls.task == nil || ls.task.ID != id {
		return false
	}
	t := ls.task
	ls.task = nil
	if ls.stopped {
		// The scheduler has no Done for a stopped job: it leaves with its
		// lane, which comes straight back unless it is to be held. Either
		// way the process goes on, to its next frame.
		ls.stopped = false
		d.sc.Remove(core, id, d.now())
		if ls.hold != nil {
			d.holdNow(core, ls)
		} else {
			d.sc.LaneUp(core)
		}
		ls.l.Resume()
	} else {
		d.sc.Done(core, d.now())
		if ls.hold != nil {
			d.sc.LaneDown(core, d.now())
			d.holdNow(core, ls)
		} else if d.spin > 0 {
			cs := &d.cores[core]
			cs.warm, cs.warmUntil = li, d.clock.Now().Add(d.spin)
			d.sc.SetWarm(core, d.at(cs.warmUntil))
		}
	}
	d.answer(t, Outcome{Kind: Finished, Result: res})
	d.next(core)
	return true
}

// Abort answers every task not yet answered with Aborted and why
// (shutdown). Lanes are left as they are, but nothing is started or
// resumed on them any more: results, timers and lanes going down after it
// change nothing, and Admit returns ErrAborted.
func (d *Dispatcher) Abort(why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aborted = true
	for _, t := range d.tasks {
		d.sc.Cancel(t.ID)
		d.answer(t, Outcome{Kind: Aborted, Why: why})
	}
}

// next carries out the scheduler's decisions for core and arms its expiry
// timer; d.mu held.
func (d *Dispatcher) next(core int) {
	d.decide(core)
	d.armExpiry(core)
}

// armExpiry arms core's timer for the expiry of its queue's head, once per
// distinct time; d.mu held.
func (d *Dispatcher) armExpiry(core int) {
	cs := &d.cores[core]
	at, ok := d.sc.Expiry(core)
	if ok && cs.expiry != nil && at == cs.expiryAt {
		return
	}
	if cs.expiry != nil {
		cs.expiry.Stop()
		cs.expiry, cs.expiryAt = nil, 0
	}
	if !ok || d.aborted {
		return
	}
	cs.expiryAt = at
	cs.expiry = d.clock.AfterFunc(time.Duration(max(at-d.now(), 0)), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if cs.expiryAt == at {
			cs.expiry, cs.expiryAt = nil, 0
			d.next(core)
		}
	})
}

// decide carries out the scheduler's decisions for core; d.mu held.
func (d *Dispatcher) decide(core int) {
	if d.aborted {
		return // the scheduler's started jobs are answered already
	}
	cs := &d.cores[core]
	for range 4 {
		now := d.now()
		a := d.sc.Next(core, now)
		for _, j := range a.Expired {
			if t := d.tasks[j.ID]; t != nil {
				d.count.Expired++
				d.answer(t, Outcome{Kind: Expired, Why: "its deadline passed while it was queued"})
			}
		}
		if a.Recheck != 0 {
			if cs.recheck != nil {
				cs.recheck.Stop()
			}
			cs.recheck = d.clock.AfterFunc(time.Duration(a.Recheck-now), func() {
				d.mu.Lock()
				defer d.mu.Unlock()
				d.next(core)
			})
		}
		if a.Run.ID == 0 {
			if a.Stop.ID != 0 {
				panic("dispatch: the scheduler stopped a job without running another")
			}
			if len(a.Expired) == 0 {
				return
			}
			continue
		}
		// Wake first, then stop: the CPU never idles in between.
		if t := d.tasks[a.Run.ID]; t != nil && !a.Resume {
			t.preempting = a.Stop.ID != 0 && a.Run.Deadline != 0
		}
		d.run(core, a)
		if a.Stop.ID != 0 {
			d.stop(core, a.Stop.ID, a.Run.Deadline == 0)
		}
		return
	}
}

// run starts or resumes a.Run on core; d.mu held.
func (d *Dispatcher) run(core int, a sched.Action) {
	t := d.tasks[a.Run.ID]
	if t == nil {
		panic(fmt.Sprintf("dispatch: the scheduler runs unknown job %d", a.Run.ID))
	}
	now := d.clock.Now()
	lanes := d.cores[core].lanes
	if a.Resume {
		d.park(core, t.lane, now)
		ls := &lanes[t.lane]
		ls.stopped = false
		t.resumed = now
		d.count.Resumes++
		d.step(t, "resumed", d.names.lane[t.lane])
		ls.l.Resume()
		d.armCap(t, time.Duration(a.Used))
		return
	}
	li := -1
	if w := d.cores[core].warm; w >= 0 && lanes[w].idle() && now.Before(d.cores[core].warmUntil) {
		li = w // it polls for this job: no CPU to wake
	}
	for i := range lanes {
		if li < 0 && lanes[i].idle() {
			li = i
		}
	}
	if li < 0 {
		panic(fmt.Sprintf("dispatch: core %d has no idle lane for job %d", core, t.ID))
	}
	// A warm lane not chosen is not idle: held (and parked then), or
	// gone. The core is busy now; whatever ends its job says whether a
	// lane spins after it.
	d.cores[core].warm = -1
	d.sc.SetWarm(core, 0)
	ls := &lanes[li]
	ls.task, ls.stopped = t, false
	t.core, t.lane, t.started, t.resumed = core, li, now, now
	d.step(t, "started", d.names.coreLane[core][li])
	ls.l.Start(t)
	if t.Deadline.IsZero() {
		d.armCap(t, 0)
		return
	}
	kill := t.Deadline.Add(t.LateCap + d.grace)
	what := "its deadline"
	if t.LateCap > 0 {
		what = fmt.Sprintf("%v past its deadline (allow_late)", t.LateCap)
	}
	t.timer = d.clock.AfterFunc(kill.Sub(now), func() { d.overrun(t, what) })
}

// idle reports whether a job can be started on the lane.
func (ls *laneState) idle() bool {
	return ls.l != nil && !ls.dead && !ls.held && ls.task == nil
}

// park tells core's warm lane to stop spinning unless it is lane li,
// which is about to run; d.mu held.
func (d *Dispatcher) park(core, li int, now time.Time) {
	cs := &d.cores[core]
	w := cs.warm
	if w < 0 || w == li {
		return
	}
	cs.warm = -1
	d.sc.SetWarm(core, 0)
	if ls := &cs.lanes[w]; ls.idle() && now.Before(cs.warmUntil) {
		ls.l.Park()
	}
}

// armCap arms a best-effort task's cap for the run time it has left; d.mu
// held.
func (d *Dispatcher) armCap(t *Task, used time.Duration) {
	if !t.Deadline.IsZero() {
		return
	}
	left := max(d.cap-used, 0) + d.grace
	t.timer = d.clock.AfterFunc(left, func() { d.overrun(t, "the best-effort runtime cap "+d.cap.String()) })
}

// stop stops the lane of running task id on core; d.mu held.
func (d *Dispatcher) stop(core int, id uint64, rotation bool) {
	t := d.tasks[id]
	ls := &d.cores[core].lanes[t.lane]
	ls.stopped = true
	t.stops++
	now := d.clock.Now()
	t.ran += now.Sub(t.resumed)
	t.resumed = time.Time{}
	if rotation {
		d.count.Rotations++
		d.step(t, "stopped", "quantum ended")
	} else {
		d.count.Preemptions++
		d.step(t, "stopped", "preempted")
	}
	if t.Deadline.IsZero() && t.timer != nil {
		t.timer.Stop() // the cap counts run time only
		t.timer = nil
	}
	ls.l.Stop()
}

// overrun fires at t's kill time: if t is still started and its result
// is not on its way, its lane is killed and t answered Killed.
func (d *Dispatcher) overrun(t *Task, what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.answered || t.lane < 0 {
		return
	}
	core := t.core
	ls := &d.cores[core].lanes[t.lane]
	if ls.task != t || ls.dead {
		return
	}
	if ls.l.Finishing(t.ID) {
		// It ended in time, or nearly (perhaps just before its lane was
		// stopped): its answer says so.
		return
	}
	ls.dead, ls.task = true, nil
	ls.l.Kill()
	d.count.Kills++
	d.sc.Remove(core, t.ID, d.now())
	state := "running"
	if ls.stopped {
		state = "stopped"
	}
	d.answer(t, Outcome{Kind: Killed, Why: fmt.Sprintf("still %s at %s; its lane was killed", state, what)})
	d.next(core)
}

// answer delivers t's one outcome; d.mu held.
func (d *Dispatcher) answer(t *Task, o Outcome) {
	if t.answered {
		return
	}
	t.answered = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	now := d.clock.Now()
	if !t.resumed.IsZero() {
		t.ran += now.Sub(t.resumed)
		t.resumed = time.Time{}
	}
	o.Core, o.Lane, o.Started, o.Finished, o.Ran = -1, -1, t.started, now, t.ran
	o.Preempted, o.Stops = t.preempting, t.stops
	if !t.started.IsZero() {
		o.Core, o.Lane = t.core, t.lane
	}
	d.step(t, o.Kind.String(), o.Why)
	delete(d.tasks, t.ID)
	t.Done <- o
	if t.chain != nil {
		d.chainAfter(t, o)
	}
}

func (d *Dispatcher) step(t *Task, what, detail string) {
	t.steps = append(t.steps, Step{At: d.clock.Now(), What: what, Detail: detail})
}

// Timeline returns a copy of t's dispatcher events.
func (d *Dispatcher) Timeline(t *Task) []Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Step(nil), t.steps...)
}

// LaneInfo describes one lane for status.
type LaneInfo struct {
	Up      bool
	State   string // "down", "idle", "held", "running", "stopped", "killed"
	Task    uint64 // job started on it, 0 if none
	Stopped bool
}

// CoreInfo describes one core for status.
type CoreInfo struct {
	sched.CoreStats
	Lanes []LaneInfo
}

// Stats returns the scheduler's stats, each core's lanes and the counters.
func (d *Dispatcher) Stats() (sched.Stats, []CoreInfo, Counters) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.sc.Stats(d.now())
	out := make([]CoreInfo, len(d.cores))
	for i := range d.cores {
		out[i].CoreStats = st.Cores[i]
		for _, ls := range d.cores[i].lanes {
			li := LaneInfo{Up: ls.l != nil && !ls.dead, State: "down", Stopped: ls.stopped}
			switch {
			case ls.dead:
				li.State = "killed"
			case ls.l == nil:
			case ls.held:
				li.State = "held"
			case ls.task == nil:
				li.State = "idle"
			case ls.stopped:
				li.State = "stopped"
			default:
				li.State = "running"
			}
			if ls.task != nil {
				li.Task = ls.task.ID
			}
			out[i].Lanes = append(out[i].Lanes, li)
		}
	}
	return st, out, d.count
}

// SetRestartCost sets the measured time a replacement lane takes to start.
func (d *Dispatcher) SetRestartCost(cost time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sc.SetRestartCost(cost.Nanoseconds())
}

// SetWakeCost sets the measured time a sleeping lane takes to wake for a
// job (sched.Config.WakeCost).
func (d *Dispatcher) SetWakeCost(cost time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sc.SetWakeCost(cost.Nanoseconds())
}

// SetTailCost sets the slack every core's plan keeps for one slow hop
// (sched.Config.TailCost).
func (d *Dispatcher) SetTailCost(cost time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sc.SetTailCost(cost.Nanoseconds())
}

// Config returns the scheduler's resolved configuration.
func (d *Dispatcher) Config() sched.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sc.Config()
}

// Lose answers task id Lost with why if it has not started (no worker will
// take it), and reports whether it did.
func (d *Dispatcher) Lose(id uint64, why string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil || !d.sc.Cancel(id) {
		return false
	}
	d.count.Lost++
	d.answer(t, Outcome{Kind: Lost, Why: why})
	d.nextFor(t)
	return true
}
