package dispatch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/sched"
)

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func wantSteps(t *testing.T, h *harness, task *Task, want ...string) {
	t.Helper()
	if got := h.whats(task); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("timeline of %d:\n got %q\nwant %q", task.ID, got, want)
	}
}

// A long job runs; an urgent one with an earlier deadline wakes an idle
// lane first, then the long one's lane is stopped, and resumed when the
// urgent one's result arrives.
func TestPreemptWakeThenStop(t *testing.T) {
	for _, cost := range []int64{-1, int64(100 * time.Microsecond)} {
		t.Run(fmt.Sprintf("cost=%d", cost), func(t *testing.T) {
			sc := cfg(3)
			sc.PreemptCost = cost
			h := newHarness(t, 1, sc, ms)
			long := h.task(1, 100*ms, 50*ms)
			wantEq(t, "core", h.admit(long), 0)
			h.expectLog("c0/l0 start 1")

			h.clk.Advance(10 * ms)
			urgent := h.task(2, 5*ms, time.Millisecond)
			wantEq(t, "core", h.admit(urgent), 0)
			h.expectLog("c0/l1 start 2", "c0/l0 stop") // wake first, then stop
			wantEq(t, "lanes", h.lanesInfo(0), "stopped:1 running:2 idle")
			st, _, n := h.d.Stats()
			wantEq(t, "preemptions", n.Preemptions, 1)
			wantEq(t, "sched preemptions", st.Cores[0].Preemptions, 1)

			h.clk.Advance(ms)
			wantEq(t, "result", h.result(2, "r2"), true)
			h.expectLog("c0/l1 result 2", "c0/l0 resume")
			o := h.outcome(urgent)
			wantEq(t, "kind", o.Kind, Finished)
			wantEq(t, "result", o.Result, any("r2"))
			wantEq(t, "core", o.Core, 0)
			wantEq(t, "lane", o.Lane, 1)
			wantEq(t, "started", o.Started, t0.Add(10*ms))
			wantEq(t, "finished", o.Finished, t0.Add(11*ms))
			wantEq(t, "ran", o.Ran, ms)
			wantEq(t, "preempted", o.Preempted, true)
			wantEq(t, "stops", o.Stops, 0)
			h.none(long)
			wantEq(t, "lanes", h.lanesInfo(0), "running:1 idle idle")

			h.clk.Advance(40 * ms)
			wantEq(t, "result", h.result(1, "r1"), true)
			h.expectLog("c0/l0 result 1")
			o = h.outcome(long)
			wantEq(t, "kind", o.Kind, Finished)
			wantEq(t, "result", o.Result, any("r1"))
			wantEq(t, "core", o.Core, 0)
			wantEq(t, "lane", o.Lane, 0)
			wantEq(t, "started", o.Started, t0)
			wantEq(t, "finished", o.Finished, t0.Add(51*ms))
			wantEq(t, "ran", o.Ran, 50*ms) // 10 ms, stopped 1 ms, 40 ms
			wantEq(t, "preempted", o.Preempted, false)
			wantEq(t, "stops", o.Stops, 1)

			wantSteps(t, h, long, "admitted@0s", "started@0s", "stopped@10ms", "resumed@11ms", "finished@51ms")
			wantSteps(t, h, urgent, "admitted@10ms", "started@10ms", "finished@11ms")
			_, _, n = h.d.Stats()
			wantEq(t, "counters", n, Counters{Admitted: 2, Preemptions: 1, Resumes: 1})

			// No timer is left to kill anything.
			h.clk.Advance(time.Second)
			h.expectLog()
			wantEq(t, "pending timers", h.clk.Pending(), 0)
		})
	}
}

// The preemption cost is charged to the preempting job: a job that could
// preempt for free is refused when the cost makes it late.
func TestPreemptCostCharged(t *testing.T) {
	for _, c := range []struct {
		cost int64
		ok   bool
	}{{-1, true}, {int64(100 * time.Microsecond), false}} {
		sc := cfg(3)
		sc.PreemptCost = c.cost
		h := newHarness(t, 1, sc, ms)
		h.admit(h.task(1, 100*ms, 50*ms))
		h.clk.Advance(ms)
		_, err := h.d.Admit(h.task(2, ms+50*time.Microsecond, ms))
		var u *sched.Unschedulable
		wantEq(t, fmt.Sprintf("cost %d: admitted (err %v)", c.cost, err), err == nil, c.ok)
		if !c.ok && !errors.As(err, &u) {
			t.Fatalf("cost %d: err %v, want *sched.Unschedulable", c.cost, err)
		}
	}
}

// With one lane nothing is preempted: an urgent call that cannot wait is
// refused, one that can waits for the running job.
func TestOneLaneNoPreemption(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.expectLog("c0/l0 start 1")
	h.clk.Advance(10 * ms)

	urgent := h.task(2, 5*ms, ms)
	_, err := h.d.Admit(urgent)
	var u *sched.Unschedulable
	if !errors.As(err, &u) {
		t.Fatalf("urgent call: err %v, want *sched.Unschedulable", err)
	}
	h.none(urgent)

	waits := h.task(3, 50*ms, ms) // due at 60 ms, long ends at 50 ms
	h.admit(waits)
	h.expectLog()
	wantEq(t, "lanes", h.lanesInfo(0), "running:1")

	h.clk.AdvanceTo(50 * ms)
	h.result(1, nil)
	h.expectLog("c0/l0 result 1", "c0/l0 start 3")
	wantEq(t, "long", h.outcome(long).Kind, Finished)
	h.clk.Advance(ms)
	h.result(3, nil)
	o := h.outcome(waits)
	wantEq(t, "waits", o.Kind, Finished)
	wantEq(t, "started", o.Started, t0.Add(50*ms))
	_, _, n := h.d.Stats()
	wantEq(t, "preemptions", n.Preemptions, 0)
}

