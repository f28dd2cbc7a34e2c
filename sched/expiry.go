package sched

// Expiry returns when the earliest queued (never started) job of core
// expires: past Deadline+LateCap, Next drops it into Action.Expired. ok is
// false when the head of core's queue is a stopped job or nothing is
// queued; the stopped job's own kill, which comes first, is then the next
// event. The caller arms a timer for it, so that a call queued behind a
// job that overran is answered at its deadline, not at the core's next
// event.
func (s *Scheduler) Expiry(core int) (at int64, ok bool) {
	c := &s.cores[core]
	if c.q.len() == 0 {
		return 0, false
	}
	h := c.q.first()
	if c.stopped(h) {
		return 0, false
	}
	return h.Deadline + h.LateCap + 1, true
}
