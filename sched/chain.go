package sched

import (
	"errors"
	"slices"
)

// MaxChain bounds the stages of one chain ([Scheduler.AdmitChain]).
const MaxChain = 16

// ErrInvalidChain means AdmitChain was given stages that are not one
// chain: none, more than MaxChain, IDs not increasing, or deadlines
// decreasing. It is the caller's mistake, not the client's.
var ErrInvalidChain = errors.New("sched: invalid chain")

// ChainDeadlines sets the Deadline of every stage of a chain that must end
// by end: the latest each stage may finish for the stages after it to
// finish by end on their estimates. The last stage gets end; the one
// before it end minus the last one's Estimate; and so on. After an
// unverified stage ([Job.Unverified]) the gap also holds what the plan
// gives its kill: LateCap+Grace+RestartCost. Estimates are as for Admit
// (the caller adds its dispatch overhead); an unverified stage's Estimate
// is its client's claim, 0 if none.
//
// Why latest-possible and not, say, proportional to the estimates: the
// stages share one core (see AdmitChain), where a stage's deadline is only
// its place in the EDF order and its kill time. A later deadline lets
// more of the other jobs run first and so never makes them later, and the
// chain's own end is checked all the same: if the last stage is on time
// in the plan, so is every earlier one (each ends at least the next one's
// estimate before it). docs/RATIONALE.md has the longer argument.
func (s *Scheduler) ChainDeadlines(end int64, stages []Job) {
	d := end
	for i := len(stages) - 1; i >= 0; i-- {
		if i < len(stages)-1 {
			n := stages[i+1]
			d -= max(n.Estimate, 0)
			if stages[i].Unverified {
				d -= max(stages[i].LateCap, 0) + s.cfg.Grace + s.cfg.RestartCost
			}
		}
		stages[i].Deadline = d
	}
}

// AdmitChain admits the stages of one chain at now as one unit, all on one
// core, or none of them. A chain's stages run one after the other, each
// taking the previous one's output: stage i+1 can start only when stage i
// has ended. stages are in chain order with their deadlines set (see
// ChainDeadlines), non-decreasing, and increasing IDs; the first stage is
// the one that can run now. It returns the chosen core.
//
// On one core that is exact without release times: in EDF order every
// stage comes after the one before it (an earlier or equal deadline with a
// smaller ID), so no plan ever runs stage i+1 before stage i ends, and the
// moment stage i ends its output is there, and stage i+1, if it is the
// earliest job, can start. Each stage is then an ordinary job of the core:
// the whole chain is tested like Admit tests one job (the same two plans:
// the first stage preempting the running job, then everything in EDF
// order; or waiting for it), with every stage inserted at once, and every
// stage's deadline, the chain's end included, must be met. Stages on
// different cores would be released when a stage on another core ends, at
// an unknown time before its deadline, which the per-core test cannot see;
// docs/RATIONALE.md says why chains do not split.
//
// The caller ends the chain when a stage fails: it Cancels the stages
// after it, which are all still queued.
//
// Errors are Admit's: ErrInvalidDeadline or ErrInvalidEstimate naming no
// stage (any stage that fails Admit's checks fails the chain),
// ErrDuplicate, *Unschedulable (RetryAfter for the whole chain as if it
// were one job of the summed estimates), and ErrInvalidChain.
//
// The test costs O(k log n) per core for a chain of k stages and n queued
// jobs.
func (s *Scheduler) AdmitChain(now int64, stages []Job) (core int, err error) {
	if len(stages) == 0 || len(stages) > MaxChain {
		s.invalid++
		return -1, ErrInvalidChain
	}
	var buf [MaxChain]Job
	js := buf[:copy(buf[:], stages)]
	var total int64
	for i := range js {
		j := &js[i]
		if _, dup := s.index[j.ID]; dup {
			s.invalid++
			return -1, ErrDuplicate
		}
		if i > 0 && (j.ID <= js[i-1].ID || j.Deadline < js[i-1].Deadline) {
			s.invalid++
			return -1, ErrInvalidChain
		}
		if j.Deadline <= 0 { // derived from too short an end, or best effort
			s.invalid++
			return -1, ErrInvalidDeadline
		}
		if err := s.checkJob(now, j); err != nil {
			return -1, err
		}
		total += j.Estimate
	}
	best, preempt := s.pickChain(now, js)
	if best < 0 {
		s.rejected++
		last := js[len(js)-1]
		return -1, &Unschedulable{RetryAfter: s.retryAfter(now, Job{Deadline: last.Deadline, Estimate: total})}
	}
	c := &s.cores[best]
	first := js[0]
	if preempt {
		js[0].Estimate += s.cfg.PreemptCost
	} else if c.busy && (c.run.Deadline == 0 || before(first.Deadline, first.ID, c.run.Deadline, c.run.ID)) {
		c.pinned = true // admitted to wait for the running job, as planned
	}
	for _, j := range js {
		c.q.insert(j, dueOf(j))
		s.index[j.ID] = loc{core: best, deadline: j.Deadline}
	}
	c.st.Admitted += uint64(len(js))
	s.admitted += uint64(len(js))
	s.chains++
	return best, nil
}

