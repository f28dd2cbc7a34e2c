package supervisor

// Issue 12, "Honest admission": supervisor-level tests of its numbered
// cases, through Supervisor.Call and Supervisor.Test, with fake lanes, a
// fake dispatcher clock (which also drives the estimator) and a fake
// benchd (calibrator.measure): no root, no processes.
//
//	go test -race -count=1 -run 'TestHonest' ./supervisor/
//
// The cases tested elsewhere:
//   - item 6 (calibration is wall time less run_delay, not thread CPU
//     time): benchd/calibrate_test.go, TestCalibrateSleep,
//     TestCalibrateContended, TestCalibrateWallFallback;
//   - item 8 (benchd requests and answers carry ids; a late answer is
//     dropped, never given to another request): supervisor/bench_test.go,
//     TestBenchLateAnswerDropped, TestBenchLostBeforeSend;
//   - item 7's storage half (calibrations stored apart from module.wasm,
//     bounded): store_test.go, TestStoreCalibrationsApart,
//     TestStoreCalibrationsBounded; its queue half in detail:
//     calibqueue_test.go, TestCalibrateLaterBounded;
//   - item 2 for every failure kind: calibqueue_test.go,
//     TestCalibrationWaitersShareOutcome;
//   - the estimator's own recovery rules: sched/estimator_test.go.

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

const hms = time.Millisecond

// honRestart is the restart cost the rig's scheduler starts with: what
// admission charges for a lane killed at an unverified call's deadline.
const honRestart = 10 * hms

// honT0 is the fake clock's start.
var honT0 = time.Unix(2_000_000, 0)

// honLane is one generation of a fake lane process on core 0. It records
// what the dispatcher asks of it; the test delivers its results.
type honLane struct {
	r  *honRig
	li int

	mu      sync.Mutex
	ops     []string
	stopped bool
	killed  bool
}

func (l *honLane) Start(t *dispatch.Task) {
	name := t.Payload.(*task).name
	l.mu.Lock()
	l.ops = append(l.ops, "start "+name)
	l.mu.Unlock()
	l.r.started(l, t.ID, name)
}

func (l *honLane) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, "stop")
	l.stopped = true
}

func (l *honLane) Resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, "resume")
	l.stopped = false
}

func (l *honLane) Kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, "kill")
	l.killed = true
}

func (l *honLane) Finishing(uint64) bool { return false }
func (l *honLane) Park()                 {}

func (l *honLane) log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.ops, ", ")
}

// honJob is a job started on a fake lane.
type honJob struct {
	l  *honLane
	id uint64
}

// honBench stands in for benchd (calibrator.measure). With answer nil a
// measurement waits for one on answers, or for its context to end: a
// benchd that never answers.
type honBench struct {
	answers chan honBenchAnswer
	entered chan *call

	mu     sync.Mutex
	n      int
	answer func(context.Context, *call) (*ipc.Calibrated, error)
}

type honBenchAnswer struct {
	res *ipc.Calibrated
	err error
}

