package sched

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// errUnsched stands for any *Unschedulable in the step tables.
var errUnsched = errors.New("unschedulable")

// step is one call in a scripted scenario.
type step struct {
	op   string // admit, next, done, off, on, cancel
	now  int64
	core int   // next, done, off, on; for admit, the core we want (-1: FIFO)
	job  Job   // admit; cancel uses job.ID
	err  error // admit: the error we want (errUnsched for *Unschedulable)
	want bool  // next, done, cancel: the ok we want
	id   uint64
	// retry is the RetryAfter we want with errUnsched, if not -1.
	retry int64
}

func admit(now int64, id uint64, deadline, estimate int64, core int) step {
	return step{op: "admit", now: now, job: Job{ID: id, Deadline: deadline, Estimate: estimate}, core: core, retry: -1}
}

func refuse(now int64, id uint64, deadline, estimate int64, err error) step {
	return step{op: "admit", now: now, job: Job{ID: id, Deadline: deadline, Estimate: estimate}, core: -1, err: err, retry: -1}
}

func refuseRetry(now int64, id uint64, deadline, estimate, retry int64) step {
	s := refuse(now, id, deadline, estimate, errUnsched)
	s.retry = retry
	return s
}

// next wants Next(core, now) to start job id (0: nothing).
func next(now int64, core int, id uint64) step {
	return step{op: "next", now: now, core: core, want: id != 0, id: id}
}

func done(now int64, core int, id uint64) step {
	return step{op: "done", now: now, core: core, want: id != 0, id: id}
}

func run(t *testing.T, s *Scheduler, steps []step) {
	t.Helper()
	for i, st := range steps {
		switch st.op {
		case "admit":
			snaps := snapshot(s)
			want, _ := oracleChoice(s.cfg, st.now, snaps, st.job)
			core, err := s.Admit(st.now, st.job)
			var u *Unschedulable
			switch {
			case st.err == errUnsched:
				if !errors.As(err, &u) {
					t.Fatalf("step %d: Admit(%d, %+v): got core %d, %v, want *Unschedulable", i, st.now, st.job, core, err)
				}
				if st.retry >= 0 && u.RetryAfter != st.retry {
					t.Fatalf("step %d: Admit(%d, %+v): got RetryAfter %d, want %d", i, st.now, st.job, u.RetryAfter, st.retry)
				}
			case st.err != nil:
				if !errors.Is(err, st.err) {
					t.Fatalf("step %d: Admit(%d, %+v): got core %d, %v, want %v", i, st.now, st.job, core, err, st.err)
				}
			case err != nil || core != st.core:
				t.Fatalf("step %d: Admit(%d, %+v): got core %d, %v, want core %d", i, st.now, st.job, core, err, st.core)
			}
			// The scripted answer must agree with the brute force.
			if st.job.Deadline != 0 && st.job.Estimate > 0 && st.job.Estimate < st.job.Deadline-st.now &&
				!errors.Is(err, ErrDuplicate) && core != want {
				t.Fatalf("step %d: Admit(%d, %+v): got core %d, oracle says %d", i, st.now, st.job, core, want)
			}
		case "next":
			j, ok := s.Next(st.core, st.now)
			if ok != st.want || j.ID != st.id {
				t.Fatalf("step %d: Next(%d, %d): got %+v, %v, want job %d, %v", i, st.core, st.now, j, ok, st.id, st.want)
			}
		case "done":
			j, ok := s.Done(st.core, st.now)
			if ok != st.want || j.ID != st.id {
				t.Fatalf("step %d: Done(%d, %d): got %+v, %v, want job %d, %v", i, st.core, st.now, j, ok, st.id, st.want)
			}
		case "off", "on":
			s.SetAvailable(st.core, st.op == "on")
		case "cancel":
			if got := s.Cancel(st.id); got != st.want {
				t.Fatalf("step %d: Cancel(%d): got %v, want %v", i, st.id, got, st.want)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.op)
		}
		checkInvariants(t, s)
	}
}

