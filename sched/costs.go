package sched

// SetRestartCost replaces Config.RestartCost with a measured value, ns
// (negative: none). It applies to the admission tests from now on; a core
// already blocked by a restart keeps its end.
func (s *Scheduler) SetRestartCost(ns int64) { s.cfg.RestartCost = max(ns, 0) }

// SetWakeCost replaces Config.WakeCost with a measured value, ns
// (negative: none).
func (s *Scheduler) SetWakeCost(ns int64) { s.cfg.WakeCost = max(ns, 0) }

// SetTailCost replaces Config.TailCost with a measured value, ns
// (negative: none).
func (s *Scheduler) SetTailCost(ns int64) { s.cfg.TailCost = max(ns, 0) }
