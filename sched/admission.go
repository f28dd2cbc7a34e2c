package sched

// runEnd returns when c's running job, resumed at from (>= now, after
// whatever preempts it), ends at the latest, and whether that end is its
// kill.
//
// A job within its estimate ends when the rest of its estimate has run,
// unless its kill comes first: Deadline+LateCap+Grace for a deadline job;
// for a best-effort one, when its run time reaches BestEffortCap, plus
// Grace. Past its estimate (or without one: unverified, or best effort
// with an estimate of the cap or more) nothing bounds it but that kill. A
// job killed before from (while stopped) ends at from.
func (s *Scheduler) runEnd(c *core, now, from int64) (end int64, kill bool) {
	r := c.run
	used := c.used + now - c.runAt
	var killAt int64
	if r.Deadline != 0 {
		killAt = r.Deadline + r.LateCap + s.cfg.Grace
	} else {
		killAt = from + max(s.cfg.BestEffortCap-used, 0) + s.cfg.Grace
	}
	known := !r.Unverified && (r.Deadline != 0 || r.Estimate < s.cfg.BestEffortCap)
	end, kill = killAt, true
	if known && used <= r.Estimate && from+r.Estimate-used < killAt {
		end, kill = from+r.Estimate-used, false
	}
	return max(end, from), kill
}

// free returns t0, the start of c's timeline at now if nothing preempts
// its running job: when that job releases the core at the latest (runEnd),
// never before now. If the core would then have no lane free (a kill with
// every other lane holding a stopped job, or a single lane), the
// replacement lane's RestartCost is added; likewise an idle core that a
// kill left without a free lane is blocked until its replacement; one
// whose replacement is overdue (a restart slower than RestartCost) is
// assumed a whole RestartCost from now, not ready now. An idle core whose
// lanes sleep is free once its CPU is woken: WakeCost from now. Every
// plan then starts TailCost later: the slack kept for one slow hop.
func (s *Scheduler) free(c *core, now int64) int64 {
	return s.head(c, now) + s.cfg.TailCost
}

// head is free without the TailCost.
func (s *Scheduler) head(c *core, now int64) int64 {
	if !c.busy {
		if c.free() <= 0 {
			if c.blocked > now {
				return c.blocked
			}
			return now + s.cfg.RestartCost
		}
		if now >= c.warmUntil {
			return now + s.cfg.WakeCost
		}
		return now
	}
	end, kill := s.runEnd(c, now, now)
	if kill && c.free() <= 0 {
		end += s.cfg.RestartCost
	}
	return max(end, now)
}

// preemptsOn reports whether j would preempt c's running job: a lane is
// free, the running job is not pinned, and it is best effort or j's
// deadline is earlier.
func (s *Scheduler) preemptsOn(c *core, j Job) bool {
	return s.preemptible(c) && (c.run.Deadline == 0 || before(j.Deadline, j.ID, c.run.Deadline, c.run.ID))
}

// check runs the exact admission test of deadline job j on c at now. It
// returns whether j is admissible there and whether it is admitted to
// preempt the running job, the minimum slack of c's schedule with j
// inserted, and when c's plan goes idle without j (t0 plus the remaining
// estimates).
//
// Without preemption the plan runs the queue (queued and stopped jobs)
// back to back in EDF order from t0 = free(now). In the terms of edf.go:
// every queued job is on time iff t0 <= latest(); j finishes at
// t0 + prefix + C; the jobs after j are delayed by C, so they stay on time
// iff t0 + C <= after; the jobs before j are unchanged. The minimum slack is
// the minimum of the three margins.
//
// With preemption (see preemptsOn) j runs first, from now, charged
// PreemptCost; the stopped job resumes after it, and then the queue runs
// in EDF order: every job of which has a later deadline than the stopped
// one (nothing queued earlier unless the running job is pinned). If that
// plan fails but waiting would not, j is admitted to wait (the running job
// is then pinned).
func (s *Scheduler) check(c *core, now int64, j Job) (ok, preempt bool, slack, idle int64) {
	q := &c.q
	if q.len() >= s.cfg.MaxQueue {
		return false, false, 0, 0
	}
	t0 := s.free(c, now)
	idle = t0 + q.total()
	due := dueOf(j)
	if s.preemptsOn(c, j) {
		if ok, slack := s.checkPreempt(c, now, j, due); ok {
			return true, true, slack, idle
		}
	}
	prefix, after := q.around(j.Deadline, j.ID)
	if j.Unverified && t0+prefix >= j.Deadline {
		// It could not even start before its deadline: admitting it would
		// only expire it in the queue.
		return false, false, t0 + prefix - j.Deadline, idle
	}
	slack = margin(due, t0+prefix+j.Estimate)
	if slack < 0 || q.len() == 0 {
		return slack >= 0, false, slack, idle
	}
	if l := q.latest(); l != infinity {
		all := l - t0
		if all < 0 {
			return false, false, all, idle // a queued job is late already
		}
		slack = min(slack, all)
	}
	if after != infinity {
		delayed := after - t0 - j.Estimate
		if delayed < 0 {
			return false, false, delayed, idle
		}
		slack = min(slack, delayed)
	}
	return true, false, slack, idle
}

// checkPreempt tests the plan in which j preempts c's running job at now.
func (s *Scheduler) checkPreempt(c *core, now int64, j Job, due int64) (ok bool, slack int64) {
	if j.Unverified && now+s.cfg.PreemptCost >= j.Deadline {
		return false, now + s.cfg.PreemptCost - j.Deadline
	}
	fj := now + s.cfg.PreemptCost + j.Estimate
	slack = margin(due, fj)
	if slack < 0 {
		return false, slack
	}
	next := fj // when the queue starts
	if c.run.Deadline != 0 {
		end, kill := s.runEnd(c, now, fj)
		next = end
		if !c.run.Unverified && c.used+now-c.runAt <= c.run.Estimate {
			// Within its estimate, it must still end on time: neither
			// past its deadline nor pushed into its kill.
			m := c.run.Deadline - end
			if kill || m < 0 {
				return false, min(m, -1)
			}
			slack = min(slack, m)
		}
	}
	if l := c.q.latest(); l != infinity {
		m := l - next
		if m < 0 {
			return false, m
		}
		slack = min(slack, m)
	}
	return true, slack
}

// margin returns due - finish, or a large value for an unchecked due.
func margin(due, finish int64) int64 {
	if due == infinity {
		return infinity / 2
	}
	return due - finish
}

// pick returns the feasible available core with the largest minimum slack
// after inserting j, or -1 if there is none, and whether j preempts there.
// Equal slacks go to the core whose plan goes idle first, then to the
// lowest index: the minimum slack is often pinned by one tight job at the
// front of a queue, and without the second rule every such tie would load
// the same core. pick counts the failed tests per core.
func (s *Scheduler) pick(now int64, j Job) (best int, preempt bool) {
	return s.pickBy(func(c *core) (bool, bool, int64, int64) { return s.check(c, now, j) })
}

// pickBy is pick with the test check (check or checkChain) of each
// available core.
func (s *Scheduler) pickBy(check func(c *core) (ok, preempt bool, slack, idle int64)) (best int, preempt bool) {
	best = -1
	var bestSlack, bestIdle int64
	for i := range s.cores {
		c := &s.cores[i]
		if c.off {
			continue
		}
		ok, pre, slack, idle := check(c)
		if !ok {
			c.st.Infeasible++
			continue
		}
		if best < 0 || slack > bestSlack || (slack == bestSlack && idle < bestIdle) {
			best, preempt, bestSlack, bestIdle = i, pre, slack, idle
		}
	}
	return best, preempt
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
