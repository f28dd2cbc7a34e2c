package sched

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The simulator replays what the supervisor does, one discrete event at a
// time: arrivals call Admit, an idle core calls Next, a job whose true
// execution time has elapsed calls Done. True execution times never exceed
// the estimates, so every admitted deadline job must finish by its deadline.
// Before every Admit the brute-force oracle checks the decision.

type jobState int

const (
	stWaiting jobState = iota // not yet arrived, or refused
	stQueued
	stRunning
	stDone
	stCancelled
	stLost // running on a core whose worker was lost
)

type simJob struct {
	job    Job
	arrive int64
	exec   int64 // true execution time
	core   int   // where queued or running; -1 for the best-effort FIFO
	state  jobState
}

// scenario parameterises one family of random job sets.
type scenario struct {
	name    string
	seeds   int
	cores   int
	jobs    int
	horizon int64   // arrivals are uniform in [0, horizon)
	maxC    int64   // estimates are uniform in [1, maxC]
	maxLax  int64   // deadline - arrival - estimate is uniform in [1, maxLax]
	round   int64   // if > 1, deadlines are rounded up to a multiple: ties
	shorter bool    // true execution uniform in [1, C] instead of C
	be      float64 // share of best-effort jobs
	cancel  float64 // per-event probability of a Cancel
	toggle  float64 // per-event probability of a SetAvailable flip
	drain   float64 // per-event probability of losing a worker
	cfg     Config
}

type sim struct {
	t   *testing.T
	sc  scenario
	rng *rand.Rand
	s   *Scheduler
	cfg Config // resolved
	now int64

	jobs      map[uint64]*simJob
	ids       []uint64 // every job, for Cancel picks
	beOrder   []uint64 // best-effort FIFO order as the simulator sees it
	finish    []int64  // per core: when the running job releases it, or -1
	restart   []int64  // per core: worker restarting until, or -1
	toggled   []bool   // per core: taken out by a random toggle
	admitted  int
	rejected  int
	completed int
}

func newSim(t *testing.T, sc scenario, seed uint64) *sim {
	s := mustNew(t, sc.cores, sc.cfg)
	m := &sim{
		t: t, sc: sc, rng: rand.New(rand.NewPCG(seed, 0x5eed)), s: s, cfg: s.cfg,
		jobs:    make(map[uint64]*simJob),
		finish:  make([]int64, sc.cores),
		restart: make([]int64, sc.cores),
		toggled: make([]bool, sc.cores),
	}
	for i := range m.finish {
		m.finish[i], m.restart[i] = -1, -1
	}
	return m
}

// generate returns the arrivals sorted by time, with IDs in random order so
// that ties on the deadline are broken by IDs unrelated to arrival.
func (m *sim) generate() []*simJob {
	perm := m.rng.Perm(m.sc.jobs)
	out := make([]*simJob, m.sc.jobs)
	for i := range out {
		sj := &simJob{arrive: m.rng.Int64N(m.sc.horizon), core: -1}
		sj.job.ID = uint64(perm[i]) + 1
		if m.rng.Float64() < m.sc.be {
			if m.rng.IntN(2) == 0 {
				// A learned estimate, and the run takes just that.
				sj.job.Estimate = 1 + m.rng.Int64N(m.sc.maxC)
				sj.exec = sj.job.Estimate
			} else {
				// Unknown: the cap is the estimate. Sometimes the run goes
				// beyond it: killed there, then restarted.
				sj.job.Estimate = m.cfg.BestEffortCap
				sj.exec = 1 + m.rng.Int64N(m.cfg.BestEffortCap+1)
			}
		} else {
			c := 1 + m.rng.Int64N(m.sc.maxC)
			d := sj.arrive + c + 1 + m.rng.Int64N(m.sc.maxLax)
			if r := m.sc.round; r > 1 {
				d = (d + r - 1) / r * r
			}
			sj.job.Estimate, sj.job.Deadline = c, d
			sj.exec = c
			if m.sc.shorter {
				sj.exec = 1 + m.rng.Int64N(c)
			}
		}
		out[i] = sj
		m.jobs[sj.job.ID] = sj
		m.ids = append(m.ids, sj.job.ID)
	}
	slices.SortStableFunc(out, func(a, b *simJob) int { return int(a.arrive - b.arrive) })
	return out
}

