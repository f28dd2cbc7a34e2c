package sched

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"testing"
)

// This file holds the brute-force reference the tests compare the scheduler
// with. It shares no code with admission.go or edf.go: it copies a core's
// state and plays its future forward one job at a time, as Next would
// dispatch it, with every job taking exactly its (remaining) estimate.

// started is a started job in a snapshot: its run time so far and, for a
// stopped deadline job, the run time its core's plan gives what remains of
// it (read from the core's queue, where stop put it).
type startedJob struct {
	job       Job
	used, rem int64
}

// coreSnap is what the oracle needs of one core at time now.
type coreSnap struct {
	now     int64
	off     bool
	lanes   int
	pinned  bool
	blocked int64
	warm    int64 // warmUntil
	busy    bool
	run     startedJob   // used is its run time at now
	stack   []startedJob // stopped deadline jobs, bottom first
	be      []startedJob // stopped best-effort jobs
	queued  []Job        // never-started deadline jobs, EDF order
}

func (cs coreSnap) String() string {
	s := fmt.Sprintf("{now %d lanes %d pinned %v blocked %d off %v", cs.now, cs.lanes, cs.pinned, cs.blocked, cs.off)
	if cs.busy {
		s += fmt.Sprintf(" run %+v used %d", cs.run.job, cs.run.used)
	}
	for _, p := range cs.stack {
		s += fmt.Sprintf(" stopped %+v used %d rem %d", p.job, p.used, p.rem)
	}
	for _, p := range cs.be {
		s += fmt.Sprintf(" be %d used %d", p.job.ID, p.used)
	}
	return s + fmt.Sprintf(" queued %+v}", cs.queued)
}

// snapshot copies the state of every core of s at now.
func snapshot(s *Scheduler, now int64) []coreSnap {
	out := make([]coreSnap, len(s.cores))
	for i := range s.cores {
		c := &s.cores[i]
		cs := coreSnap{now: now, off: c.off, lanes: c.lanes, pinned: c.pinned, blocked: c.blocked, warm: c.warmUntil, busy: c.busy}
		if c.busy {
			cs.run = startedJob{job: c.run, used: c.used + now - c.runAt}
		}
		rem := map[uint64]int64{}
		stopped := map[uint64]bool{}
		for _, p := range c.stack {
			stopped[p.job.ID] = true
		}
		for _, n := range treeNodes(&c.q) {
			if stopped[n.job.ID] {
				rem[n.job.ID] = n.job.Estimate
			} else {
				cs.queued = append(cs.queued, n.job)
			}
		}
		for _, p := range c.stack {
			cs.stack = append(cs.stack, startedJob{job: p.job, used: p.used, rem: rem[p.job.ID]})
		}
		for _, p := range c.be {
			cs.be = append(cs.be, startedJob{job: p.job, used: p.used})
		}
		out[i] = cs
	}
	return out
}

// treeNodes returns the nodes of q in order, by a walk of its own.
func treeNodes(q *queue) []node {
	var out []node
	var walk func(i int32)
	walk = func(i int32) {
		if i == 0 {
			return
		}
		walk(q.nodes[i].left)
		out = append(out, q.nodes[i])
		walk(q.nodes[i].right)
	}
	walk(q.root)
	return out
}

