package sched

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The simulator replays what the supervisor does, one discrete event at a
// time, and carries out every Action as the dispatcher would: arrivals call
// Admit, a job whose true run time has elapsed calls Done, a deadline job
// still started at Deadline+LateCap+Grace (running or stopped) and a
// best-effort job at its cap are killed (Remove, and LaneUp RestartCost
// later), Recheck times call Next, and chaos cancels queued jobs, crashes
// started ones, loses idle lanes, takes cores out of admission and loses
// whole workers (Drain). Verified jobs run at most their estimates (a
// preempting job also pays PreemptCost); unverified ones may lie and run
// into their kills. Before every Admit the brute-force oracle checks the
// decision, and whether the following Next preempts.
//
// Checked throughout: every admitted verified deadline job finishes by its
// deadline, unless chaos removed it or made its core's plan late (then the
// oracle says which jobs the plan now misses); at most one job runs per
// core and started jobs never exceed live lanes; a new job starts only on
// a free lane; a best-effort job runs while deadline work waits on its core
// only if no lane is free or that work was admitted to wait for it; while
// another best-effort job could run, a running one has a Recheck at its
// quantum's end and is rotated out there; Used is the run time so far.

type jobState int

const (
	stWaiting   jobState = iota // not yet arrived, or refused
	stQueued                    // in a core's queue or the best-effort FIFO
	stRunning                   //
	stStopped                   //
	stDone                      // Done
	stCancelled                 //
	stExpired                   // dropped by Next
	stKilled                    // Remove at its kill
	stLost                      // crashed by chaos or drained while started
)

type simJob struct {
	job    Job
	arrive int64
	exec   int64 // true run time (an unverified or best-effort job may outlive its kill)
	core   int   // where queued or started; -1 for the best-effort FIFO
	state  jobState
	admit  int64 // when admitted
	left   int64 // true run time left
	used   int64 // run time so far
	runAt  int64 // when last started or resumed
	killAt int64 // when its lane is killed if still started (deadline jobs)
	exempt bool  // chaos made it late
}

type simCore struct {
	run     uint64   // the running job, or 0
	stack   []uint64 // stopped deadline jobs, bottom first
	be      []uint64 // stopped best-effort jobs, least recently run first
	lanes   int      // live lanes
	ups     []int64  // when lost lanes come back
	recheck int64    // pending Recheck, or 0
	toggled bool     // taken out of admission by chaos
	dead    int64    // worker lost: back (available, all lanes) at this time, or 0
}

// scenario parameterises one family of random job sets.
type scenario struct {
	name       string
	seeds      int
	cores      int
	jobs       int
	horizon    int64   // arrivals are uniform in [0, horizon)
	maxC       int64   // estimates are uniform in [1, maxC]
	maxLax     int64   // deadline - arrival - estimate is uniform in [1, maxLax]
	round      int64   // if > 1, deadlines are rounded up to a multiple: ties
	shorter    bool    // true run time uniform in [1, C] instead of C
	be         float64 // share of best-effort jobs
	unverified float64 // share of unverified deadline jobs
	late       float64 // share of verified jobs allowed to finish late
	long       float64 // share of verified jobs 4 to 10 times maxC, with 20 times maxLax to spare
	cancel     float64 // per-event probability of a Cancel
	crash      float64 // per-event probability of crashing a started job
	laneDown   float64 // per-event probability of losing an idle lane
	toggle     float64 // per-event probability of a SetAvailable flip
	drain      float64 // per-event probability of losing a worker
	cfg        Config
}

// chaotic reports whether sc's chaos can make admitted jobs late.
func (sc scenario) chaotic() bool { return sc.crash > 0 || sc.laneDown > 0 || sc.drain > 0 }

type sim struct {
	t   *testing.T
	sc  scenario
	rng *rand.Rand
	s   *Scheduler
	cfg Config // resolved
	now int64

	jobs    map[uint64]*simJob
	ids     []uint64 // every job, for Cancel picks
	fifo    []uint64 // the best-effort FIFO as the simulator sees it
	cores   []simCore
	chaosAt []int64 // when chaos strikes

	admitted, rejected, completed, missedExempt    int
	preemptions, rotations, kills, expired, resume int
	doneCalls                                      uint64
}