// A job still running past Deadline+LateCap+Grace is killed: one lane,
// not the core, whose queued job starts on another lane at once.
func TestFirmDeadlineKill(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	a := h.task(1, 20*ms, 5*ms) // runs forever
	h.admit(a)
	h.expectLog("c0/l0 start 1")
	h.clk.Advance(ms)
	b := h.task(2, 99*ms, 10*ms) // later deadline: waits, no preemption
	h.admit(b)
	h.expectLog()

	h.clk.AdvanceTo(21*ms - 1) // kill at 20 ms + 1 ms grace
	h.expectLog()
	h.none(a, b)
	h.clk.Advance(1)
	h.expectLog("c0/l0 kill", "c0/l1 start 2")
	o := h.outcome(a)
	wantEq(t, "kind", o.Kind, Killed)
	wantEq(t, "core", o.Core, 0)
	wantEq(t, "lane", o.Lane, 0)
	wantEq(t, "finished", o.Finished, t0.Add(21*ms))
	wantEq(t, "ran", o.Ran, 21*ms)
	if !strings.Contains(o.Why, "running") {
		t.Errorf("why %q", o.Why)
	}
	wantSteps(t, h, b, "admitted@1ms", "started@21ms")
	wantSteps(t, h, a, "admitted@0s", "started@0s", "killed@21ms")
	wantEq(t, "lanes", h.lanesInfo(0), "killed running:2 idle")
	st, _, n := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 2)
	wantEq(t, "kills", n.Kills, 1)

	// A result from the killed lane, then its LaneDown: nothing changes.
	old := h.lanes[0][0]
	wantEq(t, "result of the killed job", h.d.Result(0, 0, old, 1, nil), false)
	h.down(0, 0, "killed")
	h.expectLog()
	h.none(a, b)
	st, _, n = h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 2)
	wantEq(t, "lanes lost", n.LanesLost, 0)
	wantEq(t, "lanes", h.lanesInfo(0), "down running:2 idle")

	h.up(0, 0)
	st, _, _ = h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 3)
	wantEq(t, "lanes", h.lanesInfo(0), "idle running:2 idle")
	h.d.LaneDown(0, 0, old, "stale") // an old generation: ignored
	wantEq(t, "lanes", h.lanesInfo(0), "idle running:2 idle")

	h.clk.Advance(5 * ms)
	h.result(2, "b")
	o = h.outcome(b)
	wantEq(t, "kind", o.Kind, Finished)
	wantEq(t, "lane", o.Lane, 1)
	wantEq(t, "started", o.Started, t0.Add(21*ms))
	h.expectLog("c0/l1 result 2")
}

// LateCap moves the kill.
func TestLateCap(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	a := h.task(1, 20*ms, 5*ms)
	a.LateCap = 30 * ms
	h.admit(a)
	h.clk.AdvanceTo(51*ms - 1)
	h.none(a)
	h.clk.Advance(1)
	h.expectLog("c0/l0 start 1", "c0/l0 kill")
	wantEq(t, "kind", h.outcome(a).Kind, Killed)
}

// With one lane, a kill leaves the core without a lane: its queued job
// waits for the replacement, or expires meanwhile.
func TestKillOneLane(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	a := h.task(1, 20*ms, 5*ms)
	h.admit(a)
	b := h.task(2, 100*ms, 10*ms)
	c := h.task(3, 40*ms, 10*ms)
	h.admit(b)
	h.admit(c)
	h.clk.AdvanceTo(21 * ms)
	h.expectLog("c0/l0 start 1", "c0/l0 kill")
	wantEq(t, "a", h.outcome(a).Kind, Killed)
	h.none(b, c)
	h.down(0, 0, "killed")
	h.clk.AdvanceTo(45 * ms) // c's deadline passed while it waited
	h.up(0, 0)
	h.expectLog("c0/l0 start 2")
	o := h.outcome(c)
	wantEq(t, "c", o.Kind, Expired)
	wantEq(t, "c core", o.Core, -1)
	wantEq(t, "c started", o.Started, time.Time{})
	_, _, n := h.d.Stats()
	wantEq(t, "expired", n.Expired, 1)
	h.result(2, nil)
	wantEq(t, "b", h.outcome(b).Kind, Finished)
}

// A stopped lane whose job reaches its firm deadline is killed too; the
// job that preempted it goes on, and nothing resumes the dead lane.
func TestStoppedLaneKilledAtDeadline(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 80*ms, 5*ms) // due at 90 ms, may run until 150 ms
	urgent.LateCap = 60 * ms
	h.admit(urgent)
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")

	h.clk.AdvanceTo(101 * ms)
	h.expectLog("c0/l0 kill")
	o := h.outcome(long)
	wantEq(t, "kind", o.Kind, Killed)
	wantEq(t, "ran", o.Ran, 10*ms)
	if !strings.Contains(o.Why, "stopped") {
		t.Errorf("why %q", o.Why)
	}
	wantSteps(t, h, long, "admitted@0s", "started@0s", "stopped@10ms", "killed@101ms")
	h.none(urgent)
	wantEq(t, "lanes", h.lanesInfo(0), "killed running:2 idle")

	h.clk.AdvanceTo(120 * ms)
	h.result(2, nil)
	o = h.outcome(urgent)
	wantEq(t, "kind", o.Kind, Finished)
	wantEq(t, "ran", o.Ran, 110*ms)
	h.expectLog("c0/l1 result 2") // no resume
	wantEq(t, "lanes", h.lanesInfo(0), "killed idle idle")
}

// A job whose result is on its way at its deadline is not killed; the
// result then arrives and is Finished.
func TestFinishingAtDeadline(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	a := h.task(1, 20*ms, 5*ms)
	h.admit(a)
	l := h.lanes[0][0]
	l.setFinishing(1)
	h.clk.AdvanceTo(30 * ms)
	h.expectLog("c0/l0 start 1")
	h.none(a)
	wantEq(t, "Finishing asked", l.asked, 1)
	h.result(1, "late but done")
	o := h.outcome(a)
	wantEq(t, "kind", o.Kind, Finished)
	wantEq(t, "result", o.Result, any("late but done"))
	wantEq(t, "ran", o.Ran, 30*ms)
	_, _, n := h.d.Stats()
	wantEq(t, "kills", n.Kills, 0)
}

