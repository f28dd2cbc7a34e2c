package dispatch

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/sched"
)

// t0 is the fake clock's start.
var t0 = time.Unix(1_000_000, 0)

// laneLog records the calls the dispatcher makes on every fake lane, in
// order, as "c<core>/l<lane> <op>[ <id>]", plus the results the tests
// delivered successfully ("result <id>"), and protocol violations.
type laneLog struct {
	mu   sync.Mutex
	ev   []string
	all  []string
	errs []string

	// The spin model (Config.Spin): a lane whose result is delivered
	// spins until spinning[core][lane] on clk, unless parked or started;
	// starting or resuming another lane of its core meanwhile is a
	// violation.
	clk      *ManualClock
	spin     time.Duration
	spinning map[[2]int]time.Time
}

// spinFrom marks lane li of core spinning from now, its job answered.
func (g *laneLog) spinFrom(core, li int) {
	if g.spin <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.spinning[[2]int{core, li}] = g.clk.Now().Add(g.spin)
}

// unspin marks lane li of core blocked (parked, started, or its result
// dropped).
func (g *laneLog) unspin(core, li int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.spinning, [2]int{core, li})
}

// checkAlone fails when a lane of core other than li still spins: li is
// about to run.
func (g *laneLog) checkAlone(core, li int, op string) {
	if g.spin <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, until := range g.spinning {
		if k[0] == core && k[1] != li && g.clk.Now().Before(until) {
			g.errs = append(g.errs, fmt.Sprintf("c%d/l%d: %s while lane %d spins", core, li, op, k[1]))
		}
	}
}

func (g *laneLog) add(core, lane int, op string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := fmt.Sprintf("c%d/l%d %s", core, lane, op)
	g.ev = append(g.ev, s)
	g.all = append(g.all, s)
}

func (g *laneLog) fail(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs = append(g.errs, fmt.Sprintf(format, args...))
}

// take returns the events since the last take.
func (g *laneLog) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ev := g.ev
	g.ev = nil
	return ev
}

func (g *laneLog) errors() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.errs...)
}

// fakeLane is one generation of a lane process. It logs every call and
// checks the protocol: Start only on an idle lane, Stop only on a running
// one, Resume only on a stopped one, nothing after Kill.
type fakeLane struct {
	log        *laneLog
	core, lane int

	mu        sync.Mutex
	job       uint64 // started on it and not yet answered by a delivered result
	stopped   bool
	killed    bool
	ended     bool            // job ended: its result is on its way
	finishing map[uint64]bool // what Finishing answers
	asked     int             // Finishing calls
}

func newFakeLane(log *laneLog, core, lane int) *fakeLane {
	return &fakeLane{log: log, core: core, lane: lane, finishing: map[uint64]bool{}}
}

func (l *fakeLane) Start(t *Task) {
	l.log.add(l.core, l.lane, fmt.Sprintf("start %d", t.ID))
	l.log.unspin(l.core, l.lane)
	l.log.checkAlone(l.core, l.lane, fmt.Sprintf("start %d", t.ID))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed || l.stopped || (l.job != 0 && !l.ended) {
		l.log.fail("c%d/l%d: start %d on a lane that is killed=%v stopped=%v job=%d", l.core, l.lane, t.ID, l.killed, l.stopped, l.job)
	}
	l.job, l.ended = t.ID, false
}

func (l *fakeLane) Stop() {
	l.log.add(l.core, l.lane, "stop")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed || l.stopped || l.job == 0 {
		l.log.fail("c%d/l%d: stop of a lane that is killed=%v stopped=%v job=%d", l.core, l.lane, l.killed, l.stopped, l.job)
	}
	l.stopped = true
}

func (l *fakeLane) Resume() {
	l.log.add(l.core, l.lane, "resume")
	l.log.checkAlone(l.core, l.lane, "resume")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed || !l.stopped {
		l.log.fail("c%d/l%d: resume of a lane that is killed=%v stopped=%v", l.core, l.lane, l.killed, l.stopped)
	}
	l.stopped = false
}