func cancel(id uint64, want bool) step { return step{op: "cancel", id: id, want: want} }
func off(core int) step                { return step{op: "off", core: core} }
func on(core int) step                 { return step{op: "on", core: core} }

func TestAdmit(t *testing.T) {
	withKill := Config{BestEffortCap: 100, Grace: 3, RestartCost: 7}
	tests := []struct {
		name  string
		cores int
		cfg   Config
		steps []step
	}{
		{"equal deadlines: smaller ID first", 1, exact, []step{
			admit(0, 5, 100, 50, 0),
			admit(0, 3, 100, 50, 0),          // runs before 5: 3 ends at 50, 5 at 100
			refuse(0, 4, 100, 1, errUnsched), // 4 also before 5: 5 would end at 101
			refuse(0, 6, 100, 1, errUnsched), // 6 after 5: 6 would end at 101
			admit(0, 7, 101, 1, 0),
			next(0, 0, 3),
			done(50, 0, 3),
			next(50, 0, 5),
		}},
		{"zero slack is on time", 1, exact, []step{
			refuse(0, 1, 10, 10, ErrInvalidDeadline), // C >= D-now even on an idle core
			admit(0, 1, 11, 10, 0),
			admit(0, 2, 20, 9, 0), // ends at 19
			admit(0, 3, 20, 1, 0), // ends at 20 == deadline
			refuse(0, 4, 20, 1, errUnsched),
			refuse(0, 5, 19, 1, errUnsched), // before 2 and 3: 3 would end at 21
		}},
		{"deadline barely above the estimate behind a running job", 1, exact, []step{
			admit(0, 1, 100, 10, 0),
			next(0, 0, 1),
			admit(5, 2, 11, 1, 0),           // t0 = 10, ends at 11
			refuse(5, 3, 11, 5, errUnsched), // C < D-now, but t0 = 10
			refuse(5, 4, 10, 5, ErrInvalidDeadline),
		}},
		{"running job past its estimate blocks until deadline+grace+restart", 1, withKill, []step{
			admit(0, 1, 50, 10, 0),
			next(0, 0, 1),
			admit(10, 2, 20, 5, 0), // elapsed == estimate: t0 = 10, not overrun
			cancel(2, true),
			refuse(11, 3, 64, 5, errUnsched), // overrun: t0 = 50+3+7 = 60, ends 65
			admit(11, 4, 65, 5, 0),
			refuse(11, 5, 69, 5, errUnsched), // behind 4: ends 70
			admit(11, 6, 70, 5, 0),
		}},
		{"a job allowed to finish late blocks until deadline+late cap+grace+restart", 1, withKill, []step{
			{op: "admit", now: 0, job: Job{ID: 1, Deadline: 50, Estimate: 10, LateCap: 40}, core: 0, retry: -1},
			next(0, 0, 1),
			admit(5, 2, 20, 5, 0), // within its estimate: t0 = 10
			cancel(2, true),
			refuse(11, 3, 104, 5, errUnsched), // overrun: t0 = 50+40+3+7 = 100, ends 105
			admit(11, 4, 105, 5, 0),
		}},
		{"running job within its estimate ends at start+estimate", 1, withKill, []step{
			admit(0, 1, 20, 15, 0),
			next(10, 0, 1),         // started late: start+C = 25, kill bound 20+3+7 = 30
			admit(12, 2, 27, 2, 0), // t0 = 25, ends at 27
			cancel(2, true),
			refuse(12, 3, 26, 2, errUnsched),
		}},
		{"estimate beyond deadline+grace+restart is cut at the kill", 1, Config{BestEffortCap: 100, Grace: 1, RestartCost: 2}, []step{
			admit(0, 1, 20, 15, 0),
			next(10, 0, 1),         // start+C = 25, kill bound 23
			admit(12, 2, 25, 2, 0), // t0 = 23
			refuse(12, 3, 25, 1, errUnsched),
		}},
		{"running job past its kill bound frees the core now", 1, withKill, []step{
			admit(0, 1, 50, 10, 0),
			next(0, 0, 1),
			admit(61, 2, 63, 1, 0), // 50+3+7 = 60 < 61: t0 = now
		}},
		{"running best-effort job blocks until cap+grace+restart", 1, withKill, []step{
			admit(0, 1, 0, 1, -1),
			next(0, 0, 1),
			admit(30, 2, 120, 10, 0), // t0 = 100+3+7 = 110
			refuse(30, 3, 129, 10, errUnsched),
			admit(30, 4, 130, 10, 0),
		}},
		{"best-effort waits behind deadline work", 1, exact, []step{
			admit(0, 1, 0, 1, -1),
			admit(0, 2, 100, 10, 0),
			next(0, 0, 2),
			next(0, 0, 0), // busy
			done(10, 0, 2),
			next(10, 0, 1),
			done(10, 0, 1),
			done(10, 0, 0),
			next(10, 0, 0),
		}},
		{"best-effort does not start on an unavailable core", 2, exact, []step{
			off(0),
			admit(0, 1, 0, 1, -1),
			next(0, 0, 0),
			next(0, 1, 1),
		}},
		{"unavailable cores admit nothing", 2, Config{BestEffortCap: 100, Grace: -1, RestartCost: 42}, []step{
			off(0),
			admit(0, 1, 100, 10, 1),
			off(1),
			refuseRetry(0, 2, 100, 10, 42),
			on(0),
			admit(0, 3, 100, 10, 0),
		}},
		{"unavailable core still runs its queue", 1, exact, []step{
			admit(0, 1, 100, 10, 0),
			off(0),
			next(0, 0, 1),
		}},
		{"worst fit: ties on slack go to the core idle first", 2, exact, []step{
			admit(0, 1, 20, 10, 0),
			admit(0, 2, 20, 10, 1),    // core 0: slack 0; core 1: 10
			admit(0, 3, 1000, 100, 0), // slack 10 and idle at 10 on both
			admit(0, 4, 2000, 10, 1),  // slack 10 on both; core 1 idle at 10, core 0 at 110
		}},
		{"worst fit: most minimum slack wins, ties to the lower core", 3, exact, []step{
			admit(0, 1, 100, 10, 0), // all idle: tie
			admit(0, 2, 100, 10, 1),
			admit(0, 3, 100, 10, 2),
			admit(0, 4, 100, 50, 0), // 1 then 4, or 2 then 4, or 3 then 4: min slack 40 each
			admit(0, 5, 65, 5, 1),   // core 0: 5, 1, 4 end 5, 15, 65: slack 35; cores 1, 2: 60
			admit(0, 6, 200, 5, 2),  // core 0: 40; core 1: 60; core 2: 90
		}},
		{"a late queued job makes its core refuse", 1, exact, []step{
			admit(0, 1, 50, 10, 0),
			next(0, 0, 1),
			admit(0, 2, 30, 5, 0),              // ends at 15
			refuse(11, 3, 1000, 1, errUnsched), // 1 overran: t0 = 50, 2 ends 55 > 30
			cancel(2, true),
			admit(11, 3, 1000, 1, 0),
		}},
		{"retry hint on an idle-after-running core", 1, exact, []step{
			admit(0, 1, 100, 50, 0),
			next(0, 0, 1),
			refuseRetry(0, 2, 40, 10, 20), // at 20, deadline 60: t0 50, ends 60
			admit(20, 3, 60, 10, 0),
		}},
		{"retry hint behind queued work", 1, exact, []step{
			admit(0, 1, 12, 10, 0),
			admit(0, 2, 22, 10, 0),
			// 3 goes between 1 and 2 and makes 2 end at 25 > 22. The plan is
			// idle at e = 20; 3 goes last once T+15 > 22, and fits there once
			// 20+5 <= T+15: T = min(20, max(10, 8)) = 10.
			refuseRetry(0, 3, 15, 5, 10),
			next(0, 0, 1),
			done(10, 0, 1),
			next(10, 0, 2),
			admit(10, 4, 25, 5, 0), // t0 = 20, ends at 25
		}},
		{"cancel", 2, exact, []step{
			admit(0, 1, 100, 10, 0),
			admit(0, 2, 100, 10, 1),
			admit(0, 3, 0, 1, -1),
			next(0, 0, 1),
			cancel(1, false), // running
			cancel(2, true),
			cancel(2, false),
			cancel(3, true),
			cancel(99, false),
			next(0, 1, 0),
		}},
		{"errors", 1, Config{BestEffortCap: 100, Grace: -1, RestartCost: -1, MaxBestEffort: 1, MaxQueue: 2}, []step{
			refuse(0, 1, 100, 0, ErrInvalidEstimate),
			refuse(0, 1, 100, -5, ErrInvalidEstimate),
			refuse(0, 1, -100, 5, ErrInvalidDeadline),
			refuse(0, 1, 5, 5, ErrInvalidDeadline),
			admit(0, 1, 100, 5, 0),
			refuse(0, 1, 200, 5, ErrDuplicate),
			refuse(0, 1, 0, 5, ErrDuplicate),
			admit(0, 2, 0, 5, -1),
			refuse(0, 2, 100, 5, ErrDuplicate),
			refuse(0, 3, 0, 5, ErrQueueFull),
			admit(0, 4, 100, 5, 0),
			refuse(0, 5, 1000, 5, errUnsched), // MaxQueue
			next(0, 0, 1),
			refuse(0, 1, 100, 5, ErrDuplicate), // running
			admit(0, 5, 1000, 5, 0),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, mustNew(t, tt.cores, tt.cfg), tt.steps)
		})
	}
}