// pickChain is pick for a chain: the feasible core with the largest
// minimum slack, ties to the one whose plan goes idle first, then the
// lowest index.
func (s *Scheduler) pickChain(now int64, js []Job) (best int, preempt bool) {
	return s.pickBy(func(c *core) (bool, bool, int64, int64) { return s.checkChain(c, now, js) })
}

// planJob is one job the plan inserts into a core's queue: a stage, or
// (preempting plan) the stopped running job.
type planJob struct {
	job   Job
	due   int64 // infinity: its lateness is not checked
	fresh bool  // a new unverified stage: it must start before its deadline
	run   bool  // the running job, resumed: its end comes from runEnd
}

// checkChain is check for the stages js of a chain (estimates resolved as
// Admit does): whether the chain is admissible on c at now, whether its
// first stage preempts the running job, the minimum slack of c's schedule
// with the chain inserted, and when c's plan goes idle without it.
//
// The plans are check's. Waiting: from t0 = free(now), the queue and the
// stages in EDF order. Preempting (if the first stage would preempt): the
// first stage from now, charged PreemptCost; from its end, the queue, the
// other stages and the stopped running job (a deadline job; a best-effort
// one runs only when no deadline work is left) in EDF order.
func (s *Scheduler) checkChain(c *core, now int64, js []Job) (ok, preempt bool, slack, idle int64) {
	if c.q.len()+len(js) > s.cfg.MaxQueue {
		return false, false, 0, 0
	}
	t0 := s.free(c, now)
	idle = t0 + c.q.total()
	var buf [MaxChain + 1]planJob
	xs := buf[:0]
	if s.preemptsOn(c, js[0]) {
		if ok, slack := s.checkChainPreempt(c, now, js, xs); ok {
			return true, true, slack, idle
		}
	}
	for _, j := range js {
		xs = append(xs, planJob{job: j, due: dueOf(j), fresh: j.Unverified})
	}
	ok, slack = s.plan(c, now, t0, xs)
	return ok, false, slack, idle
}

// checkChainPreempt tests the plan in which the chain's first stage
// preempts c's running job at now; xs is scratch space.
func (s *Scheduler) checkChainPreempt(c *core, now int64, js []Job, xs []planJob) (ok bool, slack int64) {
	j := js[0]
	if j.Unverified && now+s.cfg.PreemptCost >= j.Deadline {
		return false, now + s.cfg.PreemptCost - j.Deadline
	}
	f1 := now + s.cfg.PreemptCost + j.Estimate
	slack = margin(dueOf(j), f1)
	if slack < 0 {
		return false, slack
	}
	for _, j := range js[1:] {
		xs = append(xs, planJob{job: j, due: dueOf(j), fresh: j.Unverified})
	}
	if r := c.run; r.Deadline != 0 {
		// Within its estimate, it must still end on time: neither past its
		// deadline nor pushed into its kill.
		due := int64(infinity)
		if !r.Unverified && c.used+now-c.runAt <= r.Estimate {
			due = r.Deadline
		}
		x := planJob{job: r, due: due, run: true}
		i, _ := slices.BinarySearchFunc(xs, x, func(a, b planJob) int {
			if before(a.job.Deadline, a.job.ID, b.job.Deadline, b.job.ID) {
				return -1
			}
			return 1
		})
		xs = slices.Insert(xs, i, x)
	}
	ok, m := s.plan(c, now, f1, xs)
	return ok, min(slack, m)
}

// plan tests c's queue run back to back in EDF order from start, with xs
// (in EDF order, none of them queued) inserted: whether every deadline
// that counts is met, and the minimum slack.
//
// In the terms of edf.go: an inserted job x starts at start + the queued
// work before it + the inserted work before it (S), and ends its estimate
// later (the running job: at runEnd from there). The queued jobs after x
// are delayed by S plus x's own time, so they stay on time iff that fits
// in around's after; the queue as a whole must be on time from start. A
// queued job after several inserted ones is checked once per insertion
// before it, with the smaller delays too, which changes nothing: the last
// check is the exact one and the strongest.
func (s *Scheduler) plan(c *core, now, start int64, xs []planJob) (ok bool, slack int64) {
	q := &c.q
	slack = infinity / 2
	if q.len() > 0 {
		if l := q.latest(); l != infinity {
			if l < start {
				return false, l - start // a queued job is late already
			}
			slack = l - start
		}
	}
	var sum int64 // inserted work so far
	for _, x := range xs {
		prefix, after := q.around(x.job.Deadline, x.job.ID)
		from := start + prefix + sum
		var end int64
		if x.run {
			e, kill := s.runEnd(c, now, from)
			end = e
			if x.due != infinity && kill {
				return false, min(x.due-end, -1)
			}
		} else {
			if x.fresh && from >= x.job.Deadline {
				// It could not even start before its deadline.
				return false, from - x.job.Deadline
			}
			end = from + x.job.Estimate
		}
		m := margin(x.due, end)
		if m < 0 {
			return false, m
		}
		slack = min(slack, m)
		sum += end - from
		if after != infinity {
			m := after - start - sum
			if m < 0 {
				return false, m
			}
			slack = min(slack, m)
		}
	}
	return true, slack
}