// A job that ended just as its lane was stopped: its result, read after
// the stop, is its answer, and its lane is idle again (resumed, so that it
// can take the next job). Before the fix the result was dropped, the lane
// later resumed with nothing to do, and at the deadline Finishing (the
// result had been read) said not to kill: the task hung for good.
func TestResultOfStoppedLane(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	l0 := h.lanes[0][0]
	l0.end() // its result is in the socket
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent) // preempts it before the result is read
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")
	wantEq(t, "result read after the stop", h.deliver(0, 0, l0, 1, "r1"), true)
	h.expectLog("c0/l0 result 1", "c0/l0 resume")
	o := h.outcome(long)
	wantEq(t, "kind", o.Kind, Finished)
	wantEq(t, "ran", o.Ran, 10*ms)
	wantEq(t, "lanes", h.lanesInfo(0), "idle running:2")
	st, _, _ := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 2)
	wantEq(t, "stopped", st.Cores[0].Stopped, 0)

	// The lane takes new work: a third job preempts the urgent one there.
	h.clk.Advance(ms)
	third := h.task(3, 5*ms, ms)
	h.admit(third)
	h.expectLog("c0/l0 start 3", "c0/l1 stop")
	h.clk.Advance(ms)
	h.result(3, nil)
	h.expectLog("c0/l0 result 3", "c0/l1 resume")
	h.result(2, nil)
	wantEq(t, "third", h.outcome(third).Kind, Finished)
	wantEq(t, "urgent", h.outcome(urgent).Kind, Finished)
	h.clk.Advance(time.Second)
	h.expectLog("c0/l1 result 2")
}

// A stopped lane whose result waits in its socket at its deadline is not
// killed either: the result is its answer.
func TestStoppedFinishingAtDeadline(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 30*ms, 20*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	l0 := h.lanes[0][0]
	l0.end()
	urgent := h.task(2, 15*ms, 5*ms) // due at 25 ms, may run until 100 ms
	urgent.LateCap = 75 * ms
	h.admit(urgent)
	h.clk.AdvanceTo(40 * ms) // long's kill time (31 ms) passed
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")
	h.none(long)
	wantEq(t, "result", h.deliver(0, 0, l0, 1, nil), true)
	wantEq(t, "long", h.outcome(long).Kind, Finished)
	h.result(2, nil)
	wantEq(t, "urgent", h.outcome(urgent).Kind, Finished)
}

// Best effort runs only when no deadline job runs, and a deadline job
// preempts it at once.
func TestBestEffortPreempted(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	d1 := h.task(1, 10*ms, 2*ms)
	h.admit(d1)
	x := h.be(2)
	wantEq(t, "core", h.admit(x), -1)
	h.expectLog("c0/l0 start 1") // x waits for the deadline job
	wantSteps(t, h, x, "queued@0s")
	h.clk.Advance(2 * ms)
	h.result(1, nil)
	h.expectLog("c0/l0 result 1", "c0/l0 start 2")

	h.clk.Advance(5 * ms)
	d2 := h.task(3, 10*ms, 2*ms)
	h.admit(d2)
	h.expectLog("c0/l1 start 3", "c0/l0 stop") // wake first, then stop
	h.clk.Advance(2 * ms)
	h.result(3, nil)
	h.expectLog("c0/l1 result 3", "c0/l0 resume")
	h.clk.Advance(3 * ms)
	h.result(2, "x")
	o := h.outcome(x)
	wantEq(t, "kind", o.Kind, Finished)
	wantEq(t, "started", o.Started, t0.Add(2*ms))
	wantEq(t, "ran", o.Ran, 8*ms)
	wantSteps(t, h, x, "queued@0s", "started@2ms", "stopped@7ms", "resumed@9ms", "finished@12ms")
	wantEq(t, "x stops", o.Stops, 1)
	wantEq(t, "d2 preempted", h.outcome(d2).Preempted, true)
	wantEq(t, "d1 preempted", h.outcome(d1).Preempted, false)
	_, _, n := h.d.Stats()
	wantEq(t, "counters", n, Counters{Admitted: 3, Preemptions: 1, Resumes: 1})
}

// Several best-effort jobs share the core round-robin, a quantum each, at
// most Lanes-1 of them started.
func TestBestEffortRoundRobin(t *testing.T) {
	sc := cfg(3)
	sc.Quantum = int64(10 * ms)
	h := newHarness(t, 1, sc, ms)
	xs := []*Task{h.be(1), h.be(2), h.be(3)}
	for _, x := range xs {
		h.admit(x)
	}
	h.expectLog("c0/l0 start 1")
	h.clk.AdvanceTo(10*ms - 1)
	h.expectLog()
	h.clk.Advance(1)
	h.expectLog("c0/l1 start 2", "c0/l0 stop")
	h.clk.AdvanceTo(20 * ms)
	h.expectLog("c0/l0 resume", "c0/l1 stop")
	h.clk.AdvanceTo(30 * ms)
	h.expectLog("c0/l1 resume", "c0/l0 stop") // 3 never starts: one lane stays free
	wantEq(t, "lanes", h.lanesInfo(0), "stopped:1 running:2 idle")
	_, _, n := h.d.Stats()
	wantEq(t, "rotations", n.Rotations, 3)

	// A deadline job takes the free lane at once.
	h.clk.AdvanceTo(32 * ms)
	d := h.task(4, 10*ms, 2*ms)
	h.admit(d)
	h.expectLog("c0/l2 start 4", "c0/l1 stop")
	h.clk.AdvanceTo(40 * ms) // the quantum's end: no rotation under deadline work
	h.expectLog()
	h.clk.AdvanceTo(41 * ms)
	h.result(4, nil)
	h.expectLog("c0/l2 result 4", "c0/l0 resume") // the least recently run
	h.clk.AdvanceTo(45 * ms)
	h.result(1, nil) // 1 ends: 3 gets its lane
	h.expectLog("c0/l0 result 1", "c0/l0 start 3")
	h.clk.AdvanceTo(55 * ms)
	h.expectLog("c0/l1 resume", "c0/l0 stop")
	h.result(2, nil)
	h.expectLog("c0/l1 result 2", "c0/l0 resume")
	h.clk.AdvanceTo(time.Second / 2) // alone: no more rotations
	h.expectLog()
	h.result(3, nil)
	for _, x := range xs {
		o := h.outcome(x)
		wantEq(t, "kind", o.Kind, Finished)
		wantEq(t, "preempted", o.Preempted, false) // a rotation is no preemption
	}
	wantEq(t, "d", h.outcome(d).Kind, Finished)
}