func (m *sim) run() {
	arr := m.generate()
	ai := 0
	for {
		t := int64(math.MaxInt64)
		if ai < len(arr) {
			t = arr[ai].arrive
		}
		for c := range m.finish {
			if m.finish[c] >= 0 {
				t = min(t, m.finish[c])
			}
			if m.restart[c] >= 0 {
				t = min(t, m.restart[c])
			}
		}
		if t == math.MaxInt64 {
			if !m.flush() {
				break
			}
			continue
		}
		m.now = t
		for c := range m.finish {
			if m.finish[c] == t {
				m.complete(c)
			}
		}
		for c := range m.restart {
			if m.restart[c] == t {
				m.restart[c] = -1
				m.avail(c)
			}
		}
		for ai < len(arr) && arr[ai].arrive == t {
			m.admit(arr[ai].job)
			ai++
		}
		m.chaos()
		m.dispatch()
	}
	m.finishChecks()
}

// flush puts every toggled core back and dispatches once more; it reports
// whether that started anything.
func (m *sim) flush() bool {
	for c := range m.toggled {
		m.toggled[c] = false
		m.avail(c)
	}
	started := false
	for c := range m.finish {
		if m.finish[c] < 0 && m.restart[c] < 0 {
			if j, ok := m.s.Next(c, m.now); ok {
				m.started(c, j)
				started = true
			}
		}
	}
	return started
}

func (m *sim) avail(c int) {
	m.s.SetAvailable(c, !m.toggled[c] && m.restart[c] < 0)
}

// admit runs Admit for j at m.now and checks the decision with the oracle.
func (m *sim) admit(j Job) {
	t := m.t
	sj := m.jobs[j.ID]
	snaps := snapshot(m.s)
	want, feasible := oracleChoice(m.cfg, m.now, snaps, j)
	core, err := m.s.Admit(m.now, j)
	checkInvariants(t, m.s)
	if j.Deadline == 0 {
		switch {
		case err == nil:
			sj.state, sj.core = stQueued, -1
			m.beOrder = append(m.beOrder, j.ID)
		case errors.Is(err, ErrQueueFull):
		default:
			t.Fatalf("Admit(%d, %+v): got %v, want nil or ErrQueueFull", m.now, j, err)
		}
		return
	}
	var u *Unschedulable
	switch {
	case err == nil:
		if !feasible[core] {
			t.Fatalf("Admit(%d, %+v): got core %d, which the oracle finds infeasible (cores %+v)", m.now, j, core, snaps)
		}
		if core != want {
			t.Fatalf("Admit(%d, %+v): got core %d, want %d, the most slack (cores %+v)", m.now, j, core, want, snaps)
		}
		sj.state, sj.core = stQueued, core
		m.admitted++
	case errors.As(err, &u):
		if want >= 0 {
			t.Fatalf("Admit(%d, %+v): got %v, want core %d (cores %+v)", m.now, j, err, want, snaps)
		}
		if u.RetryAfter < 0 {
			t.Fatalf("Admit(%d, %+v): got RetryAfter %d, want >= 0", m.now, j, u.RetryAfter)
		}
		sj.state = stWaiting
		m.rejected++
	case errors.Is(err, ErrInvalidDeadline):
		if j.Estimate < j.Deadline-m.now {
			t.Fatalf("Admit(%d, %+v): got %v with %d ns to spare", m.now, j, err, j.Deadline-m.now-j.Estimate)
		}
		sj.state = stWaiting
		m.rejected++
	default:
		t.Fatalf("Admit(%d, %+v): unexpected error %v", m.now, j, err)
	}
}