func TestEqualDeadlineOrder(t *testing.T) {
	s := mustNew(t, 1, exact)
	ids := []uint64{9, 2, 7, 4, 1}
	for _, id := range ids {
		if _, err := s.Admit(0, Job{ID: id, Deadline: 1000, Estimate: 1}); err != nil {
			t.Fatalf("Admit(%d): %v", id, err)
		}
	}
	var got []uint64
	for {
		j, ok := s.Next(0, 0)
		if !ok {
			break
		}
		got = append(got, j.ID)
		s.Done(0, 0)
	}
	if want := []uint64{1, 2, 4, 7, 9}; !slices.Equal(got, want) {
		t.Fatalf("run order: got %v, want %v", got, want)
	}
}

// TestExactness compares Admit with the brute force on random states,
// including running jobs past their estimates, best-effort jobs and late
// queues, which the simulator never produces.
func TestExactness(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cfgs := []Config{exact, {BestEffortCap: 30, Grace: 2, RestartCost: 5}, {BestEffortCap: 7, Grace: -1, RestartCost: 3, MaxQueue: 4}}
	var admitted, refused, lateCores int
	for round := range 3000 {
		cfg := cfgs[round%len(cfgs)]
		cores := 1 + rng.IntN(3)
		s := mustNew(t, cores, cfg)
		id := uint64(0)
		now := int64(0)
		// Build a random state: admissions, starts, and time passing.
		for range rng.IntN(25) {
			id++
			now += rng.Int64N(4)
			c := 1 + rng.Int64N(10)
			j := Job{ID: id, Deadline: now + c + 1 + rng.Int64N(60), Estimate: c}
			if rng.IntN(8) == 0 {
				j.Deadline = 0
			}
			s.Admit(now, j)
			core := rng.IntN(cores)
			switch rng.IntN(4) {
			case 0:
				s.Next(core, now)
			case 1:
				s.Done(core, now)
			}
		}
		now += rng.Int64N(40) // may push running jobs past estimates, caps, kills
		checkInvariants(t, s)
		snaps := snapshot(s)
		for _, cs := range snaps {
			if ok, _, _ := oracleFit(s.cfg, now, cs, Job{ID: 1 << 40, Deadline: 1 << 40, Estimate: 1}); !ok && len(cs.queued) < s.cfg.MaxQueue {
				lateCores++
			}
		}
		for range 20 {
			c := 1 + rng.Int64N(12)
			j := Job{ID: id + 1 + uint64(rng.IntN(100)), Deadline: now + c + 1 + rng.Int64N(80), Estimate: c}
			if _, dup := s.index[j.ID]; dup {
				continue
			}
			want, feasible := oracleChoice(s.cfg, now, snaps, j)
			c2 := clone(s)
			core, err := c2.Admit(now, j)
			var u *Unschedulable
			switch {
			case err == nil:
				if core != want || !feasible[core] {
					t.Fatalf("round %d: Admit(%d, %+v): got core %d, want %d (feasible %v; cores %+v)", round, now, j, core, want, feasible, snaps)
				}
				admitted++
			case errors.As(err, &u):
				if want >= 0 {
					t.Fatalf("round %d: Admit(%d, %+v): got %v, want core %d (cores %+v)", round, now, j, err, want, snaps)
				}
				refused++
			default:
				t.Fatalf("round %d: Admit(%d, %+v): %v", round, now, j, err)
			}
			checkInvariants(t, c2)
		}
	}
	if admitted == 0 || refused == 0 || lateCores == 0 {
		t.Fatalf("got %d admitted, %d refused, %d late cores; want all > 0", admitted, refused, lateCores)
	}
}