// The best-effort cap counts run time only: a stopped job is not killed
// while stopped, and is killed when its run time reaches the cap.
func TestBestEffortCapRunTime(t *testing.T) {
	sc := cfg(3)
	sc.Quantum = int64(10 * ms)
	sc.BestEffortCap = int64(25 * ms)
	h := newHarness(t, 1, sc, ms)
	x1, x2 := h.be(1), h.be(2)
	h.admit(x1)
	h.admit(x2)
	h.clk.AdvanceTo(40*ms - 1)
	// 1 ran 0-10 and 20-30 (20 ms), stopped since 30 ms; 2 ran 10-20 and
	// from 30 ms.
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop", "c0/l0 resume", "c0/l1 stop", "c0/l1 resume", "c0/l0 stop")
	h.none(x1, x2)
	h.clk.AdvanceTo(46*ms - 1)
	h.expectLog("c0/l0 resume", "c0/l1 stop")
	h.clk.Advance(1) // 1 reaches 25 ms of run time (+1 ms grace) at 46 ms
	h.expectLog("c0/l0 kill", "c0/l1 resume")
	o := h.outcome(x1)
	wantEq(t, "kind", o.Kind, Killed)
	wantEq(t, "ran", o.Ran, 26*ms)
	if !strings.Contains(o.Why, "cap") {
		t.Errorf("why %q", o.Why)
	}
	h.none(x2)
	h.clk.AdvanceTo(52 * ms) // 2: 20 ms by 40 ms, 6 more from 46 ms
	h.expectLog("c0/l1 kill")
	o = h.outcome(x2)
	wantEq(t, "kind", o.Kind, Killed)
	wantEq(t, "ran", o.Ran, 26*ms)
	_, _, n := h.d.Stats()
	wantEq(t, "kills", n.Kills, 2)
}

// A lane that dies with its job: the job is Lost, the core goes on.
func TestLaneDownLost(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent)
	h.clk.AdvanceTo(11 * ms)
	queued := h.task(3, 90*ms, 5*ms)
	h.admit(queued)
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")

	h.down(0, 1, "crashed") // the running lane
	o := h.outcome(urgent)
	wantEq(t, "kind", o.Kind, Lost)
	wantEq(t, "why", o.Why, "crashed")
	wantEq(t, "lane", o.Lane, 1)
	h.expectLog("c0/l0 resume")
	h.down(0, 0, "crashed too") // long ran again
	wantEq(t, "long", h.outcome(long).Kind, Lost)
	h.expectLog("c0/l2 start 3")
	h.down(0, 2, "and the last")
	wantEq(t, "queued", h.outcome(queued).Kind, Lost)
	_, _, n := h.d.Stats()
	wantEq(t, "lanes lost", n.LanesLost, 3)
	wantEq(t, "lost", n.Lost, 3)
	h.up(0, 0)
	st, _, _ := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 1)
}

// A stopped lane that dies: its job is Lost, the running one goes on.
func TestStoppedLaneDown(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent)
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")
	h.down(0, 0, "gone")
	wantEq(t, "long", h.outcome(long).Kind, Lost)
	h.expectLog()
	h.clk.AdvanceTo(15 * ms)
	h.result(2, nil)
	wantEq(t, "urgent", h.outcome(urgent).Kind, Finished)
	h.expectLog("c0/l1 result 2")
	h.clk.AdvanceTo(time.Second)
	h.expectLog()
}

// CoreDown: the started tasks are Lost, the queued ones go to another
// core, or are Lost when none can finish them in time.
func TestCoreDown(t *testing.T) {
	h := newHarness(t, 2, cfg(1), ms)
	h.down(1, 0, "not yet")
	h.d.CoreDown(1, "not yet") // core 1 takes nothing
	a := h.task(1, 100*ms, 50*ms)
	b := h.task(2, 300*ms, 20*ms)
	c := h.task(3, 120*ms, 30*ms)
	for _, x := range []*Task{a, b, c} {
		wantEq(t, "core", h.admit(x), 0)
	}
	h.up(1, 0)
	e := h.task(4, 150*ms, 100*ms)
	wantEq(t, "core", h.admit(e), 1)
	h.expectLog("c0/l0 start 1", "c1/l0 start 4")

	h.clk.AdvanceTo(ms)
	h.d.CoreDown(0, "cgroup gone")
	o := h.outcome(a)
	wantEq(t, "a", o.Kind, Lost)
	wantEq(t, "a why", o.Why, "cgroup gone")
	wantEq(t, "a core", o.Core, 0)
	o = h.outcome(c) // core 1 is busy until 100 ms: c (due 120 ms) cannot wait
	wantEq(t, "c", o.Kind, Lost)
	if !strings.Contains(o.Why, "no other core") {
		t.Errorf("c why %q", o.Why)
	}
	h.none(b, e)
	wantSteps(t, h, b, "admitted@0s", "re-admitted@1ms")
	st, _, n := h.d.Stats()
	wantEq(t, "core 0 available", st.Cores[0].Available, false)
	wantEq(t, "core 1 queued", st.Cores[1].Queued, 1)
	wantEq(t, "lost", n.Lost, 2)

	// A's lane goes on to answer, then dies: nothing more.
	wantEq(t, "a's result", h.d.Result(0, 0, h.lanes[0][0], 1, nil), false)
	h.down(0, 0, "killed")
	h.none(a, b, c, e)
	h.expectLog()

	h.clk.AdvanceTo(100 * ms)
	h.result(4, nil)
	h.expectLog("c1/l0 result 4", "c1/l0 start 2")
	h.result(2, nil)
	h.expectLog("c1/l0 result 2")
	o = h.outcome(b)
	wantEq(t, "b", o.Kind, Finished)
	wantEq(t, "b core", o.Core, 1)
	wantEq(t, "e", h.outcome(e).Kind, Finished)

	// The core comes back with its lane.
	h.up(0, 0)
	st, _, _ = h.d.Stats()
	wantEq(t, "core 0 available", st.Cores[0].Available, true)
	f := h.task(5, 10*ms, ms)
	h.admit(f)
	h.expectLog("c0/l0 start 5")
}

// Cancel answers a task that has not started, and nothing else.
func TestCancel(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	a := h.task(1, 100*ms, 50*ms)
	b := h.task(2, 200*ms, 10*ms)
	x := h.be(3)
	h.admit(a)
	h.admit(b)
	h.admit(x)
	h.expectLog("c0/l0 start 1")
	wantEq(t, "cancel queued", h.d.Cancel(2), true)
	o := h.outcome(b)
	wantEq(t, "b", o.Kind, Cancelled)
	wantEq(t, "b core", o.Core, -1)
	wantEq(t, "b lane", o.Lane, -1)
	wantEq(t, "cancel twice", h.d.Cancel(2), false)
	wantEq(t, "cancel best effort", h.d.Cancel(3), true)
	wantEq(t, "x", h.outcome(x).Kind, Cancelled)
	wantEq(t, "cancel started", h.d.Cancel(1), false)
	wantEq(t, "cancel unknown", h.d.Cancel(99), false)
	h.none(a)
	h.clk.Advance(10 * ms)
	h.result(1, nil)
	wantEq(t, "a", h.outcome(a).Kind, Finished)
	h.expectLog("c0/l0 result 1") // nothing left to start
	st, _, _ := h.d.Stats()
	wantEq(t, "cancelled", st.Cores[0].Cancelled, 1)
}