// started records that Next handed j to core c at m.now.
func (m *sim) started(c int, j Job) {
	t := m.t
	sj := m.jobs[j.ID]
	if sj == nil || sj.state != stQueued {
		t.Fatalf("Next(%d, %d): got job %+v, which is not queued", c, m.now, j)
	}
	if j.Deadline == 0 {
		if len(m.beOrder) == 0 || m.beOrder[0] != j.ID {
			t.Fatalf("Next(%d, %d): got best-effort job %d, want the FIFO head %v", c, m.now, j.ID, m.beOrder)
		}
		m.beOrder = m.beOrder[1:]
		if m.toggled[c] {
			t.Fatalf("Next(%d, %d): got best-effort job %d on an unavailable core", c, m.now, j.ID)
		}
		exec := sj.exec
		if exec > m.cfg.BestEffortCap { // killed at the cap, then restarted
			exec = m.cfg.BestEffortCap + m.cfg.Grace + m.cfg.RestartCost
		}
		m.finish[c] = m.now + exec
	} else {
		if sj.core != c {
			t.Fatalf("Next(%d, %d): got job %d, queued on core %d", c, m.now, j.ID, sj.core)
		}
		// It must be the EDF head of the core's queue.
		for _, o := range m.jobs {
			if o.state == stQueued && o.core == c && o.job.Deadline != 0 && edfCmp(o.job, j) < 0 {
				t.Fatalf("Next(%d, %d): got %+v, want the earlier %+v", c, m.now, j, o.job)
			}
		}
		m.finish[c] = m.now + sj.exec
	}
	sj.state, sj.core = stRunning, c
	if _, ok := m.s.Next(c, m.now); ok {
		t.Fatalf("Next(%d, %d) on a busy core: got ok, want not", c, m.now)
	}
}

func (m *sim) dispatch() {
	for c := range m.finish {
		if m.finish[c] >= 0 || m.restart[c] >= 0 {
			continue
		}
		if j, ok := m.s.Next(c, m.now); ok {
			m.started(c, j)
			checkInvariants(m.t, m.s)
		}
	}
}

func (m *sim) complete(c int) {
	t := m.t
	j, ok := m.s.Done(c, m.now)
	if !ok {
		t.Fatalf("Done(%d, %d): got not ok, want the running job", c, m.now)
	}
	sj := m.jobs[j.ID]
	if sj.state != stRunning || sj.core != c {
		t.Fatalf("Done(%d, %d): got job %+v in state %d on core %d", c, m.now, j, sj.state, sj.core)
	}
	if j.Deadline != 0 && m.now > j.Deadline {
		t.Fatalf("deadline miss: job %+v arrived %d finished %d on core %d, %d ns late", j, sj.arrive, m.now, c, m.now-j.Deadline)
	}
	sj.state = stDone
	m.finish[c] = -1
	m.completed++
	checkInvariants(t, m.s)
}

// chaos injects the supervisor's other calls: Cancel, SetAvailable, and the
// loss of a worker (Drain, restart, re-Admit elsewhere).
func (m *sim) chaos() {
	t := m.t
	if m.rng.Float64() < m.sc.cancel && len(m.ids) > 0 {
		id := m.ids[m.rng.IntN(len(m.ids))]
		sj := m.jobs[id]
		got := m.s.Cancel(id)
		if want := sj.state == stQueued; got != want {
			t.Fatalf("Cancel(%d) of a job in state %d: got %v, want %v", id, sj.state, got, want)
		}
		if got {
			if sj.job.Deadline == 0 {
				m.beOrder = slices.DeleteFunc(m.beOrder, func(x uint64) bool { return x == id })
			}
			sj.state = stCancelled
		}
		checkInvariants(t, m.s)
	}
	if m.rng.Float64() < m.sc.toggle {
		c := m.rng.IntN(len(m.toggled))
		m.toggled[c] = !m.toggled[c]
		m.avail(c)
	}
	if m.rng.Float64() < m.sc.drain {
		c := m.rng.IntN(len(m.finish))
		if run, _, ok := m.s.Running(c); ok {
			m.jobs[run.ID].state = stLost
		}
		m.finish[c] = -1
		m.restart[c] = m.now + max(m.cfg.RestartCost, 1)
		m.avail(c)
		drained := m.s.Drain(c)
		if _, _, ok := m.s.Running(c); ok {
			t.Fatalf("Drain(%d): running job survived", c)
		}
		checkInvariants(t, m.s)
		if !slices.IsSortedFunc(drained, edfCmp) {
			t.Fatalf("Drain(%d): got %+v, want EDF order", c, drained)
		}
		for _, j := range drained {
			sj := m.jobs[j.ID]
			if sj.state != stQueued || sj.core != c {
				t.Fatalf("Drain(%d): got job %+v in state %d on core %d", c, j, sj.state, sj.core)
			}
			sj.state = stWaiting
		}
		for _, j := range drained {
			m.admit(j)
		}
	}
}