// TestRetryAfterSuffices checks the hint: if every core runs its plan, the
// same request made RetryAfter later is admitted.
func TestRetryAfterSuffices(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := Config{BestEffortCap: 10, Grace: 1, RestartCost: 4, MaxQueue: 6}
	checked := 0
	for round := range 3000 {
		cores := 1 + rng.IntN(3)
		s := mustNew(t, cores, cfg)
		now, id := int64(0), uint64(0)
		for range rng.IntN(30) {
			id++
			now += rng.Int64N(3)
			c := 1 + rng.Int64N(10)
			s.Admit(now, Job{ID: id, Deadline: now + c + 1 + rng.Int64N(50), Estimate: c})
			if core := rng.IntN(cores); rng.IntN(3) == 0 {
				s.Done(core, now)
				s.Next(core, now)
			}
		}
		now += rng.Int64N(15)
		if rng.IntN(4) == 0 {
			s.SetAvailable(rng.IntN(cores), false)
		}
		c := 1 + rng.Int64N(10)
		j := Job{ID: id + 1, Deadline: now + c + 1 + rng.Int64N(20), Estimate: c}
		_, err := s.Admit(now, j)
		var u *Unschedulable
		if !errors.As(err, &u) {
			continue
		}
		if st := s.Stats(now); !slices.ContainsFunc(st.Cores, func(c CoreStats) bool { return c.Available }) {
			if u.RetryAfter != s.cfg.RestartCost {
				t.Fatalf("round %d: no core available: got RetryAfter %d, want RestartCost %d", round, u.RetryAfter, s.cfg.RestartCost)
			}
			continue
		}
		at := now + u.RetryAfter
		// Run every core's plan up to at: each job takes what its core's
		// timeline says (the estimate, or the kill bound), back to back.
		for ci := range s.cores {
			cur := now
			for {
				if _, _, busy := s.Running(ci); !busy {
					if _, ok := s.Next(ci, cur); !ok {
						break
					}
				}
				end := s.free(&s.cores[ci], cur)
				if end > at {
					break
				}
				s.Done(ci, end)
				cur = end
			}
		}
		j2 := Job{ID: id + 2, Deadline: at + (j.Deadline - now), Estimate: c}
		if _, err := s.Admit(at, j2); err != nil {
			t.Fatalf("round %d: refused at %d with RetryAfter %d; Admit(%d, %+v) then: got %v, want admitted", round, now, u.RetryAfter, at, j2, err)
		}
		checked++
	}
	if checked < 100 {
		t.Fatalf("got %d refusals checked, want >= 100", checked)
	}
}

