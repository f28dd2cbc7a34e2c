package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// fakeBench stands in for benchd: each measurement announces its call on
// entered and waits for an answer on answer (or the end of its context).
type fakeBench struct {
	entered chan *call
	answer  chan fakeAnswer

	mu        sync.Mutex
	active    int // measurements under way now
	maxActive int
	n         int // measurements started
}

type fakeAnswer struct {
	res *ipc.Calibrated
	err error
}

func newFakeBench(s *Supervisor) *fakeBench {
	f := &fakeBench{entered: make(chan *call, 100), answer: make(chan fakeAnswer)}
	s.calib.measure = f.measure
	return f
}

func (f *fakeBench) measure(ctx context.Context, cl *call) (*ipc.Calibrated, error) {
	f.mu.Lock()
	f.n++
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	f.entered <- cl
	select {
	case a := <-f.answer:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// next waits for the next measurement to start.
func (f *fakeBench) next(t *testing.T) *call {
	t.Helper()
	select {
	case cl := <-f.entered:
		return cl
	case <-time.After(10 * time.Second):
		t.Fatal("no measurement started")
		return nil
	}
}

// okAnswer is a successful measurement.
var okAnswer = fakeAnswer{res: &ipc.Calibrated{Runs: 50, MinNs: 900_000, MedianNs: 1_000_000, P99Ns: 1_200_000, MaxNs: 1_500_000, Stable: true}}

// putTestModule registers module name with export f(i32) in s's store.
func putTestModule(t *testing.T, s *Supervisor, name string) {
	t.Helper()
	if err := s.store.put(testModule(name, "\x00asm\x01\x00\x00\x00"+name)); err != nil {
		t.Fatal(err)
	}
}

// callOf resolves module.f(p).
func callOf(t *testing.T, s *Supervisor, module string, p int) *call {
	t.Helper()
	cl, err := s.resolve(module, "f", nil, []byte("["+strconv.Itoa(p)+"]"), -1)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

type calOutcome struct {
	cal *Calibration
	err error
}

// TestCalibrationWaitersShareOutcome: a request that finds its call being
// calibrated by another gets that calibration's outcome — its error when
// it failed (issue 12 item 2: a /test answered 200 "result":"1", a /call
// was admitted with estimate 0).
func TestCalibrationWaitersShareOutcome(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	spec := httpapi.CallSpec{Module: "m.wasm", Export: "f", Params: []byte(`["7"]`), ResultsLength: -1}

	for _, tt := range []struct {
		name   string
		answer fakeAnswer
		code   apierr.Code // of the error every caller gets; 0 = success
	}{
		{"trap", fakeAnswer{res: &ipc.Calibrated{Runs: 1, Trap: "wasm error: unreachable"}}, apierr.Trap},
		{"benchd lost", fakeAnswer{err: apierr.New(apierr.WorkerLost, "benchd exited during the request")}, apierr.WorkerLost},
		{"success", okAnswer, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl := callOf(t, s, "m.wasm", 7)
			first := make(chan calOutcome, 1)
			go func() {
				cal, err := s.calibrateAs(context.Background(), cl, calTest)
				first <- calOutcome{cal, err}
			}()
			fb.next(t)
			// A /test and a /call's first use of the same call wait for it.
			tested := make(chan error, 1)
			var testedEst time.Duration
			go func() {
				r, err := s.Test(context.Background(), spec)
				if err == nil {
					testedEst = r.Estimate
				}
				tested <- err
			}()
			second := make(chan calOutcome, 1)
			go func() {
				cal, err := s.calibrateAs(context.Background(), callOf(t, s, "m.wasm", 7), calTest)
				second <- calOutcome{cal, err}
			}()
			waitUntil(t, "two requests wait", func() bool { return s.calib.waiting(cl.key) == 2 })
			fb.answer <- tt.answer

			a, b, terr := <-first, <-second, <-tested
			if tt.code == 0 {
				if a.err != nil || b.err != nil || terr != nil {
					t.Fatalf("got errors %v, %v, /test %v; want none", a.err, b.err, terr)
				}
				if b.cal != a.cal || a.cal.P99Ns != okAnswer.res.P99Ns {
					t.Errorf("waiter got %+v, want the first caller's %+v", b.cal, a.cal)
				}
				if testedEst <= 0 {
					t.Errorf("/test estimate: got %v, want the measured one", testedEst)
				}
			} else {
				for i, err := range []error{a.err, b.err, terr} {
					if err == nil || apierr.CodeOf(err) != tt.code {
						t.Errorf("caller %d: got %v (class %v), want class %v", i, err, apierr.CodeOf(err), tt.code)
					}
				}
			}
			select {
			case cl := <-fb.entered:
				t.Errorf("a waiter measured again: %v", cl.params)
			default:
			}
		})
	}
	if fb.n != 3 {
		t.Errorf("measurements: got %d, want one per case", fb.n)
	}
}

// TestCalibrationLeaderGivesUp: when the request measuring goes away, a
// waiting one measures instead, and the abandoned attempt is not recorded.
func TestCalibrationLeaderGivesUp(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	cl := callOf(t, s, "m.wasm", 7)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan calOutcome, 1)
	go func() {
		cal, err := s.calibrateAs(ctx, cl, calTest)
		first <- calOutcome{cal, err}
	}()
	fb.next(t)
	second := make(chan calOutcome, 1)
	go func() {
		cal, err := s.calibrateAs(context.Background(), cl, calTest)
		second <- calOutcome{cal, err}
	}()
	waitUntil(t, "the second request waits", func() bool { return s.calib.waiting(cl.key) == 1 })
	cancel()
	if a := <-first; !errors.Is(a.err, context.Canceled) || a.cal != nil {
		t.Errorf("first: got %+v, want canceled", a)
	}
	fb.next(t) // the waiter measures
	fb.answer <- okAnswer
	if b := <-second; b.err != nil || b.cal == nil || b.cal.P99Ns != okAnswer.res.P99Ns {
		t.Errorf("second: got %+v, want the measurement", b)
	}
	m, _ := s.store.get("m.wasm")
	if len(m.Calibrations) != 1 || s.count.Calibrations != 1 {
		t.Errorf("got %d records, %d counted; want 1 (the abandoned attempt is not one)", len(m.Calibrations), s.count.Calibrations)
	}
}

// TestCalibrateLaterBounded: background calibrations are deduplicated,
// queued at most maxCalibQueue deep (the rest dropped and counted), and
// run one at a time in order, by one goroutine.
func TestCalibrateLaterBounded(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	if !s.calibrateLater(callOf(t, s, "m.wasm", 0)) {
		t.Fatal("first: not queued")
	}
	fb.next(t) // running, blocked
	if !s.calibrateLater(callOf(t, s, "m.wasm", 0)) {
		t.Error("running key: want queued (deduplicated)")
	}
	for i := 1; i <= maxCalibQueue; i++ {
		if !s.calibrateLater(callOf(t, s, "m.wasm", i)) {
			t.Fatalf("call %d: not queued", i)
		}
	}
	if !s.calibrateLater(callOf(t, s, "m.wasm", maxCalibQueue)) {
		t.Error("pending key: want queued (deduplicated)")
	}
	before := runtime.NumGoroutine()
	for i := range 2000 {
		if s.calibrateLater(callOf(t, s, "m.wasm", 1000+i)) {
			t.Fatalf("call %d queued beyond the bound", 1000+i)
		}
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines: %d before 2000 requests, %d after", before, after)
	}
	want := CalibQueueStats{Pending: maxCalibQueue, Running: true, Queued: maxCalibQueue + 1, Deduplicated: 2, Dropped: 2000}
	if got := s.CalibrationQueue(); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
	for i := 1; i <= maxCalibQueue; i++ {
		fb.answer <- okAnswer
		if cl := fb.next(t); cl.params[0] != uint64(i) {
			t.Fatalf("run %d: got f(%d), want the queue's order", i, cl.params[0])
		}
	}
	fb.answer <- okAnswer
	waitUntil(t, "the queue is idle", func() bool {
		st := s.CalibrationQueue()
		return !st.Running && st.Pending == 0 && st.Done == maxCalibQueue+1
	})
	if fb.maxActive != 1 {
		t.Errorf("measurements at once: got %d, want 1", fb.maxActive)
	}
	m, _ := s.store.get("m.wasm")
	if len(m.Calibrations) != maxCalibQueue+1 || m.Calibrations[0].Source != calBackground {
		t.Errorf("records: got %d (%+v), want %d background ones", len(m.Calibrations), m.Calibrations[0], maxCalibQueue+1)
	}
	// Idle, the queue has no goroutine; it starts one again when needed.
	s.calib.mu.Lock()
	serving := s.calib.serving
	s.calib.mu.Unlock()
	if serving {
		t.Error("an idle queue still has its goroutine")
	}
	s.calibrateLater(callOf(t, s, "m.wasm", 5000))
	fb.next(t)
	fb.answer <- okAnswer
	s.calib.stop()
}

// TestCalibrateLaterForegroundFirst: a register, /test or first-use
// calibration goes before the background queue.
func TestCalibrateLaterForegroundFirst(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	done := make(chan calOutcome, 1)
	go func() {
		cal, err := s.calibrateAs(context.Background(), callOf(t, s, "m.wasm", 1), calTest)
		done <- calOutcome{cal, err}
	}()
	fb.next(t)
	s.calibrateLater(callOf(t, s, "m.wasm", 2))
	select {
	case cl := <-fb.entered:
		t.Fatalf("background f(%d) started during a foreground calibration", cl.params[0])
	case <-time.After(50 * time.Millisecond):
	}
	fb.answer <- okAnswer
	<-done
	if cl := fb.next(t); cl.params[0] != 2 {
		t.Fatalf("got f(%d), want the background f(2)", cl.params[0])
	}
	fb.answer <- okAnswer
	s.calib.stop()
}

// TestCalibrateLaterCancel: deleting or replacing a module drops its
// queued calibrations and cancels the running one; shutdown stops the
// queue.
func TestCalibrateLaterCancel(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	putTestModule(t, s, "o.wasm")
	for i := range 3 {
		s.calibrateLater(callOf(t, s, "m.wasm", i))
	}
	s.calibrateLater(callOf(t, s, "o.wasm", 9))
	fb.next(t) // m.wasm f(0) running
	if err := s.DeleteModule("m.wasm"); err != nil {
		t.Fatal(err)
	}
	if cl := fb.next(t); cl.module.Name != "o.wasm" {
		t.Fatalf("after delete: got %s f(%d), want o.wasm's", cl.module.Name, cl.params[0])
	}
	if st := s.CalibrationQueue(); st.Cancelled != 3 || st.Pending != 0 {
		t.Errorf("after delete: got %+v, want 3 cancelled, none pending", st)
	}

	// Replaced: the old bytes' calibrations go, the new ones' stay.
	old := callOf(t, s, "o.wasm", 10)
	s.calibrateLater(old)
	repl := testModule("o.wasm", "other bytes")
	s.store.put(repl)
	fresh := callOf(t, s, "o.wasm", 11)
	s.calibrateLater(fresh)
	s.calib.cancelModule("o.wasm", repl.SHA256) // as registerOne does
	if cl := fb.next(t); cl != fresh {
		t.Fatalf("after replacement: got %s f(%d), want the new bytes' f(11)", cl.module.SHA256[:8], cl.params[0])
	}
	if st := s.CalibrationQueue(); st.Cancelled != 5 || st.Done != 0 {
		// the 3 above, the running f(9) and the queued f(10)
		t.Errorf("after replacement: got %+v, want 5 cancelled", st)
	}

	// Shutdown: the running one is cancelled, the queue dropped, and
	// stop returns once the goroutine is gone.
	s.calibrateLater(callOf(t, s, "o.wasm", 12))
	stopped := make(chan struct{})
	go func() { s.calib.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	if s.calibrateLater(callOf(t, s, "o.wasm", 13)) {
		t.Error("queued after stop")
	}
	if st := s.CalibrationQueue(); st.Pending != 0 || st.Running || st.Cancelled != 7 || st.Dropped != 1 {
		t.Errorf("after stop: got %+v, want 7 cancelled, 1 dropped, nothing left", st)
	}
	m, _ := s.store.get("o.wasm")
	if len(m.Calibrations) != 0 {
		t.Errorf("replaced module: got %d records of the old bytes' calls, want 0", len(m.Calibrations))
	}
}

func TestRegisterExports(t *testing.T) {
	var exports []ExportInfo
	for i := range 40 {
		e := ExportInfo{Name: fmt.Sprintf("e%d", i)}
		if i%2 == 1 {
			e.Params = wasmTypes([]uint8{0x7f})
		}
		exports = append(exports, e)
	}
	names, n := registerExports(exports)
	if n != 20 || len(names) != maxRegisterCalibrations || names[0] != "e0" || names[maxRegisterCalibrations-1] != "e30" {
		t.Errorf("got %v of %d, want the first %d of 20 parameterless exports", names, n, maxRegisterCalibrations)
	}
}

// TestRemeasureLaterOrder: urgent requests (re-measures of refused shapes)
// run before first-use ones in arrival order, take the newest first-use
// request's place in a full queue, and are dropped only when every pending
// request is urgent.
func TestRemeasureLaterOrder(t *testing.T) {
	s := testSupervisor(t)
	fb := newFakeBench(s)
	putTestModule(t, s, "m.wasm")
	s.calibrateLater(callOf(t, s, "m.wasm", 0))
	fb.next(t) // running, blocked
	for i := 1; i <= maxCalibQueue; i++ {
		s.calibrateLater(callOf(t, s, "m.wasm", i))
	}
	if !s.remeasureLater(callOf(t, s, "m.wasm", 100)) || !s.remeasureLater(callOf(t, s, "m.wasm", 101)) {
		t.Fatal("re-measures not queued in a queue full of first-use requests")
	}
	if st := s.CalibrationQueue(); st.Pending != maxCalibQueue || st.Dropped != 2 {
		t.Fatalf("stats: %+v, want a full queue and the two newest first-use requests dropped", st)
	}
	want := []uint64{100, 101}
	for i := 1; i <= maxCalibQueue-2; i++ {
		want = append(want, uint64(i))
	}
	for _, w := range want {
		fb.answer <- okAnswer
		if cl := fb.next(t); cl.params[0] != w {
			t.Fatalf("got f(%d), want f(%d): urgent first, then first-use in order", cl.params[0], w)
		}
	}
	// Now the running one is the last; fill the queue with urgent requests.
	for i := range maxCalibQueue {
		if !s.remeasureLater(callOf(t, s, "m.wasm", 200+i)) {
			t.Fatalf("urgent %d: not queued", i)
		}
	}
	if s.remeasureLater(callOf(t, s, "m.wasm", 300)) {
		t.Error("an urgent request was queued into a queue full of urgent ones")
	}
	fb.answer <- okAnswer
	for range maxCalibQueue {
		fb.next(t)
		fb.answer <- okAnswer
	}
	// Stored, and no goroutine left writing to the state dir.
	waitUntil(t, "the queue is idle", func() bool {
		st := s.CalibrationQueue()
		return !st.Running && st.Pending == 0
	})
	s.calib.stop()
}