func (m *sim) finishChecks() {
	t := m.t
	for _, sj := range m.jobs {
		if sj.state == stQueued || sj.state == stRunning {
			t.Fatalf("job %+v ended the simulation in state %d on core %d", sj.job, sj.state, sj.core)
		}
	}
	if n := len(m.s.index); n != 0 {
		t.Fatalf("index: got %d entries at the end, want 0", n)
	}
	st := m.s.Stats(m.now)
	for i, cs := range st.Cores {
		if cs.Queued != 0 || cs.Running {
			t.Fatalf("core %d at the end: got %+v, want empty", i, cs)
		}
	}
}

func TestSimulatedNeverMisses(t *testing.T) {
	tiny := Config{BestEffortCap: 10, Grace: -1, RestartCost: -1}
	costly := Config{BestEffortCap: 12, Grace: 2, RestartCost: 5}
	scenarios := []scenario{
		{name: "one core tight", seeds: 600, cores: 1, jobs: 40, horizon: 200, maxC: 8, maxLax: 30, cfg: tiny},
		{name: "four cores", seeds: 600, cores: 4, jobs: 80, horizon: 100, maxC: 10, maxLax: 40, cfg: tiny},
		{name: "ties on deadlines", seeds: 600, cores: 3, jobs: 60, horizon: 60, maxC: 6, maxLax: 25, round: 10, cfg: tiny},
		{name: "zero and little slack", seeds: 400, cores: 2, jobs: 60, horizon: 100, maxC: 5, maxLax: 2, cfg: tiny},
		{name: "shorter than estimated", seeds: 400, cores: 3, jobs: 60, horizon: 100, maxC: 10, maxLax: 30, shorter: true, cfg: tiny},
		{name: "best effort mixed in", seeds: 600, cores: 3, jobs: 60, horizon: 120, maxC: 8, maxLax: 40, be: 0.25, cfg: costly},
		{name: "cancel toggle drain", seeds: 600, cores: 3, jobs: 60, horizon: 200, maxC: 8, maxLax: 40, be: 0.15,
			shorter: true, cancel: 0.2, toggle: 0.1, drain: 0.03, cfg: costly},
		{name: "long queues", seeds: 20, cores: 2, jobs: 600, horizon: 300, maxC: 3, maxLax: 250, cancel: 0.05, cfg: tiny},
	}
	for _, sc := range scenarios {
		if testing.Short() {
			sc.seeds = max(sc.seeds/10, 1)
		}
		t.Run(sc.name, func(t *testing.T) {
			var admitted, rejected, completed int
			for seed := range uint64(sc.seeds) {
				m := newSim(t, sc, seed)
				m.run()
				if t.Failed() {
					t.Fatalf("seed %d", seed)
				}
				admitted += m.admitted
				rejected += m.rejected
				completed += m.completed
			}
			// The scenarios must exercise both outcomes, or they prove little.
			if admitted == 0 || rejected == 0 {
				t.Fatalf("got %d admitted, %d rejected over %d seeds, want both > 0", admitted, rejected, sc.seeds)
			}
			t.Logf("%d seeds: %d admitted, %d rejected, %d completed", sc.seeds, admitted, rejected, completed)
		})
	}
}