func TestThousandsQueued(t *testing.T) {
	const n = 5000
	rng := rand.New(rand.NewPCG(5, 6))
	s := mustNew(t, 1, exact)
	// Deadlines spread so that the queue is feasible but tight in places.
	total := int64(0)
	for i := range n {
		c := 1 + rng.Int64N(20)
		total += c
		j := Job{ID: uint64(i + 1), Deadline: total + rng.Int64N(200), Estimate: c}
		if j.Deadline <= c {
			j.Deadline = c + 1
		}
		s.Admit(0, j)
	}
	checkInvariants(t, s)
	queued := s.Stats(0).Cores[0].Queued
	if queued < n/2 {
		t.Fatalf("queued: got %d, want >= %d", queued, n/2)
	}
	snaps := snapshot(s)
	for i := range 300 {
		c := 1 + rng.Int64N(30)
		j := Job{ID: uint64(n + 1 + i), Deadline: c + 1 + rng.Int64N(total+400), Estimate: c}
		want, _ := oracleChoice(s.cfg, 0, snaps, j)
		got, _ := clone(s).Admit(0, j)
		if got != want {
			t.Fatalf("Admit(0, %+v) on %d queued: got core %d, want %d", j, queued, got, want)
		}
	}
	// Cancel every other job, then drain: the rest comes back in EDF order.
	cancelled := 0
	for _, j := range snaps[0].queued {
		if j.ID%2 == 0 {
			if !s.Cancel(j.ID) {
				t.Fatalf("Cancel(%d): got false, want true", j.ID)
			}
			cancelled++
		}
	}
	checkInvariants(t, s)
	got := s.Drain(0)
	if len(got) != queued-cancelled || !slices.IsSortedFunc(got, edfCmp) {
		t.Fatalf("Drain: got %d jobs (sorted %v), want %d in EDF order", len(got), slices.IsSortedFunc(got, edfCmp), queued-cancelled)
	}
	checkInvariants(t, s)
}