func newSim(t *testing.T, sc scenario, seed uint64) *sim {
	s := mustNew(t, sc.cores, sc.cfg)
	m := &sim{
		t: t, sc: sc, rng: rand.New(rand.NewPCG(seed, 0x5eed)), s: s, cfg: s.cfg,
		jobs:  make(map[uint64]*simJob),
		cores: make([]simCore, sc.cores),
	}
	for i := range m.cores {
		m.cores[i].lanes = s.cfg.Lanes
	}
	return m
}

func (m *sim) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("at %d: %s", m.now, fmt.Sprintf(format, args...))
}

// generate returns the arrivals sorted by time, with IDs in random order so
// that ties on the deadline are broken by IDs unrelated to arrival.
func (m *sim) generate() []*simJob {
	perm := m.rng.Perm(m.sc.jobs)
	out := make([]*simJob, m.sc.jobs)
	for i := range out {
		sj := &simJob{arrive: m.rng.Int64N(m.sc.horizon), core: -1}
		sj.job.ID = uint64(perm[i]) + 1
		switch r := m.rng.Float64(); {
		case r < m.sc.be:
			if m.rng.IntN(2) == 0 {
				// A learned estimate, and the run takes at most that.
				sj.job.Estimate = 1 + m.rng.Int64N(2*m.sc.maxC)
				sj.exec = sj.job.Estimate
				if m.sc.shorter {
					sj.exec = 1 + m.rng.Int64N(sj.job.Estimate)
				}
			} else {
				// Unknown: the cap is the estimate. Sometimes the run goes
				// beyond it: killed there.
				sj.job.Estimate = m.cfg.BestEffortCap
				sj.exec = 1 + m.rng.Int64N(m.cfg.BestEffortCap+m.sc.maxC)
			}
		case r < m.sc.be+m.sc.unverified:
			// Any claim; the truth may be short or run into the kill.
			rel := 1 + m.rng.Int64N(m.sc.maxC+m.sc.maxLax)
			sj.job = Job{ID: sj.job.ID, Deadline: sj.arrive + rel, Estimate: m.rng.Int64N(m.sc.maxC), Unverified: true}
			sj.exec = 1 + m.rng.Int64N(2*rel)
			if m.rng.IntN(3) == 0 {
				sj.job.LateCap = m.rng.Int64N(m.sc.maxC)
			}
		default:
			c := 1 + m.rng.Int64N(m.sc.maxC)
			d := sj.arrive + c + 1 + m.rng.Int64N(m.sc.maxLax)
			if m.rng.Float64() < m.sc.long {
				c = 4*m.sc.maxC + m.rng.Int64N(6*m.sc.maxC)
				d = sj.arrive + c + 1 + m.rng.Int64N(20*m.sc.maxLax)
			}
			if r := m.sc.round; r > 1 {
				d = (d + r - 1) / r * r
			}
			sj.job.Estimate, sj.job.Deadline = c, d
			if m.rng.Float64() < m.sc.late {
				sj.job.LateCap = 1 + m.rng.Int64N(m.sc.maxLax)
			}
			sj.exec = c
			if m.sc.shorter {
				sj.exec = 1 + m.rng.Int64N(c)
			}
		}
		if sj.job.Deadline != 0 {
			sj.killAt = sj.job.Deadline + sj.job.LateCap + m.cfg.Grace
		}
		out[i] = sj
		m.jobs[sj.job.ID] = sj
		m.ids = append(m.ids, sj.job.ID)
	}
	slices.SortStableFunc(out, func(a, b *simJob) int { return int(a.arrive - b.arrive) })
	if m.sc.cancel+m.sc.crash+m.sc.laneDown+m.sc.toggle+m.sc.drain > 0 {
		for range m.sc.jobs {
			m.chaosAt = append(m.chaosAt, m.rng.Int64N(m.sc.horizon+m.sc.maxLax))
		}
		slices.Sort(m.chaosAt)
	}
	return out
}

// verified reports whether sj's deadline is guaranteed.
func verified(sj *simJob) bool { return sj.job.Deadline != 0 && !sj.job.Unverified }

// started lists core c's started jobs.
func (m *sim) started(c int) []uint64 {
	sc := &m.cores[c]
	out := slices.Concat(sc.stack, sc.be)
	if sc.run != 0 {
		out = append(out, sc.run)
	}
	return out
}

func (m *sim) free(c int) int { return m.cores[c].lanes - len(m.started(c)) }

