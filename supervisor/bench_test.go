package supervisor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// fakeBenchd connects s to a fake benchd over a socketpair, as spawn would:
// s's end is served by the real outbox and serveChild, and the returned
// conn is benchd's end, which the test reads requests from and writes
// answers to.
func fakeBenchd(t *testing.T, s *Supervisor) *ipc.Conn {
	t.Helper()
	sup0, peer := socketPair(t)
	conns := []net.Conn{sup0, peer}
	s.bench.s = s // as New does
	sup := ipc.NewConn(conns[0], 0)
	out := newOutbox(sup, func() { conns[0].Close() })
	go out.run()
	s.mu.Lock()
	c := s.benchd
	c.state, c.out, c.nc, c.gen = Running, out, conns[0], 1
	s.mu.Unlock()
	served := make(chan struct{})
	go func() {
		s.serveChild(c, nil, sup)
		close(served)
	}()
	t.Cleanup(func() {
		out.close()
		conns[0].Close()
		conns[1].Close()
		<-served
	})
	conns[1].SetDeadline(time.Now().Add(30 * time.Second))
	return ipc.NewConn(conns[1], 0)
}

// readCalibrate reads the next request at the fake benchd.
func readCalibrate(t *testing.T, c *ipc.Conn) ipc.Calibrate {
	t.Helper()
	k, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	var req ipc.Calibrate
	if k != ipc.KindCalibrate {
		t.Fatalf("fake benchd got a %v frame, want calibrate", k)
	}
	if err := c.Decode(&req); err != nil {
		t.Fatal(err)
	}
	return req
}

// TestBenchLateAnswerDropped is issue 12 item 8: a calibration that gave up
// (over its limit) is answered late, while the next request waits. The
// late answer, 111 ms for another call, must not become the next request's
// answer (its own is 222 ns); nor may its progress or a load answer nobody
// asked for.
func TestBenchLateAnswerDropped(t *testing.T) {
	s := testSupervisor(t)
	benchd := fakeBenchd(t, s)
	ctx := context.Background()

	// A: benchd is slow; A gives up after its limit (benchd would be killed,
	// but the answer is already on its way).
	errA := make(chan error, 1)
	go func() {
		_, err := s.bench.do(ctx, ipc.KindCalibrate, &ipc.Calibrate{Module: "m", Export: "slow"}, 50*time.Millisecond, nil)
		errA <- err
	}()
	a := readCalibrate(t, benchd)
	if err := <-errA; apierr.CodeOf(err) != apierr.DeadlineExceeded {
		t.Fatalf("A: got %v, want DeadlineExceeded", err)
	}

	// B is sent; before B's answer come A's progress and late answer, and
	// a Loaded with id 0.
	type answer struct {
		v   any
		err error
	}
	resB := make(chan answer, 1)
	var progressB []uint64
	go func() {
		v, err := s.bench.do(ctx, ipc.KindCalibrate, &ipc.Calibrate{Module: "m", Export: "fast"}, 10*time.Second,
			func(p *ipc.Progress) { progressB = append(progressB, p.ID) })
		resB <- answer{v, err}
	}()
	b := readCalibrate(t, benchd)
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("request ids: A %d, B %d; want distinct and non-zero", a.ID, b.ID)
	}
	if b.Export != "fast" {
		t.Fatalf("fake benchd got export %q second, want fast", b.Export)
	}
	for _, f := range []struct {
		k ipc.Kind
		v any
	}{
		{ipc.KindProgress, &ipc.Progress{ID: a.ID, Runs: 5}},
		{ipc.KindCalibrated, &ipc.Calibrated{ID: a.ID, Export: "slow", Runs: 20, MedianNs: int64(111 * time.Millisecond)}},
		{ipc.KindLoaded, &ipc.Loaded{Name: "m", Err: "not for anyone"}},
		{ipc.KindProgress, &ipc.Progress{ID: b.ID, Runs: 7}},
		{ipc.KindCalibrated, &ipc.Calibrated{ID: b.ID, Export: "fast", Runs: 20, MedianNs: 222}},
	} {
		if err := benchd.Write(f.k, f.v); err != nil {
			t.Fatal(err)
		}
	}
	var got answer
	select {
	case got = <-resB:
	case <-time.After(10 * time.Second):
		t.Fatal("B got no answer")
	}
	c, ok := got.v.(*ipc.Calibrated)
	if got.err != nil || !ok {
		t.Fatalf("B: got %#v, %v; want its Calibrated", got.v, got.err)
	}
	if c.ID != b.ID || c.Export != "fast" || c.MedianNs != 222 {
		t.Errorf("B was answered with id %d, export %q, median %v; want its own: id %d, fast, 222ns",
			c.ID, c.Export, time.Duration(c.MedianNs), b.ID)
	}
	if len(progressB) != 1 || progressB[0] != b.ID {
		t.Errorf("B saw progress of ids %v, want only its own %d", progressB, b.ID)
	}
}

// TestBenchLostBeforeSend: a request picked a benchd generation that exits
// before the request is waiting; it fails at once instead of waiting out its
// limit for an answer nobody will send.
func TestBenchLostBeforeSend(t *testing.T) {
	s := testSupervisor(t)
	fakeBenchd(t, s)
	s.mu.Lock()
	s.bench.lost("exit status 1") // the exit, before exited clears c.out
	s.mu.Unlock()
	start := time.Now()
	_, err := s.bench.do(context.Background(), ipc.KindCalibrate, &ipc.Calibrate{Module: "m"}, time.Minute, nil)
	if apierr.CodeOf(err) != apierr.WorkerLost {
		t.Fatalf("got %v, want WorkerLost", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failed after %v, want at once", d)
	}
}
