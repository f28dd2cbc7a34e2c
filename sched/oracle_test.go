package sched

import (
	"cmp"
	"math"
	"slices"
	"testing"
)

// This file holds the brute-force reference the tests compare the scheduler
// with. It shares no code with admission.go or edf.go: it sorts and replays.

// coreSnap is what the oracle needs of one core.
type coreSnap struct {
	off    bool
	busy   bool
	run    Job
	start  int64
	queued []Job
}

// snapshot copies the state of every core of s.
func snapshot(s *Scheduler) []coreSnap {
	out := make([]coreSnap, len(s.cores))
	for i := range s.cores {
		c := &s.cores[i]
		out[i] = coreSnap{off: c.off, busy: c.busy, run: c.run, start: c.start, queued: c.q.appendJobs(nil)}
	}
	return out
}

// oracleFree is the documented timeline start, written out case by case.
func oracleFree(cfg Config, now int64, cs coreSnap) int64 {
	if !cs.busy {
		return now
	}
	elapsed := now - cs.start
	kill := cs.run.Deadline + cs.run.LateCap + cfg.Grace + cfg.RestartCost
	if cs.run.Deadline == 0 {
		kill = cs.start + cfg.BestEffortCap + cfg.Grace + cfg.RestartCost
	}
	var end int64
	switch {
	case cs.run.Deadline == 0 && cs.run.Estimate >= cfg.BestEffortCap:
		end = kill // unknown: it may run into the cap
	case elapsed > cs.run.Estimate:
		end = kill
	case cs.start+cs.run.Estimate > kill:
		end = kill
	default:
		end = cs.start + cs.run.Estimate
	}
	if end < now {
		return now
	}
	return end
}

func edfCmp(a, b Job) int {
	if c := cmp.Compare(a.Deadline, b.Deadline); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// oracleFit replays cs's queue plus j in EDF order from the timeline start
// and reports whether every job is on time, the minimum slack, and when the
// queue without j ends.
func oracleFit(cfg Config, now int64, cs coreSnap, j Job) (ok bool, slack, idle int64) {
	if len(cs.queued) >= cfg.MaxQueue {
		return false, 0, 0
	}
	idle = oracleFree(cfg, now, cs)
	for _, x := range cs.queued {
		idle += x.Estimate
	}
	jobs := append(slices.Clone(cs.queued), j)
	slices.SortFunc(jobs, edfCmp)
	t := oracleFree(cfg, now, cs)
	slack = math.MaxInt64
	for _, x := range jobs {
		t += x.Estimate
		if t > x.Deadline {
			return false, 0, 0
		}
		slack = min(slack, x.Deadline-t)
	}
	return true, slack, idle
}

// oracleChoice returns the core Admit must choose for j (-1: none) and
// whether each core is feasible.
func oracleChoice(cfg Config, now int64, snaps []coreSnap, j Job) (best int, feasible []bool) {
	best = -1
	var bestSlack, bestIdle int64
	feasible = make([]bool, len(snaps))
	for i, cs := range snaps {
		if cs.off {
			continue
		}
		ok, slack, idle := oracleFit(cfg, now, cs, j)
		feasible[i] = ok
		if !ok {
			continue
		}
		if best < 0 || slack > bestSlack || (slack == bestSlack && idle < bestIdle) {
			best, bestSlack, bestIdle = i, slack, idle
		}
	}
	return best, feasible
}

// checkInvariants recomputes every derived field of s from scratch.
func checkInvariants(t *testing.T, s *Scheduler) {
	t.Helper()
	seen := 0
	for ci := range s.cores {
		c := &s.cores[ci]
		jobs := checkTree(t, ci, &c.q)
		for i, j := range jobs {
			if i > 0 && edfCmp(jobs[i-1], j) >= 0 {
				t.Fatalf("core %d: jobs %d and %d out of EDF order: %+v, %+v", ci, i-1, i, jobs[i-1], j)
			}
			at, ok := s.index[j.ID]
			if !ok || at.core != ci || at.deadline != j.Deadline {
				t.Fatalf("core %d: index of queued job %d: got %+v (%v), want core %d", ci, j.ID, at, ok, ci)
			}
			seen++
		}
		if c.busy {
			if at, ok := s.index[c.run.ID]; !ok || at.core != ci {
				t.Fatalf("core %d: index of running job %d: got %+v (%v), want core %d", ci, c.run.ID, at, ok, ci)
			}
			seen++
		}
	}
	for _, j := range s.be.buf[s.be.head:] {
		if at, ok := s.index[j.ID]; !ok || at.core != -1 {
			t.Fatalf("index of best-effort job %d: got %+v (%v), want core -1", j.ID, at, ok)
		}
		seen++
	}
	if seen != len(s.index) {
		t.Fatalf("index: got %d entries, want %d", len(s.index), seen)
	}
}

// checkTree checks q's treap: the nil node, heap order of the priorities,
// every aggregate recomputed by replaying the subtree, the count, and that
// every node is either reachable or free. It returns the jobs in order.
func checkTree(t *testing.T, ci int, q *queue) []Job {
	t.Helper()
	if nil0 := q.nodes[0]; nil0 != (node{mn: infinity}) {
		t.Fatalf("core %d: nil node: got %+v", ci, nil0)
	}
	var walk func(i int32) []Job
	reached := 0
	walk = func(i int32) []Job {
		if i == 0 {
			return nil
		}
		reached++
		x := q.nodes[i]
		for _, ch := range []int32{x.left, x.right} {
			if ch != 0 && q.nodes[ch].prio > x.prio {
				t.Fatalf("core %d: node %d: child %d has a higher priority", ci, i, ch)
			}
		}
		jobs := append(append(walk(x.left), x.job), walk(x.right)...)
		var sum int64
		mn := int64(infinity)
		for _, j := range jobs {
			sum += j.Estimate
			mn = min(mn, j.Deadline-sum)
		}
		if x.sum != sum || x.mn != mn {
			t.Fatalf("core %d: node %d: got sum %d mn %d, want %d %d", ci, i, x.sum, x.mn, sum, mn)
		}
		return jobs
	}
	jobs := walk(q.root)
	if q.n != len(jobs) || reached+len(q.free)+1 != len(q.nodes) {
		t.Fatalf("core %d: got n %d, %d reachable + %d free + nil of %d nodes, want n %d and all accounted for",
			ci, q.n, reached, len(q.free), len(q.nodes), len(jobs))
	}
	return jobs
}

// clone returns a deep copy of s.
func clone(s *Scheduler) *Scheduler {
	c := *s
	c.cores = slices.Clone(s.cores)
	for i := range c.cores {
		c.cores[i].q.nodes = slices.Clone(s.cores[i].q.nodes)
		c.cores[i].q.free = slices.Clone(s.cores[i].q.free)
	}
	c.be.buf = slices.Clone(s.be.buf)
	c.index = make(map[uint64]loc, len(s.index))
	for k, v := range s.index {
		c.index[k] = v
	}
	return &c
}

// mustNew returns New(cores, cfg) or fails the test.
func mustNew(t testing.TB, cores int, cfg Config) *Scheduler {
	t.Helper()
	s, err := New(cores, cfg)
	if err != nil {
		t.Fatalf("New(%d, %+v): %v", cores, cfg, err)
	}
	return s
}

// exact is a Config without implicit kill or restart costs, so that the
// numbers in the tables are the whole story.
var exact = Config{BestEffortCap: 100, Grace: -1, RestartCost: -1}