// finish returns when the running job of core c ends by itself, and
// whether that end is a kill: a deadline job at killAt, a best-effort one
// when its run time reaches the cap, plus Grace.
func (m *sim) finish(c int) (at int64, kill bool) {
	sj := m.jobs[m.cores[c].run]
	at = sj.runAt + sj.left
	if sj.job.Deadline == 0 {
		if capAt := sj.runAt + m.cfg.BestEffortCap + m.cfg.Grace - sj.used; sj.used+sj.left > m.cfg.BestEffortCap && capAt < at {
			return capAt, true
		}
		return at, false
	}
	if sj.killAt < at {
		return max(sj.killAt, sj.runAt), true
	}
	return at, false
}

func (m *sim) run() {
	arr := m.generate()
	ai := 0
	for {
		t := int64(math.MaxInt64)
		if ai < len(arr) {
			t = arr[ai].arrive
		}
		if len(m.chaosAt) > 0 {
			t = min(t, m.chaosAt[0])
		}
		for c := range m.cores {
			sc := &m.cores[c]
			if sc.run != 0 {
				at, _ := m.finish(c)
				t = min(t, at)
			}
			for _, id := range sc.stack {
				t = min(t, m.jobs[id].killAt)
			}
			for _, u := range sc.ups {
				t = min(t, u)
			}
			if sc.recheck != 0 {
				t = min(t, sc.recheck)
			}
			if sc.dead != 0 {
				t = min(t, sc.dead)
			}
		}
		if t == math.MaxInt64 {
			if !m.flush() {
				break
			}
			continue
		}
		if t < m.now {
			m.fatalf("time goes back to %d", t)
		}
		m.now = t
		m.events(t)
		for ai < len(arr) && arr[ai].arrive == t {
			m.admit(arr[ai].job)
			ai++
		}
		for len(m.chaosAt) > 0 && m.chaosAt[0] == t {
			m.chaosAt = m.chaosAt[1:]
			m.chaos()
		}
	}
	m.finishChecks()
}

// events handles, in order, what happens by itself at t on every core:
// completions, kills, lanes coming back, workers back, Recheck.
func (m *sim) events(t int64) {
	for c := range m.cores {
		sc := &m.cores[c]
		if sc.run != 0 {
			if at, kill := m.finish(c); at == t {
				if kill {
					m.kill(c, sc.run)
				} else {
					m.complete(c)
				}
			}
		}
		for _, id := range slices.Clone(sc.stack) {
			if m.jobs[id].killAt == t {
				m.kill(c, id)
			}
		}
		for i := 0; i < len(sc.ups); {
			if sc.ups[i] == t {
				sc.ups = slices.Delete(sc.ups, i, i+1)
				sc.lanes = min(sc.lanes+1, m.cfg.Lanes)
				m.s.LaneUp(c)
				m.next(c)
				continue
			}
			i++
		}
		if sc.dead == t {
			sc.dead = 0
			sc.ups = nil
			m.s.SetLanes(c, m.cfg.Lanes)
			sc.lanes = m.cfg.Lanes
			m.avail(c)
			m.nextAll()
		}
		if sc.recheck == t {
			sc.recheck = 0
			m.recheck(c)
		}
	}
}

// flush puts every toggled core back and dispatches once more; it reports
// whether that started anything.
func (m *sim) flush() bool {
	for c := range m.cores {
		if m.cores[c].toggled {
			m.cores[c].toggled = false
			m.avail(c)
		}
	}
	started := false
	for c := range m.cores {
		if m.next(c) {
			started = true
		}
	}
	return started
}

func (m *sim) avail(c int) {
	m.s.SetAvailable(c, !m.cores[c].toggled && m.cores[c].dead == 0)
}