func TestDrainRoundTrip(t *testing.T) {
	s := mustNew(t, 2, exact)
	for i := range uint64(20) {
		if _, err := s.Admit(0, Job{ID: i + 1, Deadline: 1000 + int64(i%5)*10, Estimate: 5}); err != nil {
			t.Fatalf("Admit(%d): %v", i+1, err)
		}
	}
	s.Admit(0, Job{ID: 100}) // best-effort
	run0, _ := s.Next(0, 0)
	before := snapshot(s)
	drained := s.Drain(0)
	if _, _, busy := s.Running(0); busy {
		t.Fatalf("Running(0) after Drain: got busy, want idle")
	}
	if !slices.Equal(drained, before[0].queued) {
		t.Fatalf("Drain(0): got %v, want %v", drained, before[0].queued)
	}
	if got := s.Drain(0); got != nil {
		t.Fatalf("second Drain(0): got %v, want nil", got)
	}
	if s.Cancel(run0.ID) {
		t.Fatalf("Cancel(%d) of the drained running job: got true, want false", run0.ID)
	}
	// Re-admit elsewhere: the IDs are free again.
	s.SetAvailable(0, false)
	for _, j := range drained {
		if core, err := s.Admit(0, j); err != nil || core != 1 {
			t.Fatalf("re-Admit(%+v): got core %d, %v, want core 1", j, core, err)
		}
	}
	if _, err := s.Admit(0, run0); err != nil {
		t.Fatalf("re-Admit of the lost running job: %v", err)
	}
	checkInvariants(t, s)
	st := s.Stats(0)
	if st.Cores[0].Drained != uint64(len(drained)) || st.BestEffortQueued != 1 {
		t.Fatalf("Stats: got core 0 drained %d, best-effort %d, want %d, 1", st.Cores[0].Drained, st.BestEffortQueued, len(drained))
	}
}