func (l *fakeLane) Kill() {
	l.log.add(l.core, l.lane, "kill")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		l.log.fail("c%d/l%d: killed twice", l.core, l.lane)
	}
	l.killed = true
}

func (l *fakeLane) Park() {
	l.log.add(l.core, l.lane, "park")
	l.log.unspin(l.core, l.lane)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed || l.stopped || (l.job != 0 && !l.ended) {
		l.log.fail("c%d/l%d: park of a lane that is killed=%v stopped=%v job=%d", l.core, l.lane, l.killed, l.stopped, l.job)
	}
}

func (l *fakeLane) Finishing(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	return l.finishing[id]
}

// setFinishing makes Finishing(id) report true.
func (l *fakeLane) setFinishing(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finishing[id] = true
}

// end marks the lane's job ended: its result is on its way, Finishing says so.
func (l *fakeLane) end() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	l.finishing[l.job] = true
	return l.job
}

// delivered records that the dispatcher accepted the result of job id:
// unless the dispatcher started another job there, the lane is idle.
func (l *fakeLane) delivered(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.job == id {
		l.job, l.ended = 0, false
	}
}

// running reports whether the lane holds a job that uses its CPU.
func (l *fakeLane) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.killed && !l.stopped && l.job != 0 && !l.ended
}

// started reports whether the lane was started and is neither stopped nor
// killed, nor was its result delivered: as far as the dispatcher can
// know, it runs.
func (l *fakeLane) started() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.killed && !l.stopped && l.job != 0
}

// state returns the lane's job and whether it is stopped or killed.
func (l *fakeLane) state() (job uint64, stopped, killed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.job, l.stopped, l.killed
}

// harness is a dispatcher with fake lanes on a fake clock.
type harness struct {
	t     *testing.T
	clk   *ManualClock
	log   *laneLog
	d     *Dispatcher
	lanes [][]*fakeLane // the current generation of every lane; nil: down
}

const ms = time.Millisecond

// cfg returns a scheduler configuration with n lanes, no preemption cost
// and a 2 ms grace.
func cfg(n int) sched.Config {
	return sched.Config{Lanes: n, PreemptCost: -1, Grace: int64(2 * ms)}
}

// newHarness returns a dispatcher with every lane of every core up.
func newHarness(t *testing.T, cores int, sc sched.Config, grace time.Duration) *harness {
	t.Helper()
	return newSpinHarness(t, cores, sc, grace, 0)
}