// admit runs Admit for j at m.now, checks the decision with the oracle,
// and dispatches.
func (m *sim) admit(j Job) {
	sj := m.jobs[j.ID]
	snaps := snapshot(m.s, m.now)
	want, preempt, feasible := oracleChoice(m.cfg, snaps, j)
	core, err := m.s.Admit(m.now, j)
	checkInvariants(m.t, m.s)
	if j.Deadline == 0 {
		switch {
		case err == nil:
			sj.state, sj.core = stQueued, -1
			m.fifo = append(m.fifo, j.ID)
			m.nextAll()
		case errors.Is(err, ErrQueueFull):
		default:
			m.fatalf("Admit(%+v): got %v, want nil or ErrQueueFull", j, err)
		}
		return
	}
	var u *Unschedulable
	switch {
	case err == nil:
		if !feasible[core] || core != want {
			m.fatalf("Admit(%+v): got core %d, want %d (feasible %v; cores %v)", j, core, want, feasible, snaps)
		}
		sj.state, sj.core, sj.admit = stQueued, core, m.now
		m.admitted++
		running := m.cores[core].run
		a := m.dispatch(core)
		if got := running != 0 && a.Stop.ID == running && a.Run.ID == j.ID; got != preempt {
			m.fatalf("Admit(%+v) on core %d, then Next: got %+v, want preempt %v (core %v)", j, core, a, preempt, snaps[core])
		}
	case errors.As(err, &u):
		if want >= 0 {
			m.fatalf("Admit(%+v): got %v, want core %d (cores %v)", j, err, want, snaps)
		}
		if u.RetryAfter < 0 {
			m.fatalf("Admit(%+v): got RetryAfter %d, want >= 0", j, u.RetryAfter)
		}
		sj.state = stWaiting
		m.rejected++
	case errors.Is(err, ErrInvalidDeadline):
		if valid(m.now, j) {
			m.fatalf("Admit(%+v): got %v", j, err)
		}
		sj.state = stWaiting
		m.rejected++
	default:
		m.fatalf("Admit(%+v): unexpected error %v", j, err)
	}
}

func (m *sim) nextAll() {
	for c := range m.cores {
		m.next(c)
	}
}

// next dispatches core c and reports whether a job started or resumed.
func (m *sim) next(c int) bool { return m.dispatch(c).Run.ID != 0 }

// dispatch calls Next on core c and carries out its Action.
func (m *sim) dispatch(c int) Action {
	sc := &m.cores[c]
	a := m.s.Next(c, m.now)
	for _, j := range a.Expired {
		sj := m.jobs[j.ID]
		if sj.state != stQueued || sj.core != c || j.Deadline+j.LateCap >= m.now {
			m.fatalf("Next(%d): expired %+v in state %d on core %d", c, j, sj.state, sj.core)
		}
		if verified(sj) && !sj.exempt {
			m.fatalf("deadline miss: %+v admitted at %d expired on core %d", j, sj.admit, c)
		}
		sj.state = stExpired
		m.expired++
	}
	if a.Stop.ID != 0 {
		if a.Stop.ID != sc.run || a.Run.ID == 0 {
			m.fatalf("Next(%d): got %+v, running %d", c, a, sc.run)
		}
		sj := m.jobs[sc.run]
		ran := m.now - sj.runAt
		sj.used += ran
		sj.left -= ran
		sj.state = stStopped
		if sj.job.Deadline != 0 {
			sc.stack = append(sc.stack, sc.run)
		} else {
			sc.be = append(sc.be, sc.run)
			if a.Run.Deadline == 0 {
				m.rotations++
			}
		}
		if a.Run.Deadline != 0 {
			m.preemptions++
		}
		sc.run = 0
	}
	if a.Run.ID != 0 {
		m.start(c, a)
	}
	if a.Recheck != 0 {
		if a.Recheck <= m.now {
			m.fatalf("Next(%d): Recheck %d", c, a.Recheck)
		}
		sc.recheck = a.Recheck
	}
	m.checkCore(c)
	checkInvariants(m.t, m.s)
	checkDispatched(m.t, m.s, c)
	return a
}

