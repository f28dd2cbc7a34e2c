package supervisor

import (
	"time"

	"github.com/hyper-sched/hyper-sched/dispatch"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// task is one admitted call, from admission to its one answer.
type task struct {
	id       uint64
	name     string
	module   *Module
	export   string
	params   []uint64
	results  []wasmval.Type
	in       callInput // stdin, argv, environment
	key      string    // estimator key
	arrived  time.Time
	deadline time.Time     // zero: best effort
	lateCap  time.Duration // how long past its deadline it may run (allow_late)
	estimate time.Duration
	source   string // "declared", "learned"
	core     int    // -1 until admitted
	dt       *dispatch.Task
	events   []Step // before admission; the dispatcher keeps the rest
	answered bool
	chain    *chainCall // nil: not a stage of a chain
	stage    int        // its index in chain
}

// Step is one step of a task's timeline, as /uname shows it.
type Step struct {
	At     time.Time `json:"at"`
	SinceU int64     `json:"since_arrival_us"`
	What   string    `json:"event"`
	Detail string    `json:"detail,omitempty"`
}

// outcome is how a task ended.
type outcome struct {
	kind     dispatch.Kind
	ran      bool // it started on a lane
	err      error
	results  []uint64
	cpu      int
	worker   string
	started  time.Time
	finished time.Time
	instNs   int64
	execNs   int64
	stdout   []byte
	stderr   []byte
	// stdoutBytes and stderrBytes count what the call wrote, kept or not;
	// exitCode is a command's exit code, nil for a call that did not exit.
	stdoutBytes, stderrBytes int64
	exitCode                 *int
	stopped                  time.Duration // time its lane was stopped (preempted)
	begin                    time.Duration // arrival → its lane began the job; 0 if unknown
}

// recentKeep is how many finished tasks /uname remembers.
const recentKeep = 10000

// recentTasks remembers the timelines of the last finished or refused
// calls by name, bounded, for /uname after the call returned. A name's
// entry is its latest timeline; it goes when that timeline's slot is
// reused.
type recentTasks struct {
	ring []slot
	next int
	seq  uint64 // timelines added: each slot's own number
	m    map[string]recentEntry
}

type slot struct {
	name string
	seq  uint64
}

type recentEntry struct {
	tl  Timeline
	seq uint64
}

func (r *recentTasks) init(n int) {
	r.ring = make([]slot, n)
	r.m = make(map[string]recentEntry, n)
}

func (r *recentTasks) add(tl Timeline) {
	// The evicted slot's name may since have a newer timeline in another
	// slot: keep that. (Task ids cannot tell: refused calls have none.)
	if old := r.ring[r.next]; old.name != "" && r.m[old.name].seq == old.seq {
		delete(r.m, old.name)
	}
	r.seq++
	r.ring[r.next] = slot{tl.Name, r.seq}
	r.m[tl.Name] = recentEntry{tl, r.seq}
	r.next = (r.next + 1) % len(r.ring)
}

// get returns the latest timeline kept under name.
func (r *recentTasks) get(name string) (Timeline, bool) {
	e, ok := r.m[name]
	return e.tl, ok
}

// Timeline is one task's history, for GET /uname.
type Timeline struct {
	ID          uint64     `json:"task_id,omitempty"` // 0: refused, never a task
	Name        string     `json:"task_unique_name"`
	Module      string     `json:"wasm_name"`
	Export      string     `json:"export_func"`
	State       string     `json:"state"`
	CPU         int        `json:"cpu"`
	DeadlineMs  float64    `json:"deadline_ms,omitempty"`
	DeadlineAt  *time.Time `json:"deadline_at,omitempty"`
	EstimateMs  float64    `json:"estimate_ms"`
	Source      string     `json:"estimate_source"`
	DeadlineMet *bool      `json:"deadline_met,omitempty"`
	Events      []Step     `json:"events"`
	// Stage is a chain stage's number (1 is the call itself); Stages are a
	// chain's stages, in its timeline.
	Stage  int        `json:"stage,omitempty"`
	Stages []Timeline `json:"stages,omitempty"`
}

// timelineOf returns t's timeline: its own events and the dispatcher's.
func (s *Supervisor) timelineOf(t *task, state string) Timeline {
	steps := s.disp.Timeline(t.dt)
	tl := Timeline{ID: t.id, Name: t.name, Module: t.module.Name, Export: t.export, State: state,
		CPU: -1, EstimateMs: ms(t.estimate), Source: t.source,
		Events: append(make([]Step, 0, len(t.events)+len(steps)), t.events...)}
	for _, st := range steps {
		tl.Events = append(tl.Events, Step{At: st.At, SinceU: st.At.Sub(t.arrived).Microseconds(), What: st.What, Detail: st.Detail})
	}
	if !t.deadline.IsZero() {
		tl.DeadlineMs = ms(t.deadline.Sub(t.arrived))
		at := t.deadline
		tl.DeadlineAt = &at
	}
	return tl
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// counters are the supervisor's lifetime totals, shown by /status.
type counters struct {
	Calls        uint64 `json:"calls"`
	Admitted     uint64 `json:"admitted"`
	Rejected     uint64 `json:"rejected"`
	Met          uint64 `json:"deadline_met"`
	Missed       uint64 `json:"deadline_missed"`
	Killed       uint64 `json:"killed_at_deadline"`
	Traps        uint64 `json:"traps"`
	WorkerLost   uint64 `json:"worker_lost"`
	BestEffort   uint64 `json:"best_effort"`
	Completed    uint64 `json:"completed"`
	Answered     uint64 `json:"answered"` // admitted calls that got their one answer
	Calibrations uint64 `json:"calibrations"`
	Chains       uint64 `json:"chains"` // admitted calls that were chains ("then")
}

// warmStats feeds /warm-start-latency: the seed's figures, as means over
// the calls that succeeded, and the queueing the seed's figures leave out.
type warmStats struct {
	n        int64
	startSum time.Duration // arrival → queued on a worker (admitted)
	schedSum time.Duration // that, plus instantiate on the lane
	queueSum time.Duration // queued → started on its lane: waiting behind other calls
}

// add counts one call that arrived, was admitted (queued on its worker)
// and started at the given times, and instantiated in inst.
func (w *warmStats) add(arrived, admitted, started time.Time, inst time.Duration) {
	start := max(admitted.Sub(arrived), 0)
	w.n++
	w.startSum += start
	w.schedSum += start + inst
	w.queueSum += max(started.Sub(admitted), 0)
}

// admittedAt returns when the dispatcher queued the task of events on a
// worker (its "admitted" or best-effort "queued" step), else arrived.
func admittedAt(events []Step, arrived time.Time) time.Time {
	for _, e := range events {
		if e.What == "admitted" || e.What == "queued" {
			return e.At
		}
	}
	return arrived
}