// Abort answers every task once; the lanes' late news changes nothing.
func TestAbort(t *testing.T) {
	sc := cfg(3)
	sc.Quantum = int64(10 * ms)
	h := newHarness(t, 2, sc, ms)
	h.down(1, 1, "")
	h.down(1, 2, "")
	long := h.task(1, 100*ms, 50*ms)
	wantEq(t, "core", h.admit(long), 0)
	x1, x2, x3 := h.be(2), h.be(3), h.be(4)
	h.admit(x1) // on core 1
	h.admit(x2) // waits: core 1 has one lane, core 0 a deadline job
	h.admit(x3)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(5, 20*ms, 5*ms)
	wantEq(t, "core", h.admit(urgent), 0)
	queued := h.task(6, 90*ms, 5*ms)
	h.admit(queued)
	h.expectLog("c0/l0 start 1", "c1/l0 start 2", "c0/l1 start 5", "c0/l0 stop")
	all := []*Task{long, x1, x2, x3, urgent, queued}

	h.d.Abort("shutting down")
	for _, x := range all {
		o := h.outcome(x)
		wantEq(t, fmt.Sprint("task ", x.ID), o.Kind, Aborted)
		wantEq(t, "why", o.Why, "shutting down")
	}
	h.d.Abort("again")
	h.none(all...)

	// Late news from the lanes, timers, and the lanes going down: no
	// outcome, no panic, nothing started.
	h.clk.AdvanceTo(15 * ms)
	wantEq(t, "urgent's result", h.d.Result(0, 1, h.lanes[0][1], 5, nil), true)
	h.clk.AdvanceTo(2 * time.Second)
	h.down(0, 0, "stopped")
	h.down(0, 1, "stopped")
	h.down(1, 0, "stopped")
	h.d.CoreDown(0, "stopped")
	h.up(0, 0)
	h.none(all...)
	h.expectLog()
	_, err := h.d.Admit(h.task(7, 100*ms, ms))
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("admit after abort: %v, want ErrAborted", err)
	}
	h.expectLog()
}

// Results that are not for the job on that lane are dropped.
func TestStaleResult(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent)
	l0, l1, l2 := h.lanes[0][0], h.lanes[0][1], h.lanes[0][2]
	for _, c := range []struct {
		what string
		li   int
		l    Lane
		id   uint64
	}{
		{"wrong lane index", 2, l2, 2},
		{"wrong lane generation", 1, newFakeLane(h.log, 0, 1), 2},
		{"another lane's lane", 1, l0, 2},
		{"wrong id", 1, l1, 1},
		{"unknown id", 1, l1, 99},
		{"idle lane", 2, l2, 99},
		{"wrong id on a stopped lane", 0, l0, 2},
		{"nil lane", 1, nil, 2},
	} {
		wantEq(t, c.what, h.d.Result(0, c.li, c.l, c.id, nil), false)
	}
	h.none(long, urgent)
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")
	h.result(2, nil)
	wantEq(t, "twice", h.d.Result(0, 1, l1, 2, nil), false)
	wantEq(t, "urgent", h.outcome(urgent).Kind, Finished)
	h.expectLog("c0/l1 result 2", "c0/l0 resume")
	// The killed lane's result.
	h.clk.AdvanceTo(time.Second)
	h.expectLog("c0/l0 kill")
	wantEq(t, "killed", h.d.Result(0, 0, l0, 1, nil), false)
	wantEq(t, "long", h.outcome(long).Kind, Killed)
}

// LaneUp for a lane that is up replaces it: its job is lost.
func TestLaneReplaced(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	a := h.task(1, 100*ms, 50*ms)
	h.admit(a)
	old := h.lanes[0][0]
	h.up(0, 0)
	o := h.outcome(a)
	wantEq(t, "kind", o.Kind, Lost)
	wantEq(t, "why", o.Why, "replaced")
	wantEq(t, "old result", h.d.Result(0, 0, old, 1, nil), false)
	h.up(0, 1) // an idle one
	st, _, n := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 2)
	wantEq(t, "lanes lost", n.LanesLost, 2)
}

// Admission errors come back unchanged and answer nothing.
func TestAdmitErrors(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	bad := h.task(1, ms, 2*ms)
	if _, err := h.d.Admit(bad); !errors.Is(err, sched.ErrInvalidDeadline) {
		t.Fatalf("err %v", err)
	}
	h.admit(h.task(2, 10*ms, ms))
	if _, err := h.d.Admit(h.task(2, 10*ms, ms)); !errors.Is(err, sched.ErrDuplicate) {
		t.Fatalf("err %v", err)
	}
	h.none(bad)
	_, _, n := h.d.Stats()
	wantEq(t, "admitted", n.Admitted, 1)

	// No lane up: nothing is admitted.
	d, err := New(Config{Cores: 1, Sched: cfg(3), Clock: NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	var u *sched.Unschedulable
	if _, err := d.Admit(NewTask(1)); err != nil {
		t.Fatalf("best effort without lanes: %v", err) // it waits for one
	}
	tk := NewTask(2)
	tk.Deadline, tk.Estimate = t0.Add(time.Second), ms
	if _, err := d.Admit(tk); !errors.As(err, &u) {
		t.Fatalf("err %v, want *sched.Unschedulable", err)
	}
	if _, err := New(Config{Cores: 0}); err == nil {
		t.Fatal("New with no core")
	}
}

// An unverified job is killed at its deadline like any other.
func TestUnverified(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	a := h.task(1, 20*ms, 0)
	a.Unverified = true
	h.admit(a)
	h.clk.AdvanceTo(21 * ms)
	h.expectLog("c0/l0 start 1", "c0/l0 kill")
	wantEq(t, "kind", h.outcome(a).Kind, Killed)
}

func TestKindString(t *testing.T) {
	for k, s := range map[Kind]string{Finished: "finished", Killed: "killed", Expired: "expired", Lost: "lost",
		Cancelled: "cancelled", Aborted: "aborted", Kind(42): "Kind(42)"} {
		wantEq(t, "kind", k.String(), s)
	}
}

func TestSettersAndRealClock(t *testing.T) {
	d, err := New(Config{Cores: 1, Sched: sched.Config{Lanes: 2}})
	if err != nil {
		t.Fatal(err)
	}
	d.SetRestartCost(7 * ms)
	c := d.Config()
	wantEq(t, "restart cost", c.RestartCost, int64(7*ms))
	wantEq(t, "lanes", d.Lanes(), 2)
	fired := make(chan struct{})
	tm := RealClock{}.AfterFunc(0, func() { close(fired) })
	<-fired
	wantEq(t, "stop after firing", tm.Stop(), false)
	if (RealClock{}).Now().IsZero() {
		t.Fatal("zero time")
	}
}

// Random arrivals, results, kills, lanes going down and up across two
// cores: every admitted task gets exactly one outcome, nothing panics, the
// lane protocol holds, and at most one lane of a core runs after every
// event.
func TestRandomised(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomRun(t, seed) })
	}
}

func randomRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := cfg(1 + rng.IntN(3))
	sc.Quantum = int64(time.Duration(1+rng.IntN(10)) * ms)
	sc.BestEffortCap = int64(time.Duration(20+rng.IntN(60)) * ms)
	if rng.IntN(2) == 0 {
		sc.PreemptCost = int64(time.Duration(rng.IntN(200)) * time.Microsecond)
	}
	const cores = 2
	var spin time.Duration // half the runs with lanes that spin after each job
	if seed%2 == 1 {
		spin = time.Duration(rng.IntN(3000)) * time.Microsecond
	}
	h := newSpinHarness(t, cores, sc, time.Duration(rng.IntN(3))*ms, spin)
	var admitted []*Task
	next := uint64(1)
	// results on their way: the lane, and the job it ended
	type pending struct {
		core, li int
		l        *fakeLane
		id       uint64
	}
	var inflight []pending

	check := func(ev string) {
		t.Helper()
		st, info, _ := h.d.Stats()
		for c := range cores {
			n := 0
			for _, l := range h.lanes[c] {
				if l != nil && l.started() {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("after %s: %d lanes of core %d run", ev, n, c)
			}
			// The dispatcher's lanes and the scheduler agree.
			up, running, stopped := 0, 0, 0
			for _, l := range info[c].Lanes {
				if l.Up && l.State != "held" {
					up++
				}
				switch l.State {
				case "running":
					running++
				case "stopped":
					stopped++
				}
			}
			s := st.Cores[c]
			if s.Lanes != up || s.Stopped != stopped || s.Running != (running == 1) || running > 1 {
				t.Fatalf("after %s: core %d: scheduler %+v, lanes %+v", ev, c, s, info[c].Lanes)
			}
		}
		if errs := h.log.errors(); len(errs) > 0 {
			t.Fatalf("after %s: %v", ev, errs)
		}
	}
	// lanesWith returns the lanes for which f holds.
	lanesWith := func(f func(l *fakeLane) bool) (out [][2]int) {
		for c := range cores {
			for li, l := range h.lanes[c] {
				if f(l) {
					out = append(out, [2]int{c, li})
				}
			}
		}
		return out
	}
	deliver := func(i int) {
		p := inflight[i]
		inflight = append(inflight[:i], inflight[i+1:]...)
		deliverTo(h.d, p.core, p.li, p.l, p.id, p.id)
	}

	abortAt := -1 // a quarter of the runs end in a shutdown
	if seed%4 == 3 {
		abortAt = 100 + rng.IntN(300)
	}
	for step := range 400 {
		var ev string
		if step == abortAt {
			h.d.Abort("shutdown")
			for _, tk := range admitted {
				select {
				case o := <-tk.Done:
					tk.Done <- o // put back
				default:
					t.Fatalf("task %d: no outcome after Abort", tk.ID)
				}
			}
		}
		switch r := rng.IntN(100); {
		case r < 30:
			tk := NewTask(next)
			next++
			tk.Done = make(chan Outcome, 2)
			if rng.IntN(4) > 0 {
				rel := time.Duration(1+rng.IntN(100)) * ms
				tk.Deadline = h.clk.Now().Add(rel)
				tk.Estimate = time.Duration(1 + rng.Int64N(int64(rel)))
				if rng.IntN(5) == 0 {
					tk.LateCap = time.Duration(rng.IntN(20)) * ms
				}
				if rng.IntN(8) == 0 {
					tk.Unverified = true
				}
			}
			if _, err := h.d.Admit(tk); err == nil {
				admitted = append(admitted, tk)
			} else if abortAt >= 0 && step >= abortAt && !errors.Is(err, ErrAborted) {
				t.Fatalf("admit after Abort: %v", err)
			}
			ev = fmt.Sprintf("admit %d", tk.ID)
		case r < 55:
			d := time.Duration(rng.Int64N(int64(15 * ms)))
			h.clk.Advance(d)
			ev = fmt.Sprintf("advance %v", d)
		case r < 75: // a running job ends: its result is on its way
			ls := lanesWith(func(l *fakeLane) bool { return l != nil && l.running() })
			if len(ls) == 0 {
				continue
			}
			x := ls[rng.IntN(len(ls))]
			l := h.lanes[x[0]][x[1]]
			inflight = append(inflight, pending{x[0], x[1], l, l.end()})
			ev = fmt.Sprintf("end on c%d/l%d", x[0], x[1])
			if rng.IntN(2) == 0 { // read at once
				deliver(len(inflight) - 1)
			}
		case r < 85:
			if len(inflight) == 0 {
				continue
			}
			deliver(rng.IntN(len(inflight)))
			ev = "deliver"
		case r < 89: // a lane dies (or a killed one's exit is seen)
			ls := lanesWith(func(l *fakeLane) bool { return l != nil })
			if len(ls) == 0 {
				continue
			}
			x := ls[rng.IntN(len(ls))]
			h.down(x[0], x[1], "died")
			ev = fmt.Sprintf("down c%d/l%d", x[0], x[1])
		case r < 95: // a lane comes (back) up; a killed one is reaped first
			ls := lanesWith(func(l *fakeLane) bool {
				if l == nil {
					return true
				}
				_, _, killed := l.state()
				return killed
			})
			if len(ls) == 0 {
				continue
			}
			x := ls[rng.IntN(len(ls))]
			if h.lanes[x[0]][x[1]] != nil && rng.IntN(2) == 0 {
				h.down(x[0], x[1], "killed")
			}
			h.up(x[0], x[1])
			ev = fmt.Sprintf("up c%d/l%d", x[0], x[1])
		case r < 96:
			if len(admitted) > 0 {
				h.d.Cancel(admitted[rng.IntN(len(admitted))].ID)
			}
			ev = "cancel"
		case r < 98: // a lane is held (now or after its job), or released
			ls := lanesWith(func(l *fakeLane) bool { return l != nil })
			if len(ls) == 0 {
				continue
			}
			x := ls[rng.IntN(len(ls))]
			l := h.lanes[x[0]][x[1]]
			if h.d.Held(x[0], x[1], l) {
				h.d.Release(x[0], x[1], l)
				ev = fmt.Sprintf("release c%d/l%d", x[0], x[1])
			} else {
				h.d.Hold(x[0], x[1], l)
				ev = fmt.Sprintf("hold c%d/l%d", x[0], x[1])
			}
		default: // a core goes away: its lanes die, then CoreDown
			c := rng.IntN(cores)
			for li := range h.lanes[c] {
				if h.lanes[c][li] != nil {
					h.down(c, li, "core gone")
				}
			}
			h.d.CoreDown(c, "core gone")
			ev = fmt.Sprintf("core %d down", c)
		}
		check(fmt.Sprintf("step %d: %s", step, ev))
	}

	// Wind down: every result arrives, every lane comes back, and time
	// passes until every deadline and cap has passed.
	for range 200 {
		for len(inflight) > 0 {
			deliver(0)
		}
		for c := range cores {
			for li, l := range h.lanes[c] {
				if l == nil {
					h.up(c, li)
				} else if h.d.Held(c, li, l) {
					h.d.Release(c, li, l)
				} else if _, _, killed := l.state(); killed {
					h.down(c, li, "killed")
					h.up(c, li)
				}
			}
		}
		check("wind down")
		// Jobs still running end now and then.
		for _, x := range lanesWith(func(l *fakeLane) bool { return l != nil && l.running() }) {
			if rng.IntN(3) == 0 {
				l := h.lanes[x[0]][x[1]]
				inflight = append(inflight, pending{x[0], x[1], l, l.end()})
			}
		}
		h.clk.Advance(20 * ms)
		check("wind down")
	}
	for len(inflight) > 0 {
		deliver(0)
	}
	for _, tk := range admitted {
		select {
		case <-tk.Done:
		default:
			steps := h.whats(tk)
			if len(steps) > 12 {
				steps = append(steps[:6:6], append([]string{"…"}, steps[len(steps)-6:]...)...)
			}
			t.Fatalf("task %d: no outcome; timeline %v", tk.ID, steps)
		}
		select {
		case o := <-tk.Done:
			t.Fatalf("task %d: a second outcome %+v", tk.ID, o)
		default:
		}
	}
	st, cs, n := h.d.Stats()
	t.Logf("lanes %d: %+v", sc.Lanes, n)
	if abortAt >= 0 {
		return // the lanes are left as they are
	}
	for c := range cores {
		if s := st.Cores[c]; s.Running || s.Queued > 0 || s.Stopped > 0 {
			t.Fatalf("core %d not idle at the end: %+v", c, s)
		}
		for li, l := range cs[c].Lanes {
			if l.State != "idle" {
				t.Fatalf("core %d lane %d %s at the end", c, li, l.State)
			}
		}
		wantEq(t, "sched lanes", st.Cores[c].Lanes, sc.Lanes)
	}
	wantEq(t, "best effort queued", st.BestEffortQueued, 0)
	wantEq(t, "admitted", int(n.Admitted), len(admitted))
}