// start carries out a.Run on core c.
func (m *sim) start(c int, a Action) {
	sc := &m.cores[c]
	j := a.Run
	sj := m.jobs[j.ID]
	if sc.run != 0 {
		m.fatalf("Next(%d): runs %d while %d runs", c, j.ID, sc.run)
	}
	if a.Used != sj.used {
		m.fatalf("Next(%d): %d's Used %d, want %d", c, j.ID, a.Used, sj.used)
	}
	switch {
	case a.Resume && j.Deadline != 0:
		if n := len(sc.stack); n == 0 || sc.stack[n-1] != j.ID {
			m.fatalf("Next(%d): resumes %d, want the top of %v", c, j.ID, sc.stack)
		}
		sc.stack = sc.stack[:len(sc.stack)-1]
		m.resume++
	case a.Resume:
		if len(sc.be) == 0 || sc.be[0] != j.ID {
			m.fatalf("Next(%d): resumes best-effort %d, want the least recently run of %v", c, j.ID, sc.be)
		}
		sc.be = sc.be[1:]
		m.resume++
	case j.Deadline == 0:
		if len(m.fifo) == 0 || m.fifo[0] != j.ID {
			m.fatalf("Next(%d): starts best-effort %d, want the FIFO head of %v", c, j.ID, m.fifo)
		}
		if sc.toggled || sc.dead != 0 {
			m.fatalf("Next(%d): starts best-effort %d on an unavailable core", c, j.ID)
		}
		if n := len(sc.be); n >= max(sc.lanes-1, 1) {
			m.fatalf("Next(%d): starts best-effort %d with %d stopped on %d lanes", c, j.ID, n, sc.lanes)
		}
		m.fifo = m.fifo[1:]
		sj.left = sj.exec
	default:
		if sj.state != stQueued || sj.core != c {
			m.fatalf("Next(%d): starts %+v in state %d on core %d", c, j, sj.state, sj.core)
		}
		// It must be the EDF head of the core's deadline work.
		for _, o := range m.jobs {
			if (o.state == stQueued || o.state == stStopped) && o.core == c && o.job.Deadline != 0 && edfCmp(o.job, j) < 0 {
				m.fatalf("Next(%d): starts %+v, want the earlier %+v", c, j, o.job)
			}
		}
		sj.left = sj.exec
		if a.Stop.ID != 0 {
			// The preemption's cost is paid in its run, and charged.
			sj.left += m.cfg.PreemptCost
			if want := oracleEstimate(m.cfg, sj.admit, sj.job) + m.cfg.PreemptCost; j.Estimate != want {
				m.fatalf("Next(%d): preempting %+v with estimate %d, want %d charged", c, j, j.Estimate, want)
			}
		}
	}
	if !a.Resume && m.free(c) <= 0 {
		m.fatalf("Next(%d): starts %d with no lane free (%d lanes, started %v)", c, j.ID, sc.lanes, m.started(c))
	}
	sc.run = j.ID
	sj.state, sj.core, sj.runAt = stRunning, c, m.now
}

// checkCore checks core c after a dispatch against the simulator's view.
func (m *sim) checkCore(c int) {
	sc := &m.cores[c]
	cc := &m.s.cores[c]
	if n := len(m.started(c)); n > sc.lanes || sc.lanes != cc.lanes {
		m.fatalf("core %d: %d started on %d lanes (scheduler: %d)", c, n, sc.lanes, cc.lanes)
	}
	if (sc.run != 0) != cc.busy || sc.run != cc.run.ID {
		m.fatalf("core %d: running %d, scheduler %+v", c, sc.run, cc.run)
	}
	if sc.run == 0 || m.jobs[sc.run].job.Deadline != 0 {
		return
	}
	waiting := len(sc.stack) > 0
	for _, o := range m.jobs {
		if o.state == stQueued && o.core == c && o.job.Deadline != 0 {
			waiting = true
		}
	}
	if waiting && m.free(c) > 0 && !cc.pinned {
		m.fatalf("core %d: best-effort %d runs while deadline work waits with %d lanes free", c, sc.run, m.free(c))
	}
	if m.cfg.Quantum == 0 || waiting {
		return
	}
	other := len(sc.be) > 0 || len(m.fifo) > 0 && !sc.toggled && sc.dead == 0 && m.free(c) > 0 && len(sc.be)+1 < max(sc.lanes-1, 1)
	if end := m.jobs[sc.run].runAt + m.cfg.Quantum; other && (sc.recheck == 0 || sc.recheck > end) {
		m.fatalf("core %d: best-effort %d runs since %d while another waits, Recheck %d (lanes %d, started %v, fifo %v, pinned %v)", c, sc.run, m.jobs[sc.run].runAt, sc.recheck, sc.lanes, m.started(c), m.fifo, cc.pinned)
	}
}

// recheck is a Recheck firing on core c: a best-effort job whose quantum
// is over must make way for another.
func (m *sim) recheck(c int) {
	sc := &m.cores[c]
	r := sc.run
	rotate := r != 0 && m.jobs[r].job.Deadline == 0 && m.now >= m.jobs[r].runAt+m.cfg.Quantum &&
		(len(sc.be) > 0 || len(m.fifo) > 0 && !sc.toggled && sc.dead == 0 && m.free(c) > 0 && len(sc.be)+1 < max(sc.lanes-1, 1)) &&
		!m.s.cores[c].pinned
	a := m.dispatch(c)
	if rotate && a.Stop.ID != r {
		m.fatalf("Recheck on core %d: best-effort %d not rotated: %+v", c, r, a)
	}
}