func (b *honBench) measure(ctx context.Context, cl *call) (*ipc.Calibrated, error) {
	b.mu.Lock()
	b.n++
	f := b.answer
	b.mu.Unlock()
	select {
	case b.entered <- cl:
	default:
	}
	if f != nil {
		return f(ctx, cl)
	}
	select {
	case a := <-b.answers:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *honBench) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *honBench) set(f func(context.Context, *call) (*ipc.Calibrated, error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answer = f
}

// next waits for the next measurement to start.
func (b *honBench) next(t *testing.T) *call {
	t.Helper()
	select {
	case cl := <-b.entered:
		return cl
	case <-time.After(10 * time.Second):
		t.Fatal("no measurement started")
		return nil
	}
}

// honRig is a Supervisor with one worker core of `lanes` fake lanes, a
// fake clock for the dispatcher and the estimator, a fake benchd, and
// module m.wasm exporting f(i32).
type honRig struct {
	t     *testing.T
	s     *Supervisor
	clk   *dispatch.ManualClock
	bench *honBench

	mu    sync.Mutex
	lanes []*honLane
	jobs  map[string]honJob // started jobs by task name
	// auto, if not nil, receives every started job whose name does not
	// begin with "hold", for autoAnswer.
	auto chan honJob
}

func newHonRig(t *testing.T, lanes int, restart time.Duration) *honRig {
	t.Helper()
	dir := t.TempDir()
	cfg, err := Config{StateDir: dir, CacheDir: dir, RuntimeDir: dir, Lanes: lanes, Version: "v-test"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = slog.New(slog.DiscardHandler)
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	clk := dispatch.NewManualClock(honT0)
	disp, err := dispatch.New(dispatch.Config{Cores: 1, Grace: cfg.Grace, Clock: clk, Sched: sched.Config{
		BestEffortCap: cfg.BestEffortCap.Nanoseconds(),
		Grace:         cfg.Grace.Nanoseconds(),
		Lanes:         cfg.Lanes,
		Quantum:       cfg.Quantum.Nanoseconds(),
		PreemptCost:   cfg.PreemptCost.Nanoseconds(),
		RestartCost:   restart.Nanoseconds(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Estimates age on the fake clock, as on the scheduler's in New.
	est, err := sched.NewEstimator(sched.EstimatorConfig{Now: func() int64 { return clk.Now().Sub(honT0).Nanoseconds() }})
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Log, epoch: time.Now(), store: st, disp: disp, est: est,
		tasks: map[uint64]*task{}, names: map[string]*task{}, wake: make(chan struct{})}
	s.recent.init(64)
	s.choice.Workers = []int{1}
	for li := range lanes {
		s.workers = append(s.workers, &child{name: fmt.Sprintf("worker-1:%d", li), group: "worker-1", role: RoleWorker,
			cpu: 1, cpus: []int{1}, core: 0, lane: li, log: cfg.Log, wanted: true, state: Running})
	}
	s.benchd = &child{name: "benchd", group: "benchd", role: RoleBenchd, cpu: -1, cpus: []int{0}, core: -1, log: cfg.Log, wanted: true}
	s.met = newMetrics(s)
	b := &honBench{answers: make(chan honBenchAnswer), entered: make(chan *call, 4096)}
	s.calib.measure = b.measure
	t.Cleanup(s.calib.stop)

	wasm := []byte("\x00asm\x01\x00\x00\x00honest")
	m := &Module{Name: "m.wasm", SHA256: Sum(wasm), Size: len(wasm), Registered: time.Now().UTC(), wasm: wasm,
		Exports: []ExportInfo{{Name: "f", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{}}}}
	if err := s.store.put(m); err != nil {
		t.Fatal(err)
	}
	r := &honRig{t: t, s: s, clk: clk, bench: b, lanes: make([]*honLane, lanes), jobs: map[string]honJob{}}
	for li := range lanes {
		r.up(li)
	}
	return r
}

// up brings up a new generation of lane li (a respawn after a kill).
func (r *honRig) up(li int) *honLane {
	l := &honLane{r: r, li: li}
	r.mu.Lock()
	r.lanes[li] = l
	r.mu.Unlock()
	r.s.disp.LaneUp(0, li, l)
	return l
}

func (r *honRig) lane(li int) *honLane {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lanes[li]
}

// started is honLane.Start's report; the dispatcher's lock is held.
func (r *honRig) started(l *honLane, id uint64, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs[name] = honJob{l: l, id: id}
	if r.auto != nil && !strings.HasPrefix(name, "hold") {
		r.auto <- honJob{l: l, id: id}
	}
}

// isStarted reports whether the call named name was started on a lane.
func (r *honRig) isStarted(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.jobs[name]
	return ok
}

// autoAnswer answers every started job not named hold* at once, as a
// lane would after exec of run time.
func (r *honRig) autoAnswer(exec time.Duration) {
	r.mu.Lock()
	r.auto = make(chan honJob, 4096)
	ch := r.auto
	r.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case j := <-ch:
				r.s.disp.Result(0, j.l.li, j.l, j.id, &ipc.Result{ID: j.id, ExecNs: exec.Nanoseconds()})
			case <-stop:
				return
			}
		}
	}()
	r.t.Cleanup(func() { close(stop); <-done })
}

// startedJob returns the job last started under name; it fails the test if
// there is none.
func (r *honRig) startedJob(name string) honJob {
	r.t.Helper()
	r.mu.Lock()
	j, ok := r.jobs[name]
	r.mu.Unlock()
	if !ok {
		r.t.Fatalf("%s was never started", name)
	}
	return j
}

// result delivers the result of the started call named name: it ran for
// exec on its lane.
func (r *honRig) result(name string, exec time.Duration) {
	r.t.Helper()
	j := r.startedJob(name)
	if !r.s.disp.Result(0, j.l.li, j.l, j.id, &ipc.Result{ID: j.id, ExecNs: exec.Nanoseconds()}) {
		r.t.Fatalf("the result of %s was dropped", name)
	}
}

// spec is a call of m.wasm f(p) arriving now on the fake clock.
func (r *honRig) spec(name string, p int, declared, deadline time.Duration) httpapi.CallSpec {
	return httpapi.CallSpec{Arrived: r.clk.Now(), Module: "m.wasm", Export: "f", TaskName: name,
		Params: []byte(fmt.Sprintf("[%d]", p)), ResultsLength: -1, Declared: declared, Deadline: deadline}
}

func (r *honRig) key(p int) string {
	r.t.Helper()
	cl, err := r.s.resolve("m.wasm", "f", nil, []byte(fmt.Sprintf("[%d]", p)), -1)
	if err != nil {
		r.t.Fatal(err)
	}
	return cl.key
}

// seed gives f(p) a measured estimate, as a calibration of p99 c does.
func (r *honRig) seed(p int, c time.Duration) {
	key := r.key(p)
	r.s.mu.Lock()
	r.s.est.Seed(key, c.Nanoseconds())
	r.s.mu.Unlock()
}

// learned returns f(p)'s learned estimate, 0 if none.
func (r *honRig) learned(p int) time.Duration {
	key := r.key(p)
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	ns, _ := r.s.est.Learned(key)
	return time.Duration(ns)
}

// honCall is a /call in flight.
type honCall struct {
	r    *honRig
	name string
	done chan struct{}
	res  *httpapi.CallResult
	err  error
	took time.Duration // real time
}

// call sends f(p) and returns once it is admitted (it then waits for its
// outcome) or answered (refused): admission is synchronous in Call.
func (r *honRig) call(name string, p int, declared, deadline time.Duration) *honCall {
	r.t.Helper()
	c := &honCall{r: r, name: name, done: make(chan struct{})}
	spec := r.spec(name, p, declared, deadline)
	go func() {
		start := time.Now()
		c.res, c.err = r.s.Call(context.Background(), spec)
		c.took = time.Since(start)
		close(c.done)
	}()
	honWait(r.t, name+" admitted or answered", func() bool {
		select {
		case <-c.done:
			return true
		default:
		}
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		tk := r.s.names[name]
		return tk != nil && tk.core >= 0
	})
	return c
}

// answered reports whether c has its answer.
func (c *honCall) answered() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait returns c's answer.
func (c *honCall) wait() (*httpapi.CallResult, error) {
	c.r.t.Helper()
	select {
	case <-c.done:
		return c.res, c.err
	case <-time.After(10 * time.Second):
		c.r.t.Fatalf("%s: no answer", c.name)
		return nil, nil
	}
}

// admitted checks that c was admitted and waits for its outcome, and
// whether it is unverified (admitted as occupying its core until its kill).
func (c *honCall) admitted(unverified bool) {
	c.r.t.Helper()
	if c.answered() {
		c.r.t.Fatalf("%s: answered %v, want admitted", c.name, c.err)
	}
	c.r.s.mu.Lock()
	tk := c.r.s.names[c.name]
	got := tk != nil && tk.dt.Unverified
	c.r.s.mu.Unlock()
	if got != unverified {
		c.r.t.Errorf("%s: admitted with unverified %v, want %v", c.name, got, unverified)
	}
}

// met checks that c succeeded within its deadline.
func (c *honCall) met() *httpapi.CallResult {
	c.r.t.Helper()
	res, err := c.wait()
	if err != nil {
		c.r.t.Fatalf("%s: got %v, want a result", c.name, err)
	}
	if res.DeadlineMet == nil || !*res.DeadlineMet {
		c.r.t.Fatalf("%s: late: total %v, deadline %v", c.name, res.Total, res.Deadline)
	}
	return res
}

// refused checks that c was refused at admission with an error of class
// code.
func (c *honCall) refused(code apierr.Code) error {
	c.r.t.Helper()
	if !c.answered() {
		c.r.t.Fatalf("%s: admitted, want refused with class %v", c.name, code)
	}
	return c.failed(code)
}

// failed checks that c was answered with an error of class code.
func (c *honCall) failed(code apierr.Code) error {
	c.r.t.Helper()
	_, err := c.wait()
	if err == nil || apierr.CodeOf(err) != code {
		c.r.t.Fatalf("%s: got %v (class %v), want class %v", c.name, err, apierr.CodeOf(err), code)
	}
	return err
}

func honWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestHonestLiarNonPreemptive is item 1 on a core with one lane: a liar's
// never-measured call declaring 1 ms (it runs 40 ms) is admitted
// unverified, planned as holding the core until its kill and the lane's
// restart; an honest measured call it would delay is refused instead of
// being admitted and made late; a liar that would delay an admitted honest
// call is refused; and with the liar running far past its claim, the
// honest calls admitted around it finish on time.
//
// On the old behaviour (a declared C trusted: dt.Unverified false) the
// tight honest call is admitted behind the liar, and the liar is admitted
// ahead of a queued honest call; both would be late.
func TestHonestLiarNonPreemptive(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.bench.set(func(ctx context.Context, _ *call) (*ipc.Calibrated, error) { <-ctx.Done(); return nil, ctx.Err() })
	r.seed(1, 2*hms) // honest f(1) is measured: C = 2.25 ms (p99 +10% +50 µs), +150 µs dispatch

	// The liar comes first, on an idle core: admitted, unverified.
	liar := r.call("liar", 1000, 1*hms, 40*hms)
	liar.admitted(true)
	if !r.isStarted("liar") {
		t.Fatal("the liar was not started on the idle core")
	}
	// It holds the core until 40 + 2 (grace) + 10 (restart) = 52 ms, so an
	// honest call due at 9 ms cannot be admitted behind it.
	r.clk.AdvanceTo(1 * hms)
	tight := r.call("honest-tight", 1, 0, 8*hms)
	if err := tight.refused(apierr.Unschedulable); err.(*apierr.Error).RetryAfter <= 0 {
		t.Errorf("refusal without Retry-After: %v", err)
	}
	// One that fits after the liar's kill and restart is admitted.
	loose := r.call("honest-loose", 1, 0, 60*hms)
	loose.admitted(false)

	// The liar runs far past its 1 ms claim: killed at its deadline.
	r.clk.AdvanceTo(41 * hms)
	if liar.answered() {
		t.Fatalf("liar answered before its kill: %v", liar.err)
	}
	r.clk.AdvanceTo(42 * hms)
	liar.failed(apierr.DeadlineExceeded)
	if got := r.lane(0).log(); got != "start liar, kill" {
		t.Errorf("lane 0: got %q, want the liar started and killed", got)
	}
	// Its lane is respawned within the restart cost; the honest call runs.
	r.clk.AdvanceTo(52 * hms)
	r.up(0)
	r.clk.Advance(2 * hms)
	r.result("honest-loose", 2*hms)
	if res := loose.met(); res.EstimateSource != sched.SourceLearned {
		t.Errorf("honest call: source %q, want learned", res.EstimateSource)
	}

	// Now an honest call is admitted first and another queued behind it;
	// a liar due before the queued one would delay it past its deadline
	// (its plan: 16 + 2 + 10 ms from now, before it), so it is refused.
	base := r.clk.Now().Sub(honT0)
	a := r.call("honest-a", 1, 0, 8*hms)
	a.admitted(false)
	b := r.call("honest-b", 1, 0, 12*hms)
	b.admitted(false)
	liar2 := r.call("liar-2", 2000, 1*hms, 6*hms)
	liar2.refused(apierr.Unschedulable)
	r.clk.AdvanceTo(base + 2*hms)
	r.result("honest-a", 2*hms)
	a.met()
	r.clk.AdvanceTo(base + 4*hms)
	r.result("honest-b", 2*hms)
	b.met()
}

// TestHonestLiarPreempted is item 1 with lanes (the default, 3): the
// honest call preempts the liar running past its claim, finishes on time,
// and the liar is resumed and killed at its own deadline, its lane alone.
func TestHonestLiarPreempted(t *testing.T) {
	r := newHonRig(t, 3, honRestart)
	r.bench.set(func(ctx context.Context, _ *call) (*ipc.Calibrated, error) { <-ctx.Done(); return nil, ctx.Err() })
	r.seed(1, 2*hms)

	liar := r.call("liar", 1000, 1*hms, 40*hms)
	liar.admitted(true)
	for i, at := range []time.Duration{1 * hms, 10 * hms, 30 * hms} {
		r.clk.AdvanceTo(at)
		name := fmt.Sprintf("honest-%d", i)
		h := r.call(name, 1, 0, 8*hms)
		h.admitted(false)
		r.clk.Advance(2 * hms)
		r.result(name, 2*hms)
		if res := h.met(); !res.Preempted || res.Lane == 0 {
			t.Errorf("%s: preempted %v on lane %d, want it to preempt the liar on lane 0", name, res.Preempted, res.Lane)
		}
	}
	r.clk.AdvanceTo(42 * hms)
	liar.failed(apierr.DeadlineExceeded)
	want := "start liar, stop, resume, stop, resume, stop, resume, kill"
	if got := r.lane(0).log(); got != want {
		t.Errorf("the liar's lane: got %q, want %q", got, want)
	}
	// The kill took one lane: the core goes on with the others at once.
	h := r.call("honest-after", 1, 0, 8*hms)
	h.admitted(false)
	r.clk.Advance(2 * hms)
	r.result("honest-after", 2*hms)
	h.met()
}

// TestHonestFailedCalibration is item 2: a /call of a shape whose
// calibration is in flight does not wait for it and is never admitted with
// an estimate of 0 — it is admitted unverified, planned as holding its core
// until its kill; when the calibration fails, a /test waiting on it gets
// the error (not 200 "result":"1"), nothing is learned, and the shape
// stays unverified.
func TestHonestFailedCalibration(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	key := r.key(5)
	type tested struct {
		res *httpapi.Tested
		err error
	}
	tests := make(chan tested, 2)
	test := func() {
		res, err := r.s.Test(context.Background(), r.spec("", 5, 0, 0))
		tests <- tested{res, err}
	}
	go test()
	r.bench.next(t) // the first /test measures
	go test()       // the second waits for it
	honWait(t, "the second /test waits", func() bool { return r.s.calib.waiting(key) == 1 })

	first := r.call("first-use", 5, 0, 20*hms)
	first.admitted(true)
	r.s.mu.Lock()
	tk := r.s.names["first-use"]
	est, source := tk.estimate, tk.source
	r.s.mu.Unlock()
	if est != 0 || source != "none" {
		t.Errorf("first use: estimate %v source %q, want 0 and none (reported as such, admitted unverified)", est, source)
	}

	r.bench.answers <- honBenchAnswer{err: apierr.New(apierr.WorkerLost, "benchd exited during the request")}
	for range 2 {
		got := <-tests
		if got.err == nil || apierr.CodeOf(got.err) != apierr.WorkerLost {
			t.Errorf("/test: got %+v %v, want the calibration's Error_Worker_lost", got.res, got.err)
		}
	}
	if c := r.learned(5); c != 0 {
		t.Errorf("after a failed calibration: learned %v, want none", c)
	}

	// Unverified, the first-use call holds the core until 20 + 2 + 10 ms:
	// an honest call due at 25 ms cannot wait behind it; one due at 40 ms
	// can. With an estimate of 0, both would be admitted.
	r.seed(1, 2*hms)
	r.call("honest-tight", 1, 0, 25*hms).refused(apierr.Unschedulable)
	loose := r.call("honest-loose", 1, 0, 40*hms)
	loose.admitted(false)
	r.clk.AdvanceTo(3 * hms)
	r.result("first-use", 3*hms)
	if res, err := first.wait(); err != nil || res.EstimateSource != "none" {
		t.Errorf("first use: got %+v %v, want a result with estimate_source none", res, err)
	}
	r.clk.AdvanceTo(5 * hms)
	r.result("honest-loose", 2*hms)
	loose.met()
}

// TestHonestKilledRaisesEstimate is item 3: a job killed at its deadline
// is an observation ("at least this long", doubled), so the same call is
// refused (422) instead of being admitted and killed again; a deadline the
// raised estimate fits is admitted.
//
// On the old behaviour (a kill not fed to the estimator) the second call
// is admitted.
func TestHonestKilledRaisesEstimate(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(7, 2*hms) // calibrated at 2 ms; on a worker it takes 30 ms

	k := r.call("k1", 7, 0, 10*hms)
	k.admitted(false)
	r.clk.AdvanceTo(12 * hms) // deadline + grace
	k.failed(apierr.DeadlineExceeded)
	if c := r.learned(7); c < 24*hms {
		t.Errorf("after a kill at 12 ms of run time: learned %v, want at least 24 ms", c)
	}
	r.clk.AdvanceTo(22 * hms) // its lane is back
	r.up(0)
	again := r.call("k2", 7, 0, 10*hms)
	if err := again.refused(apierr.InvalidDeadline); !strings.Contains(err.Error(), "learned") {
		t.Errorf("refusal: %v, want it to name the learned estimate", err)
	}
	if r.isStarted("k2") {
		t.Error("the refused call was started")
	}
	ok := r.call("k3", 7, 0, 100*hms)
	ok.admitted(false)
	r.clk.Advance(30 * hms)
	r.result("k3", 30*hms)
	ok.met()
}

// honOutlier gives f(p) a measured history of a 2 ms seed, ten 2 ms runs
// and one run delayed to 60 ms, all through calls; it returns the learned
// estimate after it.
func (r *honRig) honOutlier(p int) time.Duration {
	r.t.Helper()
	r.seed(p, 2*hms)
	for i := range 11 {
		name, run := fmt.Sprintf("run-%d-%d", p, i), 2*hms
		if i == 10 {
			run = 60 * hms // the machine was busy
		}
		c := r.call(name, p, 0, 100*hms)
		c.admitted(false)
		r.clk.Advance(run)
		r.result(name, run)
		c.met()
	}
	c := r.learned(p)
	if c < 60*hms {
		r.t.Fatalf("after a 60 ms run: learned %v, want at least 60 ms", c)
	}
	return c
}

// TestHonestEstimateRecovers is item 4: one slow run raises the estimate
// and calls that no longer fit are refused (422); a refused shape whose
// estimate rests on that one run is re-measured in the background, once
// however many calls are refused, at most every 10 s; and even when that
// measurement fails, the outlier ages out after the estimator's MaxAge and
// the shape is admitted again.
func TestHonestEstimateRecovers(t *testing.T) {
	t.Run("aged out", func(t *testing.T) {
		r := newHonRig(t, 1, honRestart)
		r.bench.set(func(context.Context, *call) (*ipc.Calibrated, error) {
			return nil, apierr.New(apierr.WorkerLost, "benchd is down")
		})
		c := r.honOutlier(3)
		for i := range 20 {
			r.call(fmt.Sprintf("refused-%d", i), 3, 0, 40*hms).refused(apierr.InvalidDeadline)
		}
		idle := func(done uint64) func() bool {
			return func() bool {
				st := r.s.CalibrationQueue()
				return st.Done == done && st.Pending == 0 && !st.Running
			}
		}
		honWait(t, "the re-measure ran", idle(1))
		if n := r.bench.count(); n != 1 {
			t.Errorf("20 refused calls: %d re-measures, want 1", n)
		}
		// 10 s later (the supervisor's real clock): one more.
		key := r.key(3)
		r.s.mu.Lock()
		r.s.remeasured[key] = time.Now().Add(-remeasureEvery - time.Second)
		r.s.mu.Unlock()
		r.call("refused-later", 3, 0, 40*hms).refused(apierr.InvalidDeadline)
		r.call("refused-later-2", 3, 0, 40*hms).refused(apierr.InvalidDeadline)
		honWait(t, "the second re-measure ran", idle(2))
		if n := r.bench.count(); n != 2 {
			t.Errorf("after 10 s: %d re-measures in all, want 2", n)
		}
		if got := r.learned(3); got != c {
			t.Errorf("failed re-measures changed the estimate: %v, was %v", got, c)
		}

		// No run since; the outlier ages out.
		r.clk.Advance(time.Duration(sched.DefaultMaxAge) + time.Minute)
		if got := r.learned(3); got > 3*hms {
			t.Errorf("after MaxAge: learned %v, want the 2 ms runs' estimate", got)
		}
		ok := r.call("recovered", 3, 0, 40*hms)
		ok.admitted(false)
		r.clk.Advance(2 * hms)
		r.result("recovered", 2*hms)
		if res := ok.met(); res.EstimateSource != sched.SourceLearned {
			t.Errorf("recovered: source %q, want learned", res.EstimateSource)
		}
	})
	t.Run("re-measured", func(t *testing.T) {
		r := newHonRig(t, 1, honRestart)
		r.bench.set(func(context.Context, *call) (*ipc.Calibrated, error) {
			return &ipc.Calibrated{Runs: 50, MinNs: 1.8e6, MedianNs: 1.9e6, P99Ns: 2e6, MaxNs: 2.1e6, Stable: true}, nil
		})
		r.honOutlier(4)
		r.call("refused", 4, 0, 40*hms).refused(apierr.InvalidDeadline)
		honWait(t, "the re-measure ran", func() bool { return r.s.CalibrationQueue().Done == 1 })
		honWait(t, "the estimate is seeded", func() bool { return r.learned(4) < 3*hms })
		// Admitted again at once, no MaxAge needed.
		ok := r.call("recovered", 4, 0, 40*hms)
		ok.admitted(false)
		r.clk.Advance(2 * hms)
		r.result("recovered", 2*hms)
		ok.met()
		if n := r.bench.count(); n != 1 {
			t.Errorf("re-measures: %d, want 1", n)
		}
	})
}

// TestHonestRestartCostMeasured is item 5: the restart cost admission
// charges for a killed lane is the maximum of the last 16 measured lane
// starts (childUp), not the 50 ms placeholder, and admission uses it.
//
// On the old behaviour the cost stays at the placeholder.
func TestHonestRestartCostMeasured(t *testing.T) {
	r := newHonRig(t, 1, time.Duration(sched.DefaultRestartCost))
	r.seed(1, 2*hms)
	w := r.s.workers[0]
	laneStart := func(took time.Duration) {
		r.s.mu.Lock()
		w.started = time.Now().Add(-took)
		r.s.childUp(w)
		r.s.mu.Unlock()
	}
	// An unverified call due at 20 ms holds the one lane until its kill at
	// 22 ms plus the restart: an honest call due at 60 ms fits behind it
	// if the restart takes 5 ms, not if it takes 80.
	liarThenHonest := func(p int, admitted bool) {
		t.Helper()
		base := r.clk.Now().Sub(honT0)
		liar := r.call(fmt.Sprintf("liar-%d", p), p, 1*hms, 20*hms)
		liar.admitted(true)
		h := r.call(fmt.Sprintf("honest-%d", p), 1, 0, 60*hms)
		if !admitted {
			h.refused(apierr.Unschedulable)
		} else {
			h.admitted(false)
		}
		r.clk.AdvanceTo(base + 22*hms)
		liar.failed(apierr.DeadlineExceeded)
		r.up(0)
		if admitted {
			r.clk.Advance(2 * hms)
			r.result(fmt.Sprintf("honest-%d", p), 2*hms)
			h.met()
		}
	}

	laneStart(80 * hms)
	rc := time.Duration(r.s.disp.Config().RestartCost)
	if rc < 80*hms || rc > 80*hms+time.Second {
		t.Fatalf("after a lane start of 80 ms: restart cost %v", rc)
	}
	if st, _ := r.s.status(); st.RestartCostMs != ms(rc) {
		t.Errorf("status says %v ms, admission uses %v", st.RestartCostMs, rc)
	}
	r.up(0) // childUp gave the dispatcher w's (absent) process
	liarThenHonest(100, false)

	// Fifteen quick starts: the 80 ms one is still among the last 16.
	for range restartSamples - 1 {
		laneStart(5 * hms)
	}
	if rc := time.Duration(r.s.disp.Config().RestartCost); rc < 80*hms {
		t.Errorf("80 ms start among the last 16: restart cost %v", rc)
	}
	laneStart(5 * hms)
	if rc := time.Duration(r.s.disp.Config().RestartCost); rc < 5*hms || rc >= 80*hms {
		t.Errorf("16 starts of 5 ms: restart cost %v, want about 5 ms", rc)
	}
	r.up(0)
	liarThenHonest(101, true)
}

// TestHonestBackgroundCalibrationBounded is item 7: 2,000 calls that need
// no token, each with fresh params and a declared C, are admitted
// unverified without waiting, and leave at most maxCalibQueue calibrations
// queued (one running) and no goroutine per call.
func TestHonestBackgroundCalibrationBounded(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.autoAnswer(time.Millisecond)
	// benchd never answers: the queue fills.
	var before, after int
	calls := make(chan error, 1)
	go func() { // not the test's goroutine: a call that waits fails the test, not hangs it
		before = runtime.NumGoroutine()
		for i := range 2000 {
			res, err := r.s.Call(context.Background(), r.spec("", 10_000+i, 1*hms, 40*hms))
			if err != nil || res.EstimateSource != sched.SourceDeclared {
				calls <- fmt.Errorf("call %d: got %+v %v, want a result on the declared estimate", i, res, err)
				return
			}
		}
		runtime.Gosched()
		after = runtime.NumGoroutine()
		calls <- nil
	}()
	select {
	case err := <-calls:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("2,000 calls not answered within 60 s; queue %+v", r.s.CalibrationQueue())
	}
	if after > before+5 {
		t.Errorf("goroutines: %d before 2,000 calls, %d after", before, after)
	}
	r.bench.next(t) // the one running
	st := r.s.CalibrationQueue()
	if st.Queued > maxCalibQueue+1 || st.Pending > maxCalibQueue || st.Queued+st.Dropped != 2000 || st.Deduplicated != 0 {
		t.Errorf("queue: got %+v, want at most %d queued (one running), the rest dropped", st, maxCalibQueue+1)
	}
	if n := r.bench.count(); n != 1 {
		t.Errorf("measurements started: %d, want 1", n)
	}
	t.Logf("goroutines %d → %d; queue %+v", before, after, st)
}

// TestHonestCallNeverWaitsForCalibration is item 9: with benchd stuck
// (every measurement blocks forever), deadline calls are answered at once —
// run unverified, or refused — whether their shape's calibration is in
// flight in the foreground (a /test), queued in the background, or
// neither.
func TestHonestCallNeverWaitsForCalibration(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.autoAnswer(time.Millisecond)
	const deadline = 500 * time.Millisecond // real time, as well as the fake clock's

	ctx, cancel := context.WithCancel(context.Background())
	tested := make(chan error, 1)
	go func() {
		_, err := r.s.Test(ctx, r.spec("", 9, 0, 0))
		tested <- err
	}()
	r.bench.next(t) // the /test of f(9) measures, forever

	check := func(name string, p int, declared time.Duration, source string) {
		t.Helper()
		c := r.call(name, p, declared, deadline) // fails the test if it waits 10 s
		res, err := c.wait()
		took := c.took
		if err != nil || res.EstimateSource != source || res.DeadlineMet == nil || !*res.DeadlineMet {
			t.Fatalf("%s: got %+v %v, want a result on time, estimate_source %s", name, res, err, source)
		}
		if took >= deadline {
			t.Errorf("%s: answered after %v, deadline %v", name, took, deadline)
		}
		t.Logf("%s: answered after %v", name, took)
	}
	check("same-shape", 9, 0, "none")         // its /test is measuring
	check("new-shape", 11, 2*hms, "declared") // queued, behind the /test
	if st := r.s.CalibrationQueue(); st.Pending != 1 || st.Running || st.Deduplicated != 1 {
		t.Errorf("queue: got %+v, want f(11) pending behind the /test, f(9) deduplicated", st)
	}

	// Refused at once where it cannot be admitted: a long measured call
	// holds the one lane for 5.5 s, so the unverified call could not even
	// start before its deadline (it is not admitted only to expire queued).
	r.seed(1, 5*time.Second)
	hold := r.call("hold-long", 1, 0, 10*time.Second)
	hold.admitted(false)
	refused := r.call("refused", 12, 0, deadline)
	refused.refused(apierr.Unschedulable)
	if refused.took >= deadline {
		t.Errorf("refused: answered after %v", refused.took)
	}
	r.clk.Advance(5 * time.Second)
	r.result("hold-long", 5*time.Second)
	hold.met()

	if n := r.bench.count(); n != 1 {
		t.Errorf("measurements started: %d, want the /test's only", n)
	}
	cancel()
	if err := <-tested; err == nil {
		t.Error("/test: got a result from a benchd that never answered")
	}
}

// TestHonestRemeasureAheadOfFirstUse: a re-measure of a shape refused on
// its learned estimate goes ahead of other tenants' first-use calibrations,
// and on a full queue takes the place of the newest of them, so a flood of
// never-measured shapes cannot keep a measured one locked out; a request
// the queue did drop is not recorded as a re-measure.
func TestHonestRemeasureAheadOfFirstUse(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.honOutlier(3) // f(3) is refused at D=40 ms, on one slow run
	key := r.key(3)

	// Other tenants' first-use calls fill the queue; benchd is busy with
	// the first of them.
	r.autoAnswer(time.Millisecond)
	for i := range maxCalibQueue + 1 {
		if _, err := r.s.Call(context.Background(), r.spec("", 10_000+i, 1*hms, 40*hms)); err != nil {
			t.Fatal(err)
		}
	}
	r.bench.next(t)
	if st := r.s.CalibrationQueue(); st.Pending != maxCalibQueue {
		t.Fatalf("queue: %+v, want full", st)
	}
	r.call("refused-full", 3, 0, 40*hms).refused(apierr.InvalidDeadline)
	st := r.s.CalibrationQueue()
	if st.Pending != maxCalibQueue || st.Dropped != 1 {
		t.Fatalf("queue: %+v, want still full, the newest first-use request dropped for f(3)'s re-measure", st)
	}
	r.s.calib.mu.Lock()
	first := r.s.calib.pending[0].cl.key
	r.s.calib.mu.Unlock()
	if first != key {
		t.Fatalf("head of the queue: %q, want f(3)'s re-measure %q", first, key)
	}
	r.s.mu.Lock()
	_, recorded := r.s.remeasured[key]
	r.s.mu.Unlock()
	if !recorded {
		t.Fatal("a queued re-measure is not recorded: the next refusal would queue another")
	}

	// benchd ends the running first-use calibration, then measures f(3)
	// right after it, ahead of the 31 others.
	// Counted when f(3)'s measurement begins: the queue goes on with the
	// others after it, while honWait polls.
	var upTo atomic.Int64
	r.bench.set(func(_ context.Context, cl *call) (*ipc.Calibrated, error) {
		if cl.key == key {
			upTo.Store(int64(r.bench.count()))
			return &ipc.Calibrated{Runs: 50, MinNs: 1.8e6, MedianNs: 1.9e6, P99Ns: 2e6, MaxNs: 2.1e6, Stable: true}, nil
		}
		return nil, apierr.New(apierr.WorkerLost, "benchd exited")
	})
	r.bench.answers <- honBenchAnswer{err: apierr.New(apierr.WorkerLost, "benchd exited")}
	honWait(t, "f(3) is re-measured", func() bool { return r.learned(3) < 3*hms })
	if n := upTo.Load(); n > 3 {
		t.Errorf("measurements up to f(3)'s re-measure: %d, want it second", n)
	}
}

// TestHonestQueuedExpiryAnswered: a call queued behind one that runs past
// its estimate (within its own deadline) is answered when its deadline
// passes, not when the core's next event comes. DESIGN §2: nothing hangs;
// issue 12: a call never waits past its own deadline.
//
// FAILS today: the dispatcher expires queued calls only in Next, on the
// core's next event (here the long call's result 40 ms later; seen in
// TestHonestLiar as a 504 answered 99 ms after an 11 ms deadline).
func TestHonestQueuedExpiryAnswered(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(1, 2*hms)
	long := r.call("long", 1, 0, 100*hms)
	long.admitted(false)
	short := r.call("short", 1, 0, 10*hms) // planned: 2.4 + 2.4 ms, due at 10
	short.admitted(false)
	r.clk.AdvanceTo(12 * hms) // past its deadline and a grace
	select {
	case <-short.done:
	case <-time.After(time.Second):
		t.Errorf("short: not answered at 12 ms, 2 ms past its deadline, while still queued")
	}
	r.clk.AdvanceTo(50 * hms)
	r.result("long", 50*hms) // ran far past its 2 ms estimate, within its deadline
	long.met()
	short.failed(apierr.DeadlineExceeded)
}