// LaneDown reports whether the lane held a job, running or stopped.
func TestLaneDownBusy(t *testing.T) {
	h := newHarness(t, 1, cfg(3), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent)
	l0, l1, l2 := h.lanes[0][0], h.lanes[0][1], h.lanes[0][2]
	wantEq(t, "stale generation", h.d.LaneDown(0, 0, newFakeLane(h.log, 0, 0), "x"), false)
	wantEq(t, "idle", h.d.LaneDown(0, 2, l2, "x"), false)
	wantEq(t, "stopped", h.d.LaneDown(0, 0, l0, "x"), true)
	wantEq(t, "running", h.d.LaneDown(0, 1, l1, "x"), true)
	wantEq(t, "twice", h.d.LaneDown(0, 1, l1, "x"), false)
	wantEq(t, "long", h.outcome(long).Kind, Lost)
	wantEq(t, "urgent", h.outcome(urgent).Kind, Lost)
}

// Lose answers a task that has not started Lost, and nothing else.
func TestLose(t *testing.T) {
	h := newHarness(t, 1, cfg(1), ms)
	a := h.task(1, 100*ms, 50*ms)
	b := h.task(2, 200*ms, 10*ms)
	x := h.be(3)
	h.admit(a)
	h.admit(b)
	h.admit(x)
	wantEq(t, "queued", h.d.Lose(2, "no worker"), true)
	o := h.outcome(b)
	wantEq(t, "b", o.Kind, Lost)
	wantEq(t, "b why", o.Why, "no worker")
	wantEq(t, "best effort", h.d.Lose(3, "no worker"), true)
	wantEq(t, "x", h.outcome(x).Kind, Lost)
	wantEq(t, "started", h.d.Lose(1, "no worker"), false)
	wantEq(t, "unknown", h.d.Lose(2, "no worker"), false)
	h.none(a)
	_, _, n := h.d.Stats()
	wantEq(t, "lost", n.Lost, 2)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// An idle lane is held at once: jobs go to the other lanes, admission
// counts the core a lane short, and Release gives it back.
func TestHoldIdleLane(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	l0 := h.lanes[0][0]
	held := h.d.Hold(0, 0, l0)
	wantEq(t, "held at once", closed(held), true)
	wantEq(t, "Held", h.d.Held(0, 0, l0), true)
	wantEq(t, "lanes", h.lanesInfo(0), "held idle")
	st, _, n := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 1)
	wantEq(t, "holds", n.Holds, 1)

	a := h.task(1, 100*ms, 50*ms)
	h.admit(a)
	h.expectLog("c0/l1 start 1")
	// A second job with an earlier deadline cannot preempt: the only other
	// lane is held, so it waits, and is refused if it cannot wait.
	b := h.task(2, 30*ms, 5*ms)
	if _, err := h.d.Admit(b); err == nil {
		t.Fatal("admitted a job that needs the held lane")
	}
	h.d.Release(0, 0, l0)
	wantEq(t, "Held after release", h.d.Held(0, 0, l0), false)
	wantEq(t, "lanes", h.lanesInfo(0), "idle running:1")
	c := h.task(3, 60*ms, 5*ms)
	h.admit(c)
	h.expectLog("c0/l0 start 3", "c0/l1 stop")
	h.result(3, nil)
	h.result(1, nil)
	wantEq(t, "a", h.outcome(a).Kind, Finished)
	wantEq(t, "c", h.outcome(c).Kind, Finished)
}