func (m *sim) complete(c int) {
	sc := &m.cores[c]
	j, ok := m.s.Done(c, m.now)
	if !ok || j.ID != sc.run {
		m.fatalf("Done(%d): got %+v, %v, want %d", c, j, ok, sc.run)
	}
	m.doneCalls++
	sj := m.jobs[j.ID]
	if verified(sj) && m.now > j.Deadline && !sj.exempt {
		m.fatalf("deadline miss: %+v arrived %d finished on core %d, %d late", sj.job, sj.arrive, c, m.now-j.Deadline)
	}
	sj.state = stDone
	sc.run = 0
	m.completed++
	m.next(c)
}

// kill removes the started job id of core c at its kill: its lane is back
// RestartCost later.
func (m *sim) kill(c int, id uint64) {
	sj := m.jobs[id]
	if verified(sj) && !sj.exempt {
		m.fatalf("deadline miss: %+v admitted at %d killed on core %d (used %d, left %d)", sj.job, sj.admit, c, sj.used, sj.left)
	}
	m.remove(c, id)
	sj.state = stKilled
	m.kills++
	m.next(c)
}

// remove takes started job id off core c (Remove), and schedules its lane.
func (m *sim) remove(c int, id uint64) {
	sc := &m.cores[c]
	j, ok := m.s.Remove(c, id, m.now)
	if !ok || j.ID != id {
		m.fatalf("Remove(%d, %d): got %+v, %v", c, id, j, ok)
	}
	switch {
	case sc.run == id:
		sc.run = 0
	case slices.Contains(sc.stack, id):
		sc.stack = slices.DeleteFunc(sc.stack, func(x uint64) bool { return x == id })
	default:
		sc.be = slices.DeleteFunc(sc.be, func(x uint64) bool { return x == id })
	}
	sc.lanes--
	sc.ups = append(sc.ups, m.now+m.cfg.RestartCost)
	if m.free(c) <= 0 && m.s.cores[c].blocked != m.now+m.cfg.RestartCost {
		m.fatalf("Remove(%d, %d): blocked until %d, want %d", c, id, m.s.cores[c].blocked, m.now+m.cfg.RestartCost)
	}
}

// exemptVictims marks the jobs of core c whose deadlines its plan now
// misses because of chaos.
func (m *sim) exemptVictims(c int) {
	for _, id := range lateJobs(m.cfg, snapshot(m.s, m.now)[c]) {
		if sj := m.jobs[id]; !sj.exempt {
			sj.exempt = true
			m.missedExempt++
		}
	}
}

// chaos injects the supervisor's other calls.
func (m *sim) chaos() {
	rng := m.rng
	c := rng.IntN(len(m.cores))
	sc := &m.cores[c]
	if rng.Float64() < m.sc.cancel && len(m.ids) > 0 {
		id := m.ids[rng.IntN(len(m.ids))]
		sj := m.jobs[id]
		got := m.s.Cancel(id)
		if want := sj.state == stQueued; got != want {
			m.fatalf("Cancel(%d) of a job in state %d: got %v, want %v", id, sj.state, got, want)
		}
		if got {
			if sj.job.Deadline == 0 {
				m.fifo = slices.DeleteFunc(m.fifo, func(x uint64) bool { return x == id })
			}
			sj.state = stCancelled
		}
		checkInvariants(m.t, m.s)
	}
	if rng.Float64() < m.sc.crash {
		if st := m.started(c); len(st) > 0 {
			id := st[rng.IntN(len(st))]
			m.jobs[id].state, m.jobs[id].exempt = stLost, true
			m.remove(c, id)
			m.next(c)
			m.exemptVictims(c)
		}
	}
	if rng.Float64() < m.sc.laneDown && m.free(c) > 0 && sc.dead == 0 {
		m.s.LaneDown(c, m.now)
		sc.lanes--
		sc.ups = append(sc.ups, m.now+m.cfg.RestartCost)
		m.next(c)
		m.exemptVictims(c)
	}
	if rng.Float64() < m.sc.toggle {
		sc.toggled = !sc.toggled
		m.avail(c)
		m.next(c)
	}
	if rng.Float64() < m.sc.drain && sc.dead == 0 {
		m.loseWorker(c)
	}
}

