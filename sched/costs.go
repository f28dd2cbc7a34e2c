package sched

// SetRestartCost replaces Config.RestartCost with a measured value, ns
// (negative: none). It applies to the admission tests from now on; a core
// already blocked by a restart keeps its end.
func (s *Scheduler) SetRestartCost(ns int64) { s.cfg.RestartCost = max(ns, 0) }