func TestStats(t *testing.T) {
	s := mustNew(t, 2, exact)
	s.Admit(0, Job{ID: 1, Deadline: 100, Estimate: 10}) // core 0 (tie)
	s.Admit(0, Job{ID: 2, Deadline: 50, Estimate: 20})  // core 1 (slack 30 on both, core 1 idle)
	s.Admit(0, Job{ID: 3, Deadline: 60, Estimate: 20})  // core 0 (40 against 20)
	s.Admit(0, Job{ID: 4})                              // best-effort
	s.Admit(0, Job{ID: 5, Deadline: 5, Estimate: 10})   // invalid
	s.Admit(0, Job{ID: 6, Deadline: 45, Estimate: 44})  // would make 2 or 3 late
	s.Next(0, 2)                                        // 3
	s.Next(1, 0)                                        // 2
	s.Done(0, 10)
	st := s.Stats(10)
	want := Stats{
		BestEffortQueued: 1, Admitted: 3, BestEffort: 1, Rejected: 1, Invalid: 1,
	}
	type totals struct {
		be                                            int
		admitted, bestEffort, rejected, invalid, full uint64
	}
	got := totals{st.BestEffortQueued, st.Admitted, st.BestEffort, st.Rejected, st.Invalid, st.Full}
	if w := (totals{want.BestEffortQueued, want.Admitted, want.BestEffort, want.Rejected, want.Invalid, want.Full}); got != w {
		t.Fatalf("Stats totals: got %+v, want %+v", got, w)
	}
	var queued, completed int
	var busy int64
	for _, cs := range st.Cores {
		queued += cs.Queued
		completed += int(cs.Completed)
		busy += cs.Busy
		if !cs.Available {
			t.Fatalf("core: got unavailable, want available")
		}
	}
	if queued != 1 || completed != 1 || busy != 8 {
		t.Fatalf("Stats cores: got queued %d, completed %d, busy %d, want 1, 1, 8 (%+v)", queued, completed, busy, st.Cores)
	}
	// Core 0 is idle with job 1 queued: it ends at 20, 80 before its
	// deadline. Core 1 runs 2 (started at 0, estimate 20) and has no queue.
	c0, c1 := st.Cores[0], st.Cores[1]
	if c0.Backlog != 10 || c0.Slack != 80 || c0.Running || c0.Admitted != 2 {
		t.Fatalf("Stats core 0: got %+v, want backlog 10, slack 80, idle, 2 admitted", c0)
	}
	if c1.Backlog != 10 || c1.Slack != 0 || !c1.Running || c1.RunningID != 2 || c1.Infeasible != 1 {
		t.Fatalf("Stats core 1: got %+v, want backlog 10, slack 0, running 2, 1 infeasible", c1)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name  string
		cores int
		cfg   Config
		ok    bool
		want  Config
	}{
		{"defaults", 1, Config{}, true, Config{BestEffortCap: DefaultBestEffortCap, Grace: DefaultGrace,
			RestartCost: DefaultRestartCost, MaxBestEffort: DefaultMaxBestEffort, MaxQueue: DefaultMaxQueue}},
		{"negative means none", 2, Config{Grace: -1, RestartCost: -5}, true, Config{BestEffortCap: DefaultBestEffortCap,
			MaxBestEffort: DefaultMaxBestEffort, MaxQueue: DefaultMaxQueue}},
		{"explicit", 1, Config{BestEffortCap: 5, Grace: 6, RestartCost: 7, MaxBestEffort: 8, MaxQueue: 9}, true,
			Config{BestEffortCap: 5, Grace: 6, RestartCost: 7, MaxBestEffort: 8, MaxQueue: 9}},
		{"no cores", 0, Config{}, false, Config{}},
		{"negative cap", 1, Config{BestEffortCap: -1}, false, Config{}},
		{"negative fifo", 1, Config{MaxBestEffort: -1}, false, Config{}},
		{"negative queue", 1, Config{MaxQueue: -1}, false, Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cores, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%d, %+v): got error %v, want ok %v", tt.cores, tt.cfg, err, tt.ok)
			}
			if err == nil && (s.cfg != tt.want || s.Cores() != tt.cores) {
				t.Fatalf("New(%d, %+v): got %+v with %d cores, want %+v", tt.cores, tt.cfg, s.cfg, s.Cores(), tt.want)
			}
		})
	}
}
