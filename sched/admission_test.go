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
	op   string // admit, next, done, remove, up, down, lanes, off, on, cancel
	now  int64
	core int   // for admit, the core we want (-1: FIFO)
	job  Job   // admit
	err  error // admit: the error we want (errUnsched for *Unschedulable)
	want bool  // done, remove, cancel: the ok we want
	id   uint64
	n    int // lanes
	// retry is the RetryAfter we want with errUnsched, if not -1.
	retry int64
	act   act // next
}

// act is the Action a next step wants, by IDs.
type act struct {
	run, stop uint64
	resume    bool
	used      int64
	expired   []uint64
	recheck   int64 // -1: any
}

func admitJ(now int64, j Job, core int) step {
	return step{op: "admit", now: now, job: j, core: core, retry: -1}
}

func refuseJ(now int64, j Job, err error) step {
	return step{op: "admit", now: now, job: j, core: -1, err: err, retry: -1}
}

func admit(now int64, id uint64, deadline, estimate int64, core int) step {
	return admitJ(now, Job{ID: id, Deadline: deadline, Estimate: estimate}, core)
}

func refuse(now int64, id uint64, deadline, estimate int64, err error) step {
	return refuseJ(now, Job{ID: id, Deadline: deadline, Estimate: estimate}, err)
}

func refuseRetry(now int64, id uint64, deadline, estimate, retry int64) step {
	s := refuse(now, id, deadline, estimate, errUnsched)
	s.retry = retry
	return s
}

// next wants Next(core, now) to start job id (0: nothing), stopping and
// dropping nothing, whatever its Recheck.
func next(now int64, core int, id uint64) step {
	return step{op: "next", now: now, core: core, act: act{run: id, recheck: -1}}
}

// nextA wants Next(core, now) to return a.
func nextA(now int64, core int, a act) step {
	return step{op: "next", now: now, core: core, act: a}
}

func done(now int64, core int, id uint64) step {
	return step{op: "done", now: now, core: core, want: id != 0, id: id}
}

func remove(now int64, core int, id uint64, want bool) step {
	return step{op: "remove", now: now, core: core, id: id, want: want}
}

func laneUp(core int) step              { return step{op: "up", core: core} }
func laneDown(now int64, core int) step { return step{op: "down", now: now, core: core} }
func setLanes(core, n int) step         { return step{op: "lanes", core: core, n: n} }
func cancel(id uint64, want bool) step  { return step{op: "cancel", id: id, want: want} }
func off(core int) step                 { return step{op: "off", core: core} }
func on(core int) step                  { return step{op: "on", core: core} }
func blockedAt(core int, at int64) step { return step{op: "blocked", core: core, now: at} }
func pinned(core int, want bool) step   { return step{op: "pinned", core: core, want: want} }
func lanesAre(core int, n int) step     { return step{op: "lanesAre", core: core, n: n} }