func edfCmp(a, b Job) int {
	if c := cmp.Compare(a.Deadline, b.Deadline); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// killAt is when the supervisor has killed deadline job j at the latest.
func killAt(cfg Config, j Job) int64 { return j.Deadline + j.LateCap + cfg.Grace }

// oracleEnd returns when a started job r with run time used, running (or
// resumed) from time from, ends at the latest, and whether that end is its
// kill, written out case by case:
//
//   - best effort: killed when its run time reaches the cap, plus Grace;
//     before that, if its estimate is known (below the cap) and it is
//     within it, it ends when the rest of its estimate has run;
//   - deadline job: killed at Deadline+LateCap+Grace; before that, if it
//     is verified and within its estimate, it ends when the rest has run.
func oracleEnd(cfg Config, r Job, used, from int64) (end int64, kill bool) {
	if r.Deadline == 0 {
		capEnd := from + max(cfg.BestEffortCap-used, 0) + cfg.Grace
		if r.Estimate < cfg.BestEffortCap && used <= r.Estimate {
			return from + r.Estimate - used, false
		}
		return capEnd, true
	}
	k := killAt(cfg, r)
	if !r.Unverified && used <= r.Estimate && from+r.Estimate-used < k {
		return from + r.Estimate - used, false
	}
	return max(k, from), true
}

// checkedStarted reports whether the lateness of a started deadline job
// counts: it is verified and within its estimate.
func checkedStarted(p startedJob) bool {
	return p.job.Deadline != 0 && !p.job.Unverified && p.used <= p.job.Estimate
}

// future is the oracle's play of one core's future.
type future struct {
	cfg     Config
	t       int64
	lanes   int
	started int     // jobs holding a lane
	back    []int64 // when lost lanes come back, in any order
	ok      bool
	slack   int64
	late    []uint64 // the jobs whose deadlines are missed
}

const noSlack = math.MaxInt64 / 2 // the slack of a plan with nothing checked

// check records that a job whose deadline counts ends at end (killed: late).
func (f *future) check(j Job, end int64, killed bool) {
	if killed || end > j.Deadline {
		f.ok = false
		f.late = append(f.late, j.ID)
	}
	f.slack = min(f.slack, j.Deadline-end)
}

// lose records that a lane holding a job died at t (a kill): it is back
// after RestartCost. stall reports whether that left no lane free.
func (f *future) lose(t int64) (stall bool) {
	f.lanes--
	f.started--
	f.back = append(f.back, t+f.cfg.RestartCost)
	f.settle()
	return f.lanes-f.started <= 0
}

// settle takes back the lanes that are back by f.t.
func (f *future) settle() {
	f.back = slices.DeleteFunc(f.back, func(b int64) bool {
		if b <= f.t {
			f.lanes++
			return true
		}
		return false
	})
}

// lane waits until a lane is free and takes it.
func (f *future) lane() {
	f.settle()
	for f.lanes-f.started <= 0 {
		if len(f.back) == 0 {
			panic("oracle: no lane will ever be free")
		}
		i := 0
		for k := range f.back {
			if f.back[k] < f.back[i] {
				i = k
			}
		}
		f.t = max(f.t, f.back[i])
		f.back = slices.Delete(f.back, i, i+1)
		f.lanes++
	}
	f.started++
}

// oracleFit plays cs's future with the new deadline job j and reports
// whether every deadline that counts is met, whether j preempts, the
// minimum slack, and when the core's plan without j goes idle.
//
// If j would preempt the running job (a lane is free, the running job is
// not pinned and is best effort or later than j in EDF order), the first
// play starts j at now, charged PreemptCost; if a deadline is missed, or
// j would not preempt, j waits: the running job runs to its end and then
// everything else in EDF order.
func oracleFit(cfg Config, cs coreSnap, j Job) (ok, preempt bool, slack, idle int64) {
	if len(cs.queued)+len(cs.stack) >= cfg.MaxQueue {
		return false, false, 0, 0
	}
	_, _, idle = play(cfg, cs, nil, false)
	free := cs.lanes - len(cs.stack) - len(cs.be)
	if cs.busy {
		free--
	}
	if cs.busy && !cs.pinned && free > 0 && (cs.run.job.Deadline == 0 || edfCmp(j, cs.run.job) < 0) {
		if ok, slack, _ := play(cfg, cs, &j, true); ok {
			return true, true, slack, idle
		}
	}
	ok, slack, _ = play(cfg, cs, &j, false)
	return ok, false, slack, idle
}

// oracleEstimate returns the run time the plan gives deadline job j
// admitted at now: its estimate, or for an unverified one the time until
// its kill and the restart of its lane.
func oracleEstimate(cfg Config, now int64, j Job) int64 {
	if j.Unverified {
		return killAt(cfg, j) + cfg.RestartCost - now
	}
	return j.Estimate
}

// play plays cs's future, with j (if not nil) admitted to preempt or to
// wait, and returns whether every deadline that counts is met, the
// minimum slack, and when the last job ends.
//
// What counts: j (unless unverified), every queued verified job, every
// stopped verified job within its estimate, and the running job if j
// preempts it and it is verified and within its estimate (otherwise j
// changes nothing about it). An unverified job takes oracleEstimate; a
// stopped one the rest its core gave it when it was stopped (until its
// kill, if it was past its estimate or unverified).
//
// Lanes: a job that starts takes a free lane, waiting for one if need be;
// a resumed job needs none; a job that ends frees its lane; a kill loses
// it, and it comes back RestartCost later. When the running job's kill
// leaves no lane free, the core stalls (nothing runs, not even a stopped
// job) until its lane is back; so does an idle core that a kill left
// without a free lane (until blocked, or a RestartCost from now once that
// is past). Stopped best-effort jobs hold their
// lanes throughout.
func play(cfg Config, cs coreSnap, j *Job, preempt bool) (ok bool, slack, end int64) {
	f := playOut(cfg, cs, j, preempt)
	return f.ok, f.slack, f.t
}

// lateJobs returns the jobs of cs whose deadlines its plan misses.
func lateJobs(cfg Config, cs coreSnap) []uint64 { return playOut(cfg, cs, nil, false).late }

func playOut(cfg Config, cs coreSnap, j *Job, preempt bool) *future {
	if j == nil {
		return playOutAll(cfg, cs, nil, false)
	}
	return playOutAll(cfg, cs, []Job{*j}, preempt)
}

// playOutAll is playOut with the jobs js admitted at once (a chain's
// stages, in EDF order): with preempt, js[0] preempts the running job and
// the others are inserted like it; otherwise all of them wait.
func playOutAll(cfg Config, cs coreSnap, js []Job, preempt bool) *future {
	var j *Job
	if len(js) > 0 {
		j = &js[0]
	}
	f := &future{cfg: cfg, t: cs.now, lanes: cs.lanes, ok: true, slack: noSlack}
	f.started = len(cs.stack) + len(cs.be)
	if cs.busy {
		f.started++
	}
	type item struct {
		job     Job
		rem     int64
		used    int64 // the running job's run time
		running bool  // the running job, resumed after j
		stopped bool
		due     bool // its deadline counts
		kill    bool // its end is its kill
		fresh   bool // j: if unverified, it must start before its deadline
	}
	// Everything but the running job, in EDF order: the queued jobs come
	// sorted, the few others are inserted.
	rest := make([]item, 0, len(cs.queued)+len(cs.stack)+2)
	for _, q := range cs.queued {
		rest = append(rest, item{job: q, rem: q.Estimate, due: !q.Unverified, kill: q.Unverified})
	}
	if !slices.IsSortedFunc(rest, func(a, b item) int { return edfCmp(a.job, b.job) }) {
		panic("oracle: queued jobs out of EDF order")
	}
	insert := func(x item) {
		i, _ := slices.BinarySearchFunc(rest, x, func(a, b item) int { return edfCmp(a.job, b.job) })
		rest = slices.Insert(rest, i, x)
	}
	for _, p := range cs.stack {
		insert(item{job: p.job, rem: p.rem, stopped: true, due: checkedStarted(p), kill: !checkedStarted(p)})
	}
	if !cs.busy && f.lanes-f.started <= 0 {
		if cs.blocked > cs.now {
			f.t = max(f.t, cs.blocked) // blocked until its lane is back
		} else {
			f.t += cfg.RestartCost // overdue: assumed a restart away still
		}
		f.lanes++
	} else if !cs.busy && cs.now >= cs.warm {
		f.t += cfg.WakeCost // its lanes sleep: the CPU is woken first
	}
	switch {
	case j != nil && preempt:
		f.lane()
		if j.Unverified && f.t+cfg.PreemptCost >= j.Deadline {
			f.ok = false
		}
		f.t += oracleEstimate(cfg, cs.now, *j) + cfg.PreemptCost
		if !j.Unverified {
			f.check(*j, f.t, false)
		}
		if j.Unverified {
			f.lose(killAt(cfg, *j))
		} else {
			f.started--
		}
		if cs.run.job.Deadline != 0 {
			insert(item{job: cs.run.job, used: cs.run.used, running: true, due: checkedStarted(cs.run)})
		}
		for _, k := range js[1:] {
			insert(item{job: k, rem: oracleEstimate(cfg, cs.now, k), due: !k.Unverified, kill: k.Unverified, fresh: true})
		}
	case cs.busy:
		e, kill := oracleEnd(cfg, cs.run.job, cs.run.used, f.t)
		f.t = e
		if kill {
			if f.lose(e) {
				f.stall()
			}
		} else {
			f.started--
		}
		fallthrough
	default:
		f.t += cfg.TailCost // the slack kept for one slow hop
		for _, k := range js {
			insert(item{job: k, rem: oracleEstimate(cfg, cs.now, k), due: !k.Unverified, kill: k.Unverified, fresh: true})
		}
	}
	for _, x := range rest {
		if !x.stopped && !x.running {
			f.lane()
		}
		if x.fresh && x.job.Unverified && f.t >= x.job.Deadline {
			f.ok = false // it could not start before its deadline
		}
		var e int64
		kill := x.kill
		if x.running {
			e, kill = oracleEnd(cfg, x.job, x.used, f.t)
		} else {
			e = f.t + x.rem
		}
		if x.due {
			f.check(x.job, e, kill)
		}
		f.t = e
		if kill {
			if f.lose(min(killAt(cfg, x.job), e)) && x.running {
				f.stall()
			}
		} else {
			f.started--
		}
	}
	return f
}

// stall waits for a lane to come back.
func (f *future) stall() {
	i := 0
	for k := range f.back {
		if f.back[k] < f.back[i] {
			i = k
		}
	}
	f.t = max(f.t, f.back[i])
	f.back = slices.Delete(f.back, i, i+1)
	f.lanes++
}

// oracleChoice returns the core Admit must choose for j at now (-1: none),
// whether j preempts there, and whether each core is feasible.
func oracleChoice(cfg Config, snaps []coreSnap, j Job) (best int, preempt bool, feasible []bool) {
	return oracleChoiceBy(snaps, func(cs coreSnap) (bool, bool, int64, int64) { return oracleFit(cfg, cs, j) })
}

// oracleChoiceBy is oracleChoice with the fit test of each available core.
func oracleChoiceBy(snaps []coreSnap, fit func(coreSnap) (ok, preempt bool, slack, idle int64)) (best int, preempt bool, feasible []bool) {
	best = -1
	var bestSlack, bestIdle int64
	feasible = make([]bool, len(snaps))
	for i, cs := range snaps {
		if cs.off {
			continue
		}
		ok, pre, slack, idle := fit(cs)
		feasible[i] = ok
		if !ok {
			continue
		}
		if best < 0 || slack > bestSlack || (slack == bestSlack && idle < bestIdle) {
			best, preempt, bestSlack, bestIdle = i, pre, slack, idle
		}
	}
	return best, preempt, feasible
}

// valid reports whether Admit(now, j) gets past its argument checks.
func valid(now int64, j Job) bool {
	if j.Deadline == 0 {
		return true
	}
	if j.Unverified {
		return j.Deadline > now && j.LateCap >= 0
	}
	return j.Estimate > 0 && j.Deadline >= 0 && j.Estimate < j.Deadline-now
}

// checkInvariants recomputes every derived field of s from scratch and
// checks the structure of every core.
func checkInvariants(t testing.TB, s *Scheduler) {
	t.Helper()
	seen := 0
	for ci := range s.cores {
		c := &s.cores[ci]
		nodes := checkTree(t, ci, &c.q)
		stopped := map[uint64]paused{}
		for _, p := range c.stack {
			stopped[p.job.ID] = p
		}
		for i, n := range nodes {
			j := n.job
			if i > 0 && edfCmp(nodes[i-1].job, j) >= 0 {
				t.Fatalf("core %d: jobs %d and %d out of EDF order: %+v, %+v", ci, i-1, i, nodes[i-1].job, j)
			}
			at, ok := s.index[j.ID]
			p, isStopped := stopped[j.ID]
			if !ok || at.core != ci || at.deadline != j.Deadline || at.started != isStopped {
				t.Fatalf("core %d: index of queued job %d (stopped %v): got %+v (%v)", ci, j.ID, isStopped, at, ok)
			}
			switch {
			case isStopped && !p.job.Unverified && p.used <= p.job.Estimate:
				if j.Estimate != p.job.Estimate-p.used || n.due != j.Deadline {
					t.Fatalf("core %d: stopped job %+v used %d: queued with estimate %d due %d, want %d due %d",
						ci, p.job, p.used, j.Estimate, n.due, p.job.Estimate-p.used, j.Deadline)
				}
			case isStopped:
				if j.Estimate < 0 || n.due != infinity {
					t.Fatalf("core %d: stopped job %+v used %d past its estimate: queued with estimate %d due %d, want >= 0, unchecked",
						ci, p.job, p.used, j.Estimate, n.due)
				}
			case j.Unverified && n.due != infinity, !j.Unverified && n.due != j.Deadline:
				t.Fatalf("core %d: queued job %+v: due %d", ci, j, n.due)
			}
			seen++
		}
		if len(stopped) != len(c.stack) {
			t.Fatalf("core %d: stack %+v holds a job twice", ci, c.stack)
		}
		for i, p := range c.stack {
			if p.job.Deadline == 0 {
				t.Fatalf("core %d: best-effort job %d on the deadline stack", ci, p.job.ID)
			}
			if i > 0 && edfCmp(p.job, c.stack[i-1].job) >= 0 {
				t.Fatalf("core %d: stack %+v: deadlines do not fall towards the top", ci, c.stack)
			}
		}
		if c.busy && c.run.Deadline != 0 && len(c.stack) > 0 && edfCmp(c.run, c.stack[len(c.stack)-1].job) >= 0 {
			t.Fatalf("core %d: running %+v above the later stopped %+v", ci, c.run, c.stack[len(c.stack)-1].job)
		}
		for _, p := range c.be {
			if at, ok := s.index[p.job.ID]; !ok || at.core != ci || !at.started || p.job.Deadline != 0 {
				t.Fatalf("core %d: stopped best-effort job %+v: index %+v (%v)", ci, p.job, at, ok)
			}
			seen++
		}
		if c.busy {
			if at, ok := s.index[c.run.ID]; !ok || at.core != ci || !at.started {
				t.Fatalf("core %d: index of running job %d: got %+v (%v), want core %d", ci, c.run.ID, at, ok, ci)
			}
			seen++
		} else if c.pinned {
			t.Fatalf("core %d: idle and pinned", ci)
		}
		if n := c.started(); n > c.lanes || c.lanes > s.cfg.Lanes || c.lanes < 0 {
			t.Fatalf("core %d: %d started on %d lanes (of %d)", ci, n, c.lanes, s.cfg.Lanes)
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

// checkDispatched checks what must hold right after Next on core ci: a
// running job that could be preempted has no queued job before it, and a
// best-effort job runs only if no deadline job is queued or stopped on its
// core, or if none could take its place (no lane free, or admitted to
// wait for it).
func checkDispatched(t testing.TB, s *Scheduler, ci int) {
	t.Helper()
	c := &s.cores[ci]
	if !c.busy {
		if c.q.len() > 0 {
			h := c.q.first()
			if c.stopped(h) || c.free() > 0 {
				t.Fatalf("core %d idle after Next with %+v at the head of its queue and %d lanes free", ci, h, c.free())
			}
		}
		return
	}
	if c.q.len() == 0 || c.pinned || c.free() <= 0 {
		return
	}
	if h := c.q.first(); c.run.Deadline == 0 || (!c.stopped(h) && edfCmp(h, c.run) < 0) {
		t.Fatalf("core %d: %+v runs after Next while %+v waits with %d lanes free, not pinned", ci, c.run, h, c.free())
	}
}

// checkTree checks q's treap: the nil node, heap order of the priorities,
// every aggregate recomputed by replaying the subtree, the count, and that
// every node is either reachable or free. It returns the nodes in order.
func checkTree(t testing.TB, ci int, q *queue) []node {
	t.Helper()
	if nil0 := q.nodes[0]; nil0 != (node{mn: infinity}) {
		t.Fatalf("core %d: nil node: got %+v", ci, nil0)
	}
	var walk func(i int32) []node
	reached := 0
	walk = func(i int32) []node {
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
		nodes := append(append(walk(x.left), x), walk(x.right)...)
		var sum int64
		mn := int64(infinity)
		for _, n := range nodes {
			sum += n.job.Estimate
			if n.due != infinity {
				mn = min(mn, n.due-sum)
			}
		}
		if x.sum != sum || x.mn != mn {
			t.Fatalf("core %d: node %d: got sum %d mn %d, want %d %d", ci, i, x.sum, x.mn, sum, mn)
		}
		return nodes
	}
	nodes := walk(q.root)
	if q.n != len(nodes) || reached+len(q.free)+1 != len(q.nodes) {
		t.Fatalf("core %d: got n %d, %d reachable + %d free + nil of %d nodes, want n %d and all accounted for",
			ci, q.n, reached, len(q.free), len(q.nodes), len(nodes))
	}
	return nodes
}

// clone returns a deep copy of s.
func clone(s *Scheduler) *Scheduler {
	c := *s
	c.cores = slices.Clone(s.cores)
	for i := range c.cores {
		c.cores[i].q.nodes = slices.Clone(s.cores[i].q.nodes)
		c.cores[i].q.free = slices.Clone(s.cores[i].q.free)
		c.cores[i].stack = slices.Clone(s.cores[i].stack)
		c.cores[i].be = slices.Clone(s.cores[i].be)
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

// exact is a Config without implicit kill, restart or preemption costs, so
// that the numbers in the tables are the whole story.
var exact = Config{BestEffortCap: 100, Grace: -1, RestartCost: -1, PreemptCost: -1}