// A busy lane is held when its job ends, not before; the job is answered
// as usual and nothing more is started on the lane until Release.
func TestHoldBusyLane(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	a := h.task(1, 100*ms, 10*ms)
	h.admit(a)
	h.expectLog("c0/l0 start 1")
	l0 := h.lanes[0][0]
	held := h.d.Hold(0, 0, l0)
	wantEq(t, "held while busy", closed(held), false)
	wantEq(t, "lanes", h.lanesInfo(0), "running:1 idle")
	h.clk.Advance(10 * ms)
	h.result(1, "r")
	wantEq(t, "held after its job", closed(held), true)
	wantEq(t, "a", h.outcome(a).Kind, Finished)
	b := h.task(2, 100*ms, 10*ms)
	h.admit(b)
	h.expectLog("c0/l0 result 1", "c0/l1 start 2")
	h.d.Release(0, 0, l0)
	h.result(2, nil)
	wantEq(t, "lanes", h.lanesInfo(0), "idle idle")
	st, _, _ := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 2)
}

// A stopped lane is held when its result arrives: it is resumed (its
// process goes on to the load) but takes no job.
func TestHoldStoppedLane(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	long := h.task(1, 100*ms, 50*ms)
	h.admit(long)
	h.clk.AdvanceTo(10 * ms)
	urgent := h.task(2, 20*ms, 5*ms)
	h.admit(urgent)
	h.expectLog("c0/l0 start 1", "c0/l1 start 2", "c0/l0 stop")
	l0 := h.lanes[0][0]
	held := h.d.Hold(0, 0, l0)
	h.clk.Advance(ms)
	h.result(2, nil)
	h.expectLog("c0/l1 result 2", "c0/l0 resume")
	h.clk.Advance(40 * ms)
	h.result(1, nil)
	h.expectLog("c0/l0 result 1")
	wantEq(t, "held", closed(held) && h.d.Held(0, 0, l0), true)
	wantEq(t, "lanes", h.lanesInfo(0), "held idle")
	st, _, _ := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 1)
	h.d.Release(0, 0, l0)
	st, _, _ = h.d.Stats()
	wantEq(t, "sched lanes after release", st.Cores[0].Lanes, 2)
}

// A lane that dies while a hold waits for it ends the wait, and is not
// counted down twice; a held lane that dies is not either.
func TestHoldLaneGone(t *testing.T) {
	h := newHarness(t, 1, cfg(2), ms)
	a := h.task(1, 100*ms, 10*ms)
	h.admit(a)
	l0 := h.lanes[0][0]
	held := h.d.Hold(0, 0, l0)
	h.down(0, 0, "crashed")
	wantEq(t, "wait ended", closed(held), true)
	wantEq(t, "not held", h.d.Held(0, 0, l0), false)
	wantEq(t, "a", h.outcome(a).Kind, Lost)
	h.d.Release(0, 0, l0) // a no-op
	st, _, _ := h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 1)

	l1 := h.lanes[0][1]
	wantEq(t, "held", closed(h.d.Hold(0, 1, l1)), true)
	h.down(0, 1, "crashed while held")
	st, _, _ = h.d.Stats()
	wantEq(t, "sched lanes", st.Cores[0].Lanes, 0)
	h.up(0, 0)
	h.up(0, 1)
	st, _, _ = h.d.Stats()
	wantEq(t, "sched lanes back", st.Cores[0].Lanes, 2)
	// A hold withdrawn before the lane's job ended leaves the lane in
	// service.
	c := h.task(5, 100*ms, 10*ms)
	h.admit(c)
	cur := h.lanes[0][0]
	wait := h.d.Hold(0, 0, cur)
	h.d.Release(0, 0, cur)
	wantEq(t, "withdrawn", closed(wait), true)
	h.result(5, nil)
	wantEq(t, "lanes", h.lanesInfo(0), "idle idle")
	// A hold on a lane that is not this one's returns closed, not held.
	wantEq(t, "stale hold", closed(h.d.Hold(0, 0, l0)) && !h.d.Held(0, 0, l0), true)
}

// With spinning lanes (Config.Spin), a core's next job goes to the lane
// that answered its last one while it may still spin, and that lane is
// parked before another lane of the core resumes or is held; once its
// spin is over, jobs go to the first idle lane again.
func TestSpinWarmLane(t *testing.T) {
	h := newSpinHarness(t, 1, cfg(3), ms, time.Millisecond)
	l0 := h.lanes[0][0]
	h.d.Hold(0, 0, l0)
	x := h.task(1, 100*ms, 5*ms)
	h.admit(x)
	h.expectLog("c0/l0 park", "c0/l1 start 1")
	h.result(1, nil)
	h.d.Release(0, 0, l0)
	h.expectLog("c0/l1 result 1")
	// Within its spin, lane 1 takes the next job although lane 0 is idle.
	h.clk.Advance(500 * time.Microsecond)
	y := h.task(2, 100*ms, 50*ms)
	h.admit(y)
	h.expectLog("c0/l1 start 2")
	// A more urgent job preempts it on lane 0, and ends: lane 0 spins, so
	// it is parked before lane 1 resumes.
	z := h.task(3, 20*ms, 5*ms)
	h.admit(z)
	h.expectLog("c0/l0 start 3", "c0/l1 stop")
	h.result(3, nil)
	h.expectLog("c0/l0 result 3", "c0/l0 park", "c0/l1 resume")
	h.result(2, nil)
	h.expectLog("c0/l1 result 2")
	// Past its spin lane 1 is asleep: the first idle lane is used again.
	h.clk.Advance(2 * time.Millisecond)
	w := h.task(4, 100*ms, 5*ms)
	h.admit(w)
	h.expectLog("c0/l0 start 4")
	h.result(4, nil)
	for _, tk := range []*Task{x, y, z, w} {
		wantEq(t, fmt.Sprint("task ", tk.ID), h.outcome(tk).Kind, Finished)
	}
}
