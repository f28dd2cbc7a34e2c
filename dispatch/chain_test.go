package dispatch

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/sched"
)

// chainOf returns the stages of a chain with IDs from id, due rel from now,
// with estimates est; every stage after the first records what it was fed
// in fed (by stage ID) and refuses a result "fail".
func (h *harness) chainOf(id uint64, rel time.Duration, fed map[uint64]any, est ...time.Duration) []*Task {
	ts := make([]*Task, len(est))
	for i, e := range est {
		t := NewTask(id + uint64(i))
		t.Estimate = e
		t.Done = make(chan Outcome, 2)
		if i > 0 {
			t.Feed = func(prev any) bool {
				fed[t.ID] = prev
				t.Payload = prev
				return prev != "fail"
			}
		}
		ts[i] = t
	}
	ts[len(ts)-1].Deadline = h.clk.Now().Add(rel)
	return ts
}

// noneLeft checks that the dispatcher and its scheduler hold nothing.
func (h *harness) noneLeft() {
	h.t.Helper()
	st, cores, _ := h.d.Stats()
	for c, ci := range cores {
		if ci.Queued != 0 || ci.Running || ci.Stopped != 0 {
			h.t.Fatalf("core %d left with %+v", c, ci.CoreStats)
		}
	}
	_ = st
	h.d.mu.Lock()
	n := len(h.d.tasks)
	h.d.mu.Unlock()
	if n != 0 {
		h.t.Fatalf("%d tasks left unanswered", n)
	}
}

func TestChainRunsInOrder(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	fed := map[uint64]any{}
	ts := h.chainOf(1, 40*ms, fed, 5*ms, 10*ms, 5*ms)
	core, err := h.d.AdmitChain(ts)
	if err != nil || core != 0 {
		t.Fatalf("AdmitChain: got %d, %v", core, err)
	}
	// Latest-possible deadlines: 40-5-10, 40-5, 40.
	for i, want := range []time.Duration{25 * ms, 35 * ms, 40 * ms} {
		wantEq(t, fmt.Sprintf("stage %d deadline", i+1), ts[i].Deadline, t0.Add(want))
	}
	h.expectLog("c0/l0 start 1")
	h.clk.Advance(4 * ms)
	h.result(1, "out1")
	h.expectLog("c0/l0 result 1", "c0/l0 start 2")
	wantEq(t, "fed to stage 2", fed[2], any("out1"))
	h.clk.Advance(9 * ms)
	h.result(2, "out2")
	h.expectLog("c0/l0 result 2", "c0/l0 start 3")
	wantEq(t, "fed to stage 3", fed[3], any("out2"))
	h.clk.Advance(5 * ms)
	h.result(3, "out3")
	for i, want := range []any{"out1", "out2", "out3"} {
		o := h.outcome(ts[i])
		wantEq(t, fmt.Sprintf("stage %d kind", i+1), o.Kind, Finished)
		wantEq(t, fmt.Sprintf("stage %d result", i+1), o.Result, want)
	}
	_, _, n := h.d.Stats()
	wantEq(t, "chains", n.Chains, 1)
	wantEq(t, "admitted", n.Admitted, 3)
	h.noneLeft()
}

// A chain that does not fit is refused whole: nothing of it is queued,
// started or answered, and a single task that fits is still admitted.
func TestChainRefusedWhole(t *testing.T) {
	h := newHarness(t, 2, cfg(1), ms)
	for i := range 2 {
		h.admit(h.task(uint64(100+i), 20*ms, 15*ms))
	}
	h.expectLog("c0/l0 start 100", "c1/l0 start 101")
	fed := map[uint64]any{}
	ts := h.chainOf(1, 25*ms, fed, 4*ms, 8*ms)
	_, err := h.d.AdmitChain(ts)
	var u *sched.Unschedulable
	if !errors.As(err, &u) {
		t.Fatalf("AdmitChain: got %v, want Unschedulable", err)
	}
	h.none(ts...)
	h.expectLog()
	st, cores, n := h.d.Stats()
	wantEq(t, "queued", cores[0].Queued+cores[1].Queued, 0)
	wantEq(t, "chains", n.Chains, 0)
	wantEq(t, "admitted", n.Admitted, 2)
	wantEq(t, "rejected", st.Rejected, 1)
	wantEq(t, "stage 1 deadline untouched", ts[0].Deadline.IsZero(), true)
	// The stages are free to be admitted again, e.g. as a shorter chain.
	ts[0].Deadline = h.clk.Now().Add(25 * ms)
	if _, err := h.d.AdmitChain(ts[:1]); err != nil {
		t.Fatalf("AdmitChain of the first stage alone: %v", err)
	}
}

