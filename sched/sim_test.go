package sched

// The simulator is rewritten for lanes and preemption in the next commit.