// loseWorker loses every lane of core c at once: Drain, re-Admit the
// queued jobs elsewhere, and bring the worker back RestartCost later.
func (m *sim) loseWorker(c int) {
	sc := &m.cores[c]
	sc.dead = m.now + max(m.cfg.RestartCost, 1)
	m.avail(c)
	want := m.started(c)
	queued, started := m.s.Drain(c)
	m.s.SetLanes(c, 0)
	checkInvariants(m.t, m.s)
	if !slices.IsSortedFunc(queued, edfCmp) {
		m.fatalf("Drain(%d): got %+v, want EDF order", c, queued)
	}
	if got := ids(started); !sameSet(got, want) || len(started) > 0 && started[0].ID != sc.run && sc.run != 0 {
		m.fatalf("Drain(%d): got started %v, want %v, the running %d first", c, got, want, sc.run)
	}
	for _, j := range started {
		m.jobs[j.ID].state, m.jobs[j.ID].exempt = stLost, true
	}
	sc.run, sc.stack, sc.be, sc.recheck, sc.lanes, sc.ups = 0, nil, nil, 0, 0, nil
	for _, j := range queued {
		sj := m.jobs[j.ID]
		if sj.state != stQueued || sj.core != c {
			m.fatalf("Drain(%d): got job %+v in state %d on core %d", c, j, sj.state, sj.core)
		}
		sj.state = stWaiting
	}
	for _, j := range queued {
		m.admit(m.jobs[j.ID].job)
	}
}