func TestChainInvalid(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	fed := map[uint64]any{}
	ts := h.chainOf(1, 10*ms, fed, 6*ms, 6*ms)
	if _, err := h.d.AdmitChain(ts); !errors.Is(err, sched.ErrInvalidDeadline) {
		t.Errorf("too little time: got %v, want ErrInvalidDeadline", err)
	}
	be := h.chainOf(10, 10*ms, fed, ms)
	be[0].Deadline = time.Time{}
	if _, err := h.d.AdmitChain(be); !errors.Is(err, sched.ErrInvalidChain) {
		t.Errorf("no deadline: got %v, want ErrInvalidChain", err)
	}
	if _, err := h.d.AdmitChain(nil); !errors.Is(err, sched.ErrInvalidChain) {
		t.Errorf("no stages: got %v, want ErrInvalidChain", err)
	}
	h.noneLeft()
}

// failChain sets up a 3-stage chain on one lane whose stage 1 finished
// and stage 2 runs.
func failChain(t *testing.T, lanes int) (*harness, []*Task, map[uint64]any) {
	h := newHarness(t, 1, cfg(lanes), ms)
	fed := map[uint64]any{}
	ts := h.chainOf(1, 40*ms, fed, 5*ms, 10*ms, 5*ms)
	if _, err := h.d.AdmitChain(ts); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(5 * ms)
	h.result(1, "out1")
	h.expectLog("c0/l0 start 1", "c0/l0 result 1", "c0/l0 start 2")
	return h, ts, fed
}

// wantChainEnded checks that stage 3 was answered Cancelled, naming stage
// 2 and what happened to it, and that nothing is left.
func wantChainEnded(t *testing.T, h *harness, ts []*Task, what string) {
	t.Helper()
	o := h.outcome(ts[2])
	wantEq(t, "stage 3 kind", o.Kind, Cancelled)
	if !strings.Contains(o.Why, "stage 2 of its chain "+what) {
		t.Errorf("stage 3 why: got %q, want it to say stage 2 %s", o.Why, what)
	}
	wantEq(t, "stage 3 started", o.Started.IsZero(), true)
	h.noneLeft()
}

func TestChainStageFails(t *testing.T) {
	t.Run("trap", func(t *testing.T) {
		h, ts, fed := failChain(t, 1)
		h.clk.Advance(ms)
		h.result(2, "fail")
		h.expectLog("c0/l0 result 2") // stage 3 never starts
		wantEq(t, "stage 1", h.outcome(ts[0]).Kind, Finished)
		wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Finished)
		wantEq(t, "fed", fed[3], any("fail"))
		wantChainEnded(t, h, ts, "failed")
	})
	t.Run("killed at its derived deadline", func(t *testing.T) {
		h, ts, _ := failChain(t, 1)
		// Stage 2 is due at 35 ms; its kill comes a grace of 1 ms later.
		h.clk.AdvanceTo(36*ms + time.Microsecond)
		h.expectLog("c0/l0 kill")
		wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Killed)
		h.up(0, 0)
		h.expectLog()
		h.outcome(ts[0])
		wantChainEnded(t, h, ts, "was killed")
	})
	t.Run("lane lost", func(t *testing.T) {
		h, ts, _ := failChain(t, 2)
		h.down(0, 0, "crashed")
		wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Lost)
		h.expectLog()
		h.outcome(ts[0])
		wantChainEnded(t, h, ts, "was lost: crashed")
	})
	t.Run("client cancels", func(t *testing.T) {
		h, ts, fed := failChain(t, 1)
		for _, s := range ts {
			h.d.Cancel(s.ID) // a started stage runs on to its outcome
		}
		h.clk.Advance(ms)
		h.result(2, "out2")
		h.expectLog("c0/l0 result 2")
		wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Finished)
		if _, ok := fed[3]; ok {
			t.Error("a cancelled stage was fed")
		}
		o := h.outcome(ts[2])
		wantEq(t, "stage 3", o.Kind, Cancelled)
		h.outcome(ts[0])
		h.noneLeft()
	})
	t.Run("abort", func(t *testing.T) {
		h, ts, _ := failChain(t, 1)
		h.d.Abort("shutdown")
		wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Aborted)
		wantEq(t, "stage 3", h.outcome(ts[2]).Kind, Aborted)
	})
}

