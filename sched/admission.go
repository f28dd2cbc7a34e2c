package sched

// free returns t0, the start of c's timeline at now: when its running job
// releases the core at the latest, never before now.
//
// A running job within its estimate ends at start+Estimate, unless it
// would run past its kill: deadline+LateCap+Grace for a deadline job,
// start+BestEffortCap+Grace for a best-effort one, plus the restart of its
// worker. Past its estimate nothing bounds it but that kill. So a
// best-effort job with a learned estimate blocks the core for its estimate,
// not for the whole cap; one with Estimate >= BestEffortCap (unknown) for
// the cap.
func (s *Scheduler) free(c *core, now int64) int64 {
	if !c.busy {
		return now
	}
	end := c.run.Deadline + c.run.LateCap + s.cfg.Grace + s.cfg.RestartCost
	if c.run.Deadline == 0 {
		end = c.start + s.cfg.BestEffortCap + s.cfg.Grace + s.cfg.RestartCost
	}
	// A best-effort estimate of the cap or more means "unknown": the job
	// may run into the cap and be killed there.
	known := c.run.Deadline != 0 || c.run.Estimate < s.cfg.BestEffortCap
	if known && now-c.start <= c.run.Estimate {
		end = min(end, c.start+c.run.Estimate)
	}
	return max(end, now)
}

// check runs the exact admission test of deadline job j on c at now. It
// returns whether j is admissible there, the minimum slack of c's schedule
// with j inserted, and when c's plan goes idle without j (t0 plus the queued
// estimates).
//
// The queue runs back to back from t0 = free(now). In the terms of edf.go:
// every queued job is on time iff t0 <= latest(); j finishes at
// t0 + prefix + C; the jobs after j are delayed by C, so they stay on time
// iff t0 + C <= after; the jobs before j are unchanged. The minimum slack is
// the minimum of the three margins: latest() - t0 also counts the jobs after
// j without their delay, which never lowers the minimum below their delayed
// margin.
func (s *Scheduler) check(c *core, now int64, j Job) (ok bool, slack, idle int64) {
	q := &c.q
	n := q.len()
	if n >= s.cfg.MaxQueue {
		return false, 0, 0
	}
	t0 := s.free(c, now)
	idle = t0 + q.total()
	prefix, after := q.around(j.Deadline, j.ID)
	slack = j.Deadline - (t0 + prefix + j.Estimate)
	if slack < 0 || n == 0 {
		return slack >= 0, slack, idle
	}
	all := q.latest() - t0
	if all < 0 {
		return false, all, idle // a queued job is late already
	}
	slack = min(slack, all)
	if after != infinity {
		delayed := after - t0 - j.Estimate
		if delayed < 0 {
			return false, delayed, idle
		}
		slack = min(slack, delayed)
	}
	return true, slack, idle
}

// pick returns the feasible available core with the largest minimum slack
// after inserting j, or -1 if there is none. Equal slacks go to the core
// whose plan goes idle first, then to the lowest index: the minimum slack is
// often pinned by one tight job at the front of a queue, and without the
// second rule every such tie would load the same core. pick counts the
// failed tests per core.
func (s *Scheduler) pick(now int64, j Job) (best int) {
	best = -1
	var bestSlack, bestIdle int64
	for i := range s.cores {
		c := &s.cores[i]
		if c.off {
			continue
		}
		ok, slack, idle := s.check(c, now, j)
		if !ok {
			c.st.Infeasible++
			continue
		}
		if best < 0 || slack > bestSlack || (slack == bestSlack && idle < bestIdle) {
			best, bestSlack, bestIdle = i, slack, idle
		}
	}
	return best
}

// retryAfter returns the Unschedulable hint for j refused at now: the
// earliest time, over the available cores, at which a request with the same
// relative deadline and estimate fits if each core runs its plan (its queued
// jobs back to back from t0, idle from e = t0 + their estimates).
//
// At any time T >= e the core is idle and the job fits, because its
// estimate is below its relative deadline. Before that, it surely fits at
// the end of the queue once its new deadline T+rel is after every queued
// deadline and it still finishes by it: T >= last+1-rel and
// T >= e+C-rel. A core that already holds a late job, or a full queue, gets
// e.
func (s *Scheduler) retryAfter(now int64, j Job) int64 {
	rel := j.Deadline - now
	best := int64(-1)
	for i := range s.cores {
		c := &s.cores[i]
		if c.off {
			continue
		}
		t0 := s.free(c, now)
		e := t0 + c.q.total()
		t := e
		if n := c.q.len(); n == 0 {
			t = e + j.Estimate - rel
		} else if n < s.cfg.MaxQueue && t0 <= c.q.latest() {
			t = min(e, max(e+j.Estimate-rel, c.q.last().Deadline+1-rel))
		}
		t = max(t, now)
		if best < 0 || t < best {
			best = t
		}
	}
	if best < 0 {
		return s.cfg.RestartCost
	}
	return best - now
}