// newSpinHarness is newHarness with lanes that spin for spin after each
// answered job (Config.Spin), which the fakes check.
func newSpinHarness(t *testing.T, cores int, sc sched.Config, grace, spin time.Duration) *harness {
	t.Helper()
	clk := NewManualClock(t0)
	h := &harness{t: t, clk: clk, log: &laneLog{clk: clk, spin: spin, spinning: map[[2]int]time.Time{}}}
	d, err := New(Config{Cores: cores, Sched: sc, Grace: grace, Spin: spin, Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	h.lanes = make([][]*fakeLane, cores)
	for c := range cores {
		h.lanes[c] = make([]*fakeLane, d.Lanes())
		for li := range d.Lanes() {
			h.up(c, li)
		}
	}
	t.Cleanup(func() {
		if errs := h.log.errors(); len(errs) > 0 {
			t.Errorf("lane protocol violations:\n%v", errs)
		}
	})
	return h
}

// up brings up a new generation of lane li of core.
func (h *harness) up(core, li int) *fakeLane {
	l := newFakeLane(h.log, core, li)
	h.lanes[core][li] = l
	h.d.LaneUp(core, li, l)
	return l
}

// down reports lane li of core gone.
func (h *harness) down(core, li int, why string) {
	l := h.lanes[core][li]
	h.lanes[core][li] = nil
	h.log.unspin(core, li) // a process gone spins no more
	h.d.LaneDown(core, li, l, why)
}

// task returns a deadline task due rel from now with estimate est.
func (h *harness) task(id uint64, rel, est time.Duration) *Task {
	t := NewTask(id)
	t.Deadline = h.clk.Now().Add(rel)
	t.Estimate = est
	t.Done = make(chan Outcome, 2) // room for a second outcome, to catch it
	return t
}

// be returns a best-effort task, with no estimate known (as the
// supervisor passes it: the cap).
func (h *harness) be(id uint64) *Task {
	t := NewTask(id)
	t.Estimate = time.Duration(h.d.Config().BestEffortCap)
	t.Done = make(chan Outcome, 2)
	return t
}

// admit admits t, failing the test on an error, and returns its core.
func (h *harness) admit(t *Task) int {
	h.t.Helper()
	c, err := h.d.Admit(t)
	if err != nil {
		h.t.Fatalf("admit %d: %v", t.ID, err)
	}
	return c
}

// laneOf returns the core and lane holding job id, and the lane.
func (h *harness) laneOf(id uint64) (int, int, *fakeLane) {
	h.t.Helper()
	for c := range h.lanes {
		for li, l := range h.lanes[c] {
			if l == nil {
				continue
			}
			if job, _, killed := l.state(); job == id && !killed {
				return c, li, l
			}
		}
	}
	h.t.Fatalf("job %d is on no lane", id)
	return -1, -1, nil
}

// result delivers job id's result from the lane holding it, and logs it
// ("result <id>", then "dropped <id>" if the dispatcher dropped it).
func (h *harness) result(id uint64, res any) bool {
	h.t.Helper()
	c, li, l := h.laneOf(id)
	l.end()
	return h.deliver(c, li, l, id, res)
}

// deliver delivers job id's result from lane li of core, served by l.
func (h *harness) deliver(c, li int, l *fakeLane, id uint64, res any) bool {
	h.log.add(c, li, fmt.Sprintf("result %d", id))
	return deliverTo(h.d, c, li, l, id, res)
}

// deliverTo hands job id's result from lane li of core, served by l, to d;
// the lane spins from then on if it is not stopped (Config.Spin).
func deliverTo(d *Dispatcher, c, li int, l *fakeLane, id uint64, res any) bool {
	if _, stopped, _ := l.state(); !stopped {
		l.log.spinFrom(c, li)
	}
	ok := d.Result(c, li, l, id, res)
	if ok {
		l.delivered(id)
	} else {
		l.log.unspin(c, li)
		l.log.add(c, li, fmt.Sprintf("dropped %d", id))
	}
	return ok
}

// expectLog checks the lane calls since the last check.
func (h *harness) expectLog(want ...string) {
	h.t.Helper()
	got := h.log.take()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Fatalf("lane calls:\n got %q\nwant %q", got, want)
	}
}

// outcome returns t's outcome, failing if there is none or more than one.
func (h *harness) outcome(t *Task) Outcome {
	h.t.Helper()
	select {
	case o := <-t.Done:
		select {
		case o2 := <-t.Done:
			h.t.Fatalf("task %d: a second outcome %+v after %+v", t.ID, o2, o)
		default:
		}
		return o
	default:
		h.t.Fatalf("task %d: no outcome", t.ID)
	}
	return Outcome{}
}

// none checks that t has no outcome yet.
func (h *harness) none(ts ...*Task) {
	h.t.Helper()
	for _, t := range ts {
		select {
		case o := <-t.Done:
			h.t.Fatalf("task %d: unexpected outcome %+v", t.ID, o)
		default:
		}
	}
}

// lanesInfo returns the status of core's lanes, as "state:task".
func (h *harness) lanesInfo(core int) string {
	_, cores, _ := h.d.Stats()
	s := ""
	for i, l := range cores[core].Lanes {
		if i > 0 {
			s += " "
		}
		s += l.State
		if l.Task != 0 {
			s += fmt.Sprintf(":%d", l.Task)
		}
	}
	return s
}

// whats returns the What of each step of t's timeline, with its time
// since t0.
func (h *harness) whats(t *Task) []string {
	var out []string
	for _, s := range h.d.Timeline(t) {
		out = append(out, fmt.Sprintf("%s@%v", s.What, s.At.Sub(t0)))
	}
	return out
}