func ids(js []Job) []uint64 {
	out := make([]uint64, 0, len(js))
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func run(t *testing.T, s *Scheduler, steps []step) {
	t.Helper()
	for i, st := range steps {
		switch st.op {
		case "admit":
			snaps := snapshot(s, st.now)
			want, _, _ := oracleChoice(s.cfg, snaps, st.job)
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
			if st.job.Deadline != 0 && valid(st.now, st.job) && !errors.Is(err, ErrDuplicate) && core != want {
				t.Fatalf("step %d: Admit(%d, %+v): got core %d, oracle says %d", i, st.now, st.job, core, want)
			}
		case "next":
			a := s.Next(st.core, st.now)
			w := st.act
			if a.Run.ID != w.run || a.Stop.ID != w.stop || a.Resume != w.resume || a.Used != w.used ||
				!slices.Equal(ids(a.Expired), w.expired) && len(a.Expired)+len(w.expired) > 0 ||
				w.recheck >= 0 && a.Recheck != w.recheck {
				t.Fatalf("step %d: Next(%d, %d): got run %d stop %d resume %v used %d expired %v recheck %d, want %+v",
					i, st.core, st.now, a.Run.ID, a.Stop.ID, a.Resume, a.Used, ids(a.Expired), a.Recheck, w)
			}
			checkDispatched(t, s, st.core)
		case "done":
			j, ok := s.Done(st.core, st.now)
			if ok != st.want || j.ID != st.id {
				t.Fatalf("step %d: Done(%d, %d): got %+v, %v, want job %d, %v", i, st.core, st.now, j, ok, st.id, st.want)
			}
		case "remove":
			j, ok := s.Remove(st.core, st.id, st.now)
			if ok != st.want || (ok && j.ID != st.id) {
				t.Fatalf("step %d: Remove(%d, %d, %d): got %+v, %v, want %v", i, st.core, st.id, st.now, j, ok, st.want)
			}
		case "up":
			s.LaneUp(st.core)
		case "down":
			s.LaneDown(st.core, st.now)
		case "lanes":
			s.SetLanes(st.core, st.n)
		case "off", "on":
			s.SetAvailable(st.core, st.op == "on")
		case "cancel":
			if got := s.Cancel(st.id); got != st.want {
				t.Fatalf("step %d: Cancel(%d): got %v, want %v", i, st.id, got, st.want)
			}
		case "blocked":
			if c := &s.cores[st.core]; c.blocked != st.now {
				t.Fatalf("step %d: core %d blocked until %d, want %d", i, st.core, c.blocked, st.now)
			}
		case "pinned":
			if c := &s.cores[st.core]; c.pinned != st.want {
				t.Fatalf("step %d: core %d pinned %v, want %v", i, st.core, c.pinned, st.want)
			}
		case "warm":
			s.SetWarm(st.core, st.now)
		case "lanesAre":
			if c := &s.cores[st.core]; c.lanes != st.n {
				t.Fatalf("step %d: core %d has %d lanes, want %d", i, st.core, c.lanes, st.n)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.op)
		}
		checkInvariants(t, s)
	}
}

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
		{"an idle core whose lanes sleep is charged its wake-up, a warm one is not", 2, Config{BestEffortCap: 100, Grace: -1, RestartCost: -1, PreemptCost: -1, WakeCost: 4}, []step{
			refuse(0, 1, 13, 10, errUnsched), // either core: 0+4+10 > 13
			{op: "warm", core: 1, now: 3},    // core 1's last lane polls until 3
			admit(2, 2, 13, 10, 1),           // core 1, warm at 2: ends at 12
			next(2, 1, 2),
			refuse(2, 3, 15, 10, errUnsched), // core 0 sleeps: 2+4+10 > 15
			admit(2, 4, 16, 10, 0),
			done(12, 1, 2),
			{op: "warm", core: 1, now: 15},
			admit(14, 5, 25, 10, 1), // warm until 15: no wake-up, ends at 24 (28 with one)
			next(14, 1, 5),
			done(24, 1, 5),
			refuse(24, 6, 37, 10, errUnsched), // warm no more: 24+4+10 > 37 on core 1, 28+4... on core 0
			admit(24, 7, 38, 10, 1),
		}},
		{"every plan keeps the tail's slack once, not once a job", 2, Config{BestEffortCap: 100, Grace: -1, RestartCost: -1, PreemptCost: -1, TailCost: 3}, []step{
			refuse(0, 1, 12, 10, errUnsched), // 0+3+10 > 12 on either core
			admit(0, 2, 13, 10, 0),           // ends at 13
			admit(0, 3, 8, 5, 1),             // before 2 on core 0, 2 would end at 18
			admit(0, 4, 13, 5, 1),            // behind 3: ends at 13, not 16
			next(0, 0, 2),
			refuse(1, 5, 15, 3, errUnsched), // 2 runs until 10: 10+3+3 > 15
			admit(1, 6, 16, 3, 0),
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
			admit(0, 1, 30, 15, 0),
			next(10, 0, 1),         // started late: start+C = 25, kill at 30+3 = 33
			admit(12, 2, 27, 2, 0), // t0 = 25, ends at 27
			cancel(2, true),
			refuse(12, 3, 26, 2, errUnsched),
		}},
		{"running job whose estimate runs into its kill blocks until the kill+restart", 1, withKill, []step{
			admit(0, 1, 20, 15, 0),
			next(10, 0, 1),         // start+C = 25, but killed at 20+3 = 23: t0 = 23+7 = 30
			admit(12, 2, 32, 2, 0), // ends at 32
			cancel(2, true),
			refuse(12, 3, 31, 2, errUnsched),
		}},
		{"estimate beyond deadline+grace+restart is cut at the kill", 1, Config{BestEffortCap: 100, Grace: 1, RestartCost: 2}, []step{
			admit(0, 1, 20, 15, 0),
			next(10, 0, 1),         // start+C = 25, kill bound 23
			admit(12, 2, 25, 2, 0), // t0 = 23
			refuse(12, 3, 25, 1, errUnsched),
		}},
		{"running job past its kill bound is killed now, then restarted", 1, withKill, []step{
			admit(0, 1, 50, 10, 0),
			next(0, 0, 1),
			// 50+3 = 53 < 61 but no Remove yet: killed now, restarted until 68.
			admit(61, 2, 69, 1, 0),
			refuse(61, 3, 68, 1, errUnsched),
			remove(61, 0, 1, true),
			blockedAt(0, 68),
			next(61, 0, 0), // no lane
			laneUp(0),
			next(62, 0, 2),
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

// TestLanes scripts the preemptive model: preemption and its cost, the
// lane limit, pinning, unverified jobs, best effort, kills and lost lanes.
func TestLanes(t *testing.T) {
	lanes := func(n int, pc, rc int64) Config {
		return Config{Lanes: n, BestEffortCap: 1000, Grace: -1, RestartCost: rc, PreemptCost: pc, Quantum: -1}
	}
	unverified := func(id uint64, deadline int64) Job {
		return Job{ID: id, Deadline: deadline, Estimate: 1, Unverified: true}
	}
	tests := []struct {
		name  string
		cores int
		cfg   Config
		steps []step
	}{
		{"a short urgent job preempts a long one: both on time", 1, lanes(3, 5, -1), []step{
			admit(0, 1, 300, 100, 0),
			next(0, 0, 1),
			admit(10, 2, 40, 10, 0), // ends 10+5+10 = 25; 1 then at 115
			nextA(10, 0, act{run: 2, stop: 1}),
			pinned(0, false),
			admit(11, 3, 30, 3, 0), // nested: ends 11+5+3 = 19; 2 at 29, 1 at 119
			nextA(11, 0, act{run: 3, stop: 2}),
			done(19, 0, 3),
			nextA(19, 0, act{run: 2, resume: true, used: 1}),
			done(29, 0, 2),
			nextA(29, 0, act{run: 1, resume: true, used: 10}),
			done(119, 0, 1),
			next(119, 0, 0),
		}},
		{"one lane: the same urgent job is refused", 1, lanes(1, 5, -1), []step{
			admit(0, 1, 300, 100, 0),
			next(0, 0, 1),
			refuse(10, 2, 40, 10, errUnsched), // 1 ends at 100
			admit(10, 3, 115, 10, 0),          // waits: ends 110
			pinned(0, true),
			next(10, 0, 0),
		}},
		{"lane limit: a third nested urgent job waits, if it fits waiting", 1, lanes(2, 2, -1), []step{
			admit(0, 1, 1000, 100, 0),
			next(0, 0, 1),
			admit(10, 2, 200, 50, 0), // ends 10+2+50 = 62
			nextA(10, 0, act{run: 2, stop: 1}),
			// No lane: it could preempt 2 (ending 32, 2 at 74), but it
			// waits for 2's end and would end at 72.
			refuse(20, 3, 70, 10, errUnsched),
			admit(20, 4, 72, 10, 0),
			pinned(0, true),
			next(20, 0, 0),
			admit(20, 5, 1000, 1, 0), // after 1 (equal deadlines, larger ID)
			done(62, 0, 2),
			next(62, 0, 4), // on 2's lane
			done(72, 0, 4),
			nextA(72, 0, act{run: 1, resume: true, used: 10}),
		}},
		{"three lanes: the same third job preempts", 1, lanes(3, 2, -1), []step{
			admit(0, 1, 1000, 100, 0),
			next(0, 0, 1),
			admit(10, 2, 200, 50, 0),
			nextA(10, 0, act{run: 2, stop: 1}),
			admit(20, 3, 70, 10, 0), // ends 32, 2 at 74
			nextA(20, 0, act{run: 3, stop: 2}),
			admit(21, 4, 60, 1, 0), // no fourth lane: waits for 3, ends 33
			next(21, 0, 0),
			pinned(0, true),
		}},
		{"a preemption whose cost makes the preempted job late: refused, or admitted to wait", 1, lanes(2, 5, -1), []step{
			admit(0, 1, 13, 10, 0),
			next(0, 0, 1),                    // ends at 10, 3 to spare
			refuse(1, 2, 9, 2, errUnsched),   // preempting: ends 8, but 1 at 17; waiting: 12
			admit(1, 3, 12, 2, 0),            // preempting, 1 at 17; waiting, ends 12: pinned
			pinned(0, true),                  //
			next(1, 0, 0),                    // 1 keeps running
			refuse(2, 4, 11, 1, errUnsched),  // pinned: waits; then 3 at 13
			admit(2, 5, 40, 1, 0),            // after 1 anyway: no preemption
			done(10, 0, 1),                   //
			next(10, 0, 3),                   //
			pinned(0, false),                 //
			admit(10, 6, 25, 10, 0),          // no preemption (later than 3): 12, 22
			refuse(11, 7, 22, 4, errUnsched), // before 6, after 3: 12..16, 6 at 26
		}},
		{"preempting a job pushes it into its kill", 1, Config{Lanes: 2, BestEffortCap: 1000, Grace: 1, RestartCost: 50, PreemptCost: -1, Quantum: -1}, []step{
			admit(0, 1, 20, 10, 0),
			next(5, 0, 1), // started late: ends at 15, killed at 21
			// Preempting at 6, 2 ends at 13 and 1 would end at 22, past its
			// kill: refused, though waiting would not do either.
			refuse(6, 2, 13, 6, errUnsched),
			admit(6, 3, 14, 3, 0), // preempting: 9, then 1 at 18 <= 20
			nextA(6, 0, act{run: 3, stop: 1}),
		}},
		{"unverified: admitted where it delays nobody past a deadline, never for its own", 1, lanes(1, -1, -1), []step{
			admit(0, 1, 100, 10, 0),
			next(0, 0, 1),
			admitJ(0, unverified(2, 50), 0),           // runs 10..60 for the others, past its own deadline
			admit(0, 3, 70, 5, 0),                     // 60..65
			refuse(0, 4, 55, 5, errUnsched),           // after 2: 65
			refuseJ(0, unverified(5, 60), errUnsched), // 60..120: 3 at 125
			admitJ(0, unverified(6, 200), 0),          // after everyone
			refuseJ(5, Job{ID: 7, Deadline: 5, Unverified: true}, ErrInvalidDeadline),
			refuseJ(0, Job{ID: 7, Deadline: 10, LateCap: -1, Unverified: true}, ErrInvalidDeadline),
		}},
		{"unverified: its claim is ignored", 2, lanes(1, -1, -1), []step{
			admitJ(0, Job{ID: 1, Deadline: 10, Unverified: true}, 0),
			admitJ(0, Job{ID: 2, Deadline: 10, Estimate: 1000, Unverified: true}, 1),
			admitJ(0, Job{ID: 3, Deadline: 20, Estimate: -5, Unverified: true}, 0),
			admit(0, 4, 15, 5, 1),            // 1 and 2 hold their cores until 10; 3 is unchecked
			refuse(0, 5, 21, 10, errUnsched), // core 0: 1, 3 until 30; core 1: 2, 4 until 15
			admit(0, 6, 25, 10, 1),
		}},
		{"unverified: its kill and its lane's restart delay the jobs after it", 1, lanes(1, -1, 7), []step{
			admit(0, 1, 100, 1, 0),
			next(0, 0, 1),                             // ends at 1
			admit(0, 2, 36, 10, 0),                    // 1..11
			refuseJ(0, unverified(3, 20), errUnsched), // 1..28 (killed at 20, restarted until 27), 2 at 38
		}},
		{"unverified: killed, restarted, the job after it on time", 1, lanes(1, -1, 7), []step{
			admit(0, 1, 100, 1, 0),
			next(0, 0, 1),
			admit(0, 2, 38, 10, 0),
			admitJ(0, unverified(3, 20), 0), // 1..28, then 2 at 38
			done(1, 0, 1),
			next(1, 0, 3),
			remove(20, 0, 3, true), // killed at its deadline
			blockedAt(0, 27),
			next(20, 0, 0),
			laneUp(0),
			next(27, 0, 2),
			done(37, 0, 2),
		}},
		{"unverified running: its kill, then the restart", 1, lanes(1, -1, 7), []step{
			admitJ(0, unverified(1, 50), 0),
			next(0, 0, 1),
			refuse(0, 2, 60, 5, errUnsched), // 50+7 = 57, ends 62
			admit(0, 3, 62, 5, 0),
			refuseJ(0, Job{ID: 4, Deadline: 0 - 1 + 1, Unverified: true}, nil), // best effort: FIFO
		}},
		{"best effort is preempted at once when a lane is free", 1, lanes(2, 3, -1), []step{
			admitJ(0, Job{ID: 1, Estimate: 50}, -1),
			next(0, 0, 1),
			admit(5, 2, 30, 10, 0), // 5+3+10 = 18
			nextA(5, 0, act{run: 2, stop: 1}),
			done(18, 0, 2),
			nextA(18, 0, act{run: 1, resume: true, used: 5}),
		}},
		{"best effort with one lane: deadline work waits for it", 1, lanes(1, 3, -1), []step{
			admitJ(0, Job{ID: 1, Estimate: 50}, -1),
			next(0, 0, 1),
			refuse(5, 2, 59, 10, errUnsched),
			admit(5, 3, 60, 10, 0),
			pinned(0, true),
			next(5, 0, 0),
			done(50, 0, 1),
			next(50, 0, 3),
		}},
		{"best effort: round robin among the started ones, new ones from the FIFO while allowed", 1,
			Config{Lanes: 3, BestEffortCap: 1000, Grace: -1, RestartCost: 7, PreemptCost: -1, Quantum: 10}, []step{
				admitJ(0, Job{ID: 1, Estimate: 100}, -1),
				admitJ(0, Job{ID: 2, Estimate: 100}, -1),
				admitJ(0, Job{ID: 3, Estimate: 100}, -1),
				nextA(0, 0, act{run: 1, recheck: 10}),
				nextA(5, 0, act{recheck: 10}),
				nextA(10, 0, act{run: 2, stop: 1, recheck: 20}), // from the FIFO: 2 of Lanes-1 started
				nextA(20, 0, act{run: 1, stop: 2, resume: true, used: 10, recheck: 30}),
				nextA(30, 0, act{run: 2, stop: 1, resume: true, used: 10, recheck: 40}),
				done(35, 0, 2),
				nextA(35, 0, act{run: 3, recheck: 45}),
				nextA(45, 0, act{run: 1, stop: 3, resume: true, used: 20, recheck: 55}),
				admit(47, 9, 100, 5, 0), // a deadline job preempts at once
				nextA(47, 0, act{run: 9, stop: 1}),
				done(52, 0, 9),
				nextA(52, 0, act{run: 3, resume: true, used: 10, recheck: 62}),
				laneDown(53, 0), // no lane free now: rotation needs none
				lanesAre(0, 2),
				blockedAt(0, 60),
				nextA(53, 0, act{recheck: 62}),
				nextA(62, 0, act{run: 1, stop: 3, resume: true, used: 22, recheck: 72}),
				admit(63, 10, 200, 5, 0), // no lane to preempt: waits, pinned
				pinned(0, true),
				nextA(72, 0, act{}), // pinned: no rotation either
				laneUp(0),
				nextA(73, 0, act{}),
				done(80, 0, 1),
				next(80, 0, 10),
			}},
		{"best effort: a cancelled job no longer pins it", 1,
			Config{Lanes: 3, BestEffortCap: 1000, Grace: -1, RestartCost: -1, PreemptCost: 100, Quantum: 10}, []step{
				admitJ(0, Job{ID: 1, Estimate: 20}, -1),
				nextA(0, 0, act{run: 1}),
				admitJ(0, Job{ID: 2, Estimate: 20}, -1),
				nextA(0, 0, act{recheck: 10}),
				admit(1, 5, 40, 10, 0), // preempting would end at 111: waits for 1 (ends 20), pinned
				pinned(0, true),
				nextA(1, 0, act{}),
				cancel(5, true),
				nextA(10, 0, act{run: 2, stop: 1, recheck: 20}),
			}},
		{"best effort: no round robin without a quantum, nor with fewer than three lanes", 2,
			Config{Lanes: 3, BestEffortCap: 1000, Grace: -1, RestartCost: -1, PreemptCost: -1, Quantum: -1}, []step{
				admitJ(0, Job{ID: 1, Estimate: 100}, -1),
				admitJ(0, Job{ID: 2, Estimate: 100}, -1),
				nextA(0, 0, act{run: 1}),
				nextA(50, 0, act{}),
				setLanes(1, 2), // one best-effort job at most
				nextA(50, 1, act{run: 2}),
				admitJ(50, Job{ID: 3, Estimate: 100}, -1),
				nextA(60, 1, act{}),
				nextA(60, 0, act{}), // Lanes-1 = 2 started, but no quantum: 1 runs on
			}},
		{"remove: with a lane free the next job starts at once, without one the core is blocked", 1, lanes(2, -1, 7), []step{
			admit(0, 1, 20, 10, 0),
			next(0, 0, 1),
			admit(0, 2, 40, 10, 0), // waits: 10..20
			remove(5, 0, 1, true),  // killed: one lane left, and free
			lanesAre(0, 1),
			blockedAt(0, 0),
			next(5, 0, 2),
			admit(5, 3, 25, 10, 0), // no lane to preempt: 15..25, no restart counted
			pinned(0, true),
			remove(6, 0, 2, true), // no lane left
			lanesAre(0, 0),
			blockedAt(0, 13),
			next(6, 0, 0),
			refuse(6, 4, 23, 3, errUnsched), // 13..16, then 3 at 26
			admit(6, 5, 24, 1, 0),
			remove(6, 0, 2, false),
			laneUp(0),
			blockedAt(0, 0),
			next(13, 0, 5),
			laneUp(0),
			lanesAre(0, 2),
			laneUp(0), // at most Config.Lanes
			lanesAre(0, 2),
		}},
		{"expired queued jobs come back in Action.Expired", 1, lanes(1, -1, -1), []step{
			admit(0, 1, 100, 50, 0),
			next(0, 0, 1),
			admit(0, 2, 60, 10, 0),
			admitJ(0, Job{ID: 3, Deadline: 70, Estimate: 5, LateCap: 20}, 0),
			admitJ(0, unverified(4, 72), 0), // 65..137
			admit(0, 5, 200, 5, 0),
			done(75, 0, 1),                                  // overran
			nextA(75, 0, act{run: 3, expired: []uint64{2}}), // 3 may still run until 90
			done(80, 0, 3),
			nextA(80, 0, act{run: 5, expired: []uint64{4}}),
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
	for _, id := range []uint64{9, 2, 7, 4, 1} {
		if _, err := s.Admit(0, Job{ID: id, Deadline: 1000, Estimate: 1}); err != nil {
			t.Fatalf("Admit(%d): %v", id, err)
		}
	}
	var got []uint64
	for {
		a := s.Next(0, 0)
		if a.Run.ID == 0 {
			break
		}
		got = append(got, a.Run.ID)
		s.Done(0, 0)
	}
	if want := []uint64{1, 2, 4, 7, 9}; !slices.Equal(got, want) {
		t.Fatalf("run order: got %v, want %v", got, want)
	}
}

// stateGen builds random scheduler states the way the supervisor drives a
// scheduler: every event on a core is followed by Next on it. Time passes
// between events without regard to the plans, so running jobs overrun
// their estimates, queues go late, caps and kills pass unnoticed.
type stateGen struct {
	rng   *rand.Rand
	s     *Scheduler
	now   int64
	id    uint64
	maxC  int64
	slack int64
}

// job returns a random deadline job released at g.now: verified, allowed
// to finish late, or unverified with a random claim.
func (g *stateGen) job() Job {
	g.id++
	c := 1 + g.rng.Int64N(g.maxC)
	j := Job{ID: g.id, Estimate: c, Deadline: g.now + c + 1 + g.rng.Int64N(g.slack)}
	switch g.rng.IntN(6) {
	case 0:
		j.Unverified = true
		j.Estimate = g.rng.Int64N(2 * g.maxC) // a claim, ignored
		j.Deadline = g.now + 1 + g.rng.Int64N(g.slack)
	case 1:
		j.LateCap = g.rng.Int64N(20)
	}
	return j
}

// started returns a random started job of core c, if any.
func (g *stateGen) started(c int) (uint64, bool) {
	cc := &g.s.cores[c]
	var all []uint64
	if cc.busy {
		all = append(all, cc.run.ID)
	}
	for _, p := range cc.stack {
		all = append(all, p.job.ID)
	}
	for _, p := range cc.be {
		all = append(all, p.job.ID)
	}
	if len(all) == 0 {
		return 0, false
	}
	return all[g.rng.IntN(len(all))], true
}

func (g *stateGen) next(c int) { g.s.Next(c, g.now) }

func (g *stateGen) nextAll() {
	for c := range g.s.cores {
		g.next(c)
	}
}

// step makes one random event happen.
func (g *stateGen) step() {
	s, rng := g.s, g.rng
	c := rng.IntN(len(s.cores))
	switch r := rng.IntN(100); {
	case r < 30:
		if core, err := s.Admit(g.now, g.job()); err == nil {
			g.next(core)
		}
	case r < 38:
		g.id++
		j := Job{ID: g.id, Estimate: 1 + rng.Int64N(2*s.cfg.BestEffortCap)}
		if _, err := s.Admit(g.now, j); err == nil {
			g.nextAll()
		}
	case r < 53:
		g.now += rng.Int64N(6)
	case r < 65:
		if _, ok := s.Done(c, g.now); ok {
			g.next(c)
		}
	case r < 71:
		if id, ok := g.started(c); ok {
			s.Remove(c, id, g.now)
			g.next(c)
		}
	case r < 75:
		s.LaneDown(c, g.now)
		g.next(c)
	case r < 81:
		s.LaneUp(c)
		g.next(c)
	case r < 89:
		g.next(c)
	case r < 93:
		s.Cancel(uint64(1 + rng.IntN(int(g.id)+1)))
	case r < 96:
		s.SetAvailable(c, s.cores[c].off)
	case r < 98:
		s.SetLanes(c, rng.IntN(s.cfg.Lanes+1))
		g.next(c)
	default:
		s.Drain(c)
		g.nextAll()
	}
}

// exactnessConfigs are the settings TestExactness draws from.
func exactnessConfigs() []Config {
	var out []Config
	for lanes := 1; lanes <= 4; lanes++ {
		out = append(out,
			Config{Lanes: lanes, BestEffortCap: 100, Grace: -1, RestartCost: -1, PreemptCost: -1, Quantum: -1},
			Config{Lanes: lanes, BestEffortCap: 30, Grace: 2, RestartCost: 5, PreemptCost: 3, Quantum: 4, TailCost: 2},
			Config{Lanes: lanes, BestEffortCap: 7, Grace: -1, RestartCost: 3, PreemptCost: 1, Quantum: 2, MaxQueue: 4},
		)
	}
	return out
}

// TestExactness compares Admit with the brute force on random states, with
// one to four lanes: preemption and its cost, nested stopped jobs, the lane
// limit, unverified jobs and jobs allowed to finish late, best-effort jobs
// running or stopped, pinned cores, cores after kills and lost lanes, late
// queues. Where Admit admits, Next must preempt exactly when the oracle's
// plan does.
func TestExactness(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cfgs := exactnessConfigs()
	rounds := 4000
	if testing.Short() {
		rounds = 500
	}
	var n struct {
		admitted, refused, preempt, unverified, lateCores                 int
		stopped, stoppedBE, pinned, blocked, lostLane, runningBE, overrun int
	}
	for round := range rounds {
		cfg := cfgs[round%len(cfgs)]
		cores := 1 + rng.IntN(3)
		g := &stateGen{rng: rng, s: mustNew(t, cores, cfg), maxC: 10, slack: 60}
		for range rng.IntN(40) {
			g.step()
			checkInvariants(t, g.s)
		}
		s := g.s
		now := g.now + rng.Int64N(20) // may push running jobs past estimates, caps, kills
		snaps := snapshot(s, now)
		for i, cs := range snaps {
			c := &s.cores[i]
			switch {
			case len(cs.stack) > 0:
				n.stopped++
			case len(cs.be) > 0:
				n.stoppedBE++
			case cs.pinned:
				n.pinned++
			case !cs.busy && c.free() <= 0 && cs.blocked > now:
				n.blocked++
			case cs.lanes < cfg.Lanes:
				n.lostLane++
			case cs.busy && cs.run.job.Deadline == 0:
				n.runningBE++
			case cs.busy && cs.run.used > cs.run.job.Estimate:
				n.overrun++
			}
			if ok, _, _, _ := oracleFit(s.cfg, cs, Job{ID: 1 << 40, Deadline: 1 << 40, Estimate: 1}); !ok && len(cs.queued)+len(cs.stack) < s.cfg.MaxQueue {
				n.lateCores++
			}
		}
		for range 20 {
			g.now = now
			j := g.job()
			j.ID = 1<<32 + uint64(rng.IntN(100))
			want, preempt, feasible := oracleChoice(s.cfg, snaps, j)
			c2 := clone(s)
			core, err := c2.Admit(now, j)
			var u *Unschedulable
			switch {
			case err == nil:
				if core != want || !feasible[core] {
					t.Fatalf("round %d: Admit(%d, %+v): got core %d, want %d (feasible %v; cores %v)", round, now, j, core, want, feasible, snaps)
				}
				busy := c2.cores[core].busy
				running := c2.cores[core].run
				a := c2.Next(core, now)
				if got := busy && a.Stop.ID == running.ID && a.Run.ID == j.ID; got != preempt {
					t.Fatalf("round %d: Admit(%d, %+v) on core %d, then Next: got %+v, want preempt %v (core %v)", round, now, j, core, a, preempt, snaps[core])
				}
				checkDispatched(t, c2, core)
				n.admitted++
				if preempt {
					n.preempt++
				}
				if j.Unverified {
					n.unverified++
				}
			case errors.As(err, &u):
				if want >= 0 {
					t.Fatalf("round %d: Admit(%d, %+v): got %v, want core %d (preempt %v; cores %v)", round, now, j, err, want, preempt, snaps)
				}
				n.refused++
			default:
				if valid(now, j) {
					t.Fatalf("round %d: Admit(%d, %+v): %v", round, now, j, err)
				}
			}
			checkInvariants(t, c2)
		}
	}
	t.Logf("%+v", n)
	for name, v := range map[string]int{"admitted": n.admitted, "refused": n.refused, "preempting": n.preempt,
		"unverified": n.unverified, "late cores": n.lateCores, "stopped": n.stopped, "stopped best effort": n.stoppedBE,
		"pinned": n.pinned, "blocked": n.blocked, "lost lane": n.lostLane, "running best effort": n.runningBE, "overrun": n.overrun} {
		if v == 0 {
			t.Errorf("no %s case", name)
		}
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
		// The hint counts a late queued job as taking its estimate, but in
		// the plan run below it is killed and its lane restarted.
		if slices.ContainsFunc(s.Stats(now).Cores, func(c CoreStats) bool { return c.Available && c.Slack < 0 }) {
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
		// timeline says, back to back: the estimate, or until its kill,
		// then Remove and the lane back after RestartCost.
		for ci := range s.cores {
			cur := now
			for {
				if _, _, busy := s.Running(ci); !busy {
					if a := s.Next(ci, cur); a.Run.ID == 0 {
						break
					}
				}
				r, _, _ := s.Running(ci)
				end, kill := s.runEnd(&s.cores[ci], cur, cur)
				if end > at {
					break
				}
				if !kill {
					s.Done(ci, end)
					cur = end
					continue
				}
				s.Remove(ci, r.ID, end)
				if cur = end + s.cfg.RestartCost; cur > at {
					break
				}
				s.LaneUp(ci)
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
	snaps := snapshot(s, 0)
	for i := range 300 {
		c := 1 + rng.Int64N(30)
		j := Job{ID: uint64(n + 1 + i), Deadline: c + 1 + rng.Int64N(total+400), Estimate: c}
		want, _, _ := oracleChoice(s.cfg, snaps, j)
		got, err := s.Admit(0, j)
		if err == nil && !s.Cancel(j.ID) {
			t.Fatalf("Cancel(%d) after Admit: got false", j.ID)
		}
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
	got, started := s.Drain(0)
	if len(started) != 0 {
		t.Fatalf("Drain: got started %v, want none", started)
	}
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
	run0 := s.Next(0, 0).Run
	before := snapshot(s, 0)
	drained, started := s.Drain(0)
	if _, _, busy := s.Running(0); busy {
		t.Fatalf("Running(0) after Drain: got busy, want idle")
	}
	if !slices.Equal(drained, before[0].queued) || !slices.Equal(started, []Job{run0}) {
		t.Fatalf("Drain(0): got %v, %v, want %v, %v", drained, started, before[0].queued, []Job{run0})
	}
	if q, st := s.Drain(0); q != nil || st != nil {
		t.Fatalf("second Drain(0): got %v, %v, want nil, nil", q, st)
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

// TestDrainStarted drains a core with stopped jobs: the queued jobs come
// back in EDF order, the started ones running first, then the stopped
// deadline jobs from the top of the stack, then the stopped best-effort
// ones; Cancel never takes a started job; Stats count it all.
func TestDrainStarted(t *testing.T) {
	s := mustNew(t, 2, Config{Lanes: 4, BestEffortCap: 1000, Grace: -1, RestartCost: 5, PreemptCost: -1, Quantum: 10})
	must := func(core int, err error) {
		t.Helper()
		if err != nil || core != 0 {
			t.Fatalf("Admit: got core %d, %v, want core 0", core, err)
		}
	}
	s.SetAvailable(1, false)
	s.Admit(0, Job{ID: 1, Estimate: 500}) // best effort
	s.Next(0, 0)
	must(s.Admit(1, Job{ID: 2, Deadline: 1000, Estimate: 100})) // preempts 1
	s.Next(0, 1)
	must(s.Admit(2, Job{ID: 3, Deadline: 500, Estimate: 100})) // preempts 2
	s.Next(0, 2)
	must(s.Admit(3, Job{ID: 4, Deadline: 300, Estimate: 100})) // preempts 3
	s.Next(0, 3)
	must(s.Admit(4, Job{ID: 5, Deadline: 2000, Estimate: 100})) // queued
	must(s.Admit(4, Job{ID: 6, Deadline: 250, Estimate: 10}))   // no lane left: waits for 4
	if a := s.Next(0, 4); a.Run.ID != 0 {
		t.Fatalf("Next(0, 4) with no lane free: got %+v", a)
	}
	checkInvariants(t, s)
	for _, id := range []uint64{1, 2, 3, 4} {
		if s.Cancel(id) {
			t.Fatalf("Cancel(%d) of a started job: got true", id)
		}
	}
	s.LaneDown(0, 4) // no idle lane: nothing happens
	s.SetLanes(0, 2) // no fewer than the started jobs
	st := s.Stats(4).Cores[0]
	if st.Lanes != 4 || st.Stopped != 3 || !st.Running || st.RunningID != 4 || st.Queued != 2 || st.Preemptions != 3 {
		t.Fatalf("Stats: got %+v, want 4 lanes, 3 stopped, 4 running, 2 queued, 3 preemptions", st)
	}
	// 4 runs to 103; then 6, the rests of 3 and 2 (1 ran each), and 5; 1
	// only after the deadline work.
	if want := int64(103 - 4 + 10 + 99 + 99 + 100); st.Backlog != want {
		t.Fatalf("Stats: got backlog %d, want %d", st.Backlog, want)
	}
	queued, started := s.Drain(0)
	if got, want := ids(queued), []uint64{6, 5}; !slices.Equal(got, want) {
		t.Fatalf("Drain: got queued %v, want %v", got, want)
	}
	if got, want := ids(started), []uint64{4, 3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("Drain: got started %v, want %v", got, want)
	}
	checkInvariants(t, s)
	if len(s.index) != 0 {
		t.Fatalf("index after Drain: %v", s.index)
	}
	if st := s.Stats(4).Cores[0]; st.Stopped != 0 || st.Running || st.Queued != 0 || st.Drained != 2 {
		t.Fatalf("Stats after Drain: got %+v", st)
	}
}

// TestRemoveStopped kills stopped jobs: a deadline one (its rest leaves
// the plan) and a best-effort one, and checks the lanes.
func TestRemoveStopped(t *testing.T) {
	run(t, mustNew(t, 1, Config{Lanes: 3, BestEffortCap: 1000, Grace: -1, RestartCost: 5, PreemptCost: -1, Quantum: -1}), []step{
		admitJ(0, Job{ID: 1, Estimate: 500}, -1),
		next(0, 0, 1),
		admit(1, 2, 160, 100, 0),
		nextA(1, 0, act{run: 2, stop: 1}),
		admit(2, 3, 50, 10, 0),
		nextA(2, 0, act{run: 3, stop: 2}),
		refuse(3, 4, 150, 50, errUnsched), // no lane: 3 until 12, 4 until 62, 2 until 161
		remove(3, 0, 2, true),             // 2 killed while stopped
		lanesAre(0, 2),
		blockedAt(0, 8), // no lane free: 3 runs, 1 stopped
		nextA(3, 0, act{}),
		admit(3, 4, 150, 50, 0), // 3 until 12, 4 until 62
		remove(4, 0, 1, true),   // the stopped best-effort job
		lanesAre(0, 1),
		done(12, 0, 3),
		next(12, 0, 4), // on 3's lane
		laneUp(0),
		laneUp(0),
		lanesAre(0, 3),
	})
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
			RestartCost: DefaultRestartCost, MaxBestEffort: DefaultMaxBestEffort, MaxQueue: DefaultMaxQueue,
			Lanes: DefaultLanes, PreemptCost: DefaultPreemptCost, Quantum: DefaultQuantum}},
		{"negative means none", 2, Config{Grace: -1, RestartCost: -5, PreemptCost: -1, Quantum: -1}, true,
			Config{BestEffortCap: DefaultBestEffortCap, MaxBestEffort: DefaultMaxBestEffort, MaxQueue: DefaultMaxQueue, Lanes: 1}},
		{"explicit", 1, Config{BestEffortCap: 5, Grace: 6, RestartCost: 7, MaxBestEffort: 8, MaxQueue: 9, Lanes: 3, PreemptCost: 10, Quantum: 11}, true,
			Config{BestEffortCap: 5, Grace: 6, RestartCost: 7, MaxBestEffort: 8, MaxQueue: 9, Lanes: 3, PreemptCost: 10, Quantum: 11}},
		{"most lanes", 1, Config{Lanes: MaxLanes, PreemptCost: 1, Quantum: 1}, true, Config{BestEffortCap: DefaultBestEffortCap,
			Grace: DefaultGrace, RestartCost: DefaultRestartCost, MaxBestEffort: DefaultMaxBestEffort, MaxQueue: DefaultMaxQueue,
			Lanes: MaxLanes, PreemptCost: 1, Quantum: 1}},
		{"no cores", 0, Config{}, false, Config{}},
		{"negative cap", 1, Config{BestEffortCap: -1}, false, Config{}},
		{"negative fifo", 1, Config{MaxBestEffort: -1}, false, Config{}},
		{"negative queue", 1, Config{MaxQueue: -1}, false, Config{}},
		{"negative lanes", 1, Config{Lanes: -1}, false, Config{}},
		{"too many lanes", 1, Config{Lanes: MaxLanes + 1}, false, Config{}},
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