func sameSet(a, b []uint64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (m *sim) finishChecks() {
	for _, sj := range m.jobs {
		if sj.state == stQueued || sj.state == stRunning || sj.state == stStopped {
			m.fatalf("job %+v ended the simulation in state %d on core %d", sj.job, sj.state, sj.core)
		}
	}
	if n := len(m.s.index); n != 0 {
		m.fatalf("index: got %d entries at the end, want 0", n)
	}
	st := m.s.Stats(m.now)
	var completed, preemptions, rotations uint64
	for i, cs := range st.Cores {
		if cs.Queued != 0 || cs.Running || cs.Stopped != 0 || cs.Lanes != m.cfg.Lanes {
			m.fatalf("core %d at the end: got %+v, want empty with all lanes", i, cs)
		}
		completed += cs.Completed
		preemptions += cs.Preemptions
		rotations += cs.Rotations
	}
	if completed != m.doneCalls || preemptions != uint64(m.preemptions) || rotations != uint64(m.rotations) {
		m.fatalf("Stats: completed %d, preemptions %d, rotations %d; simulated %d, %d, %d",
			completed, preemptions, rotations, m.doneCalls, m.preemptions, m.rotations)
	}
	if !m.sc.chaotic() && m.missedExempt != 0 {
		m.fatalf("%d jobs exempt without chaos", m.missedExempt)
	}
}

func TestSimulatedNeverMisses(t *testing.T) {
	tiny := Config{BestEffortCap: 10, Grace: -1, RestartCost: -1, PreemptCost: -1, Quantum: 3}
	costly := Config{BestEffortCap: 12, Grace: 2, RestartCost: 5, PreemptCost: -1, Quantum: 4}
	withLanes := func(c Config, lanes int, pc int64) Config {
		c.Lanes, c.PreemptCost = lanes, pc
		return c
	}
	scenarios := []scenario{
		{name: "one lane tight", seeds: 400, cores: 1, jobs: 40, horizon: 200, maxC: 8, maxLax: 30, cfg: tiny},
		{name: "one lane four cores", seeds: 300, cores: 4, jobs: 80, horizon: 100, maxC: 10, maxLax: 40, cfg: tiny},
		{name: "one lane ties on deadlines", seeds: 300, cores: 3, jobs: 60, horizon: 60, maxC: 6, maxLax: 25, round: 10, cfg: tiny},
		{name: "two lanes tight", seeds: 400, cores: 1, jobs: 40, horizon: 200, maxC: 12, maxLax: 30, cfg: withLanes(tiny, 2, -1)},
		{name: "two lanes preempt cost", seeds: 400, cores: 2, jobs: 60, horizon: 150, maxC: 12, maxLax: 30, shorter: true, cfg: withLanes(costly, 2, 2)},
		{name: "three lanes long and short", seeds: 400, cores: 1, jobs: 50, horizon: 300, maxC: 4, maxLax: 6, long: 0.15, cfg: withLanes(tiny, 3, 1)},
		{name: "one lane long and short", seeds: 400, cores: 1, jobs: 50, horizon: 300, maxC: 4, maxLax: 6, long: 0.15, cfg: withLanes(tiny, 1, 1)},
		{name: "three lanes ties, zero slack", seeds: 300, cores: 2, jobs: 60, horizon: 100, maxC: 6, maxLax: 2, round: 5, cfg: withLanes(tiny, 3, -1)},
		{name: "three lanes unverified and late caps", seeds: 400, cores: 2, jobs: 60, horizon: 150, maxC: 10, maxLax: 30,
			unverified: 0.25, late: 0.2, shorter: true, cfg: withLanes(costly, 3, 2)},
		{name: "one lane unverified", seeds: 400, cores: 2, jobs: 50, horizon: 150, maxC: 10, maxLax: 30, unverified: 0.3, cfg: costly},
		{name: "three lanes best effort round robin", seeds: 300, cores: 2, jobs: 60, horizon: 150, maxC: 10, maxLax: 40,
			be: 0.4, shorter: true, cfg: withLanes(costly, 3, 1)},
		{name: "two lanes best effort", seeds: 300, cores: 2, jobs: 60, horizon: 150, maxC: 10, maxLax: 40, be: 0.3, cfg: withLanes(costly, 2, 1)},
		{name: "four lanes everything", seeds: 300, cores: 3, jobs: 80, horizon: 200, maxC: 15, maxLax: 40, be: 0.2, unverified: 0.15,
			late: 0.1, shorter: true, cfg: withLanes(costly, 4, 2)},
		{name: "chaos one lane", seeds: 300, cores: 3, jobs: 60, horizon: 200, maxC: 8, maxLax: 40, be: 0.15, unverified: 0.1,
			shorter: true, cancel: 0.3, crash: 0.1, toggle: 0.1, drain: 0.03, cfg: costly},
		{name: "chaos three lanes", seeds: 300, cores: 3, jobs: 60, horizon: 200, maxC: 12, maxLax: 30, be: 0.15, unverified: 0.15,
			late: 0.1, shorter: true, cancel: 0.3, crash: 0.1, laneDown: 0.15, toggle: 0.1, drain: 0.03, cfg: withLanes(costly, 3, 2)},
		{name: "long queues", seeds: 10, cores: 2, jobs: 600, horizon: 300, maxC: 3, maxLax: 250, cancel: 0.1, cfg: withLanes(tiny, 3, 1)},
	}
	for _, sc := range scenarios {
		if testing.Short() {
			sc.seeds = max(sc.seeds/10, 1)
		}
		t.Run(sc.name, func(t *testing.T) {
			var tot sim
			for seed := range uint64(sc.seeds) {
				m := newSim(t, sc, seed)
				m.run()
				if t.Failed() {
					t.Fatalf("seed %d", seed)
				}
				tot.admitted += m.admitted
				tot.rejected += m.rejected
				tot.completed += m.completed
				tot.preemptions += m.preemptions
				tot.rotations += m.rotations
				tot.kills += m.kills
				tot.expired += m.expired
				tot.missedExempt += m.missedExempt
			}
			// The scenarios must exercise both outcomes, or they prove little.
			if tot.admitted == 0 || tot.rejected == 0 {
				t.Fatalf("got %d admitted, %d rejected over %d seeds, want both > 0", tot.admitted, tot.rejected, sc.seeds)
			}
			if sc.cfg.Lanes > 1 && tot.preemptions == 0 {
				t.Fatalf("no preemption over %d seeds", sc.seeds)
			}
			if sc.be > 0 && sc.cfg.Lanes > 2 && tot.rotations == 0 {
				t.Fatalf("no rotation over %d seeds", sc.seeds)
			}
			t.Logf("%d seeds: %d admitted, %d rejected, %d completed, %d preemptions, %d rotations, %d kills, %d expired, %d made late by chaos",
				sc.seeds, tot.admitted, tot.rejected, tot.completed, tot.preemptions, tot.rotations, tot.kills, tot.expired, tot.missedExempt)
		})
	}
}