// A core going down re-admits a chain whose stages had not started on
// another core, together; a chain whose stage was running there ends with
// it.
func TestChainCoreDown(t *testing.T) {
	h := newHarness(t, 2, cfg(1), ms)
	fed := map[uint64]any{}
	long := h.task(100, 200*ms, 100*ms)
	wantEq(t, "core of the long task", h.admit(long), 0)
	a := h.chainOf(1, 60*ms, fed, 5*ms, 5*ms)
	b := h.chainOf(11, 90*ms, fed, 5*ms, 5*ms)
	for _, ch := range [][]*Task{a, b} {
		if c, err := h.d.AdmitChain(ch); err != nil || c != 1 {
			t.Fatalf("AdmitChain: got %d, %v, want core 1", c, err)
		}
	}
	h.expectLog("c0/l0 start 100", "c1/l0 start 1")
	h.result(100, "r")
	h.expectLog("c0/l0 result 100")
	h.outcome(long)
	h.d.CoreDown(1, "worker-1 stopped")
	wantEq(t, "a stage 1", h.outcome(a[0]).Kind, Lost)
	wantEq(t, "a stage 2", h.outcome(a[1]).Kind, Cancelled)
	h.expectLog("c0/l0 start 11")
	steps := h.whats(b[1])
	if !strings.HasPrefix(steps[len(steps)-1], "re-admitted@") {
		t.Errorf("b stage 2 timeline: got %q, want it re-admitted last", steps)
	}
	h.result(11, "x")
	h.expectLog("c0/l0 result 11", "c0/l0 start 12")
	wantEq(t, "fed", fed[12], any("x"))
	h.result(12, "y")
	h.outcome(b[0])
	wantEq(t, "b stage 2", h.outcome(b[1]).Kind, Finished)
	h.noneLeft()
}

// A stage whose deadline passes while the stage before it overruns
// expires in the queue; the one before is killed at its own deadline
// later; each gets one outcome, and nothing is fed or left.
func TestChainStageExpiresBehindOverrun(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	fed := map[uint64]any{}
	ts := h.chainOf(1, 40*ms, fed, 5*ms, ms/2)
	if _, err := h.d.AdmitChain(ts); err != nil {
		t.Fatal(err)
	}
	wantEq(t, "stage 1 deadline", ts[0].Deadline, t0.Add(40*ms-ms/2))
	h.expectLog("c0/l0 start 1")
	h.clk.AdvanceTo(40*ms + time.Microsecond) // stage 2 due at 40 ms, stage 1's kill at 40.5
	wantEq(t, "stage 2", h.outcome(ts[1]).Kind, Expired)
	h.none(ts[0])
	h.clk.AdvanceTo(41 * ms)
	h.expectLog("c0/l0 kill")
	wantEq(t, "stage 1", h.outcome(ts[0]).Kind, Killed)
	if len(fed) != 0 {
		t.Errorf("fed: %v", fed)
	}
	h.up(0, 0)
	h.noneLeft()
}
