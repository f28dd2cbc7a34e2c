package sched

import (
	"errors"
	"strconv"
)

// Errors returned by [Scheduler.Admit] and the constructors. Callers compare
// them with errors.Is.
var (
	// ErrInvalidDeadline means the job can never make its deadline: its
	// estimate is at least the time left (Estimate >= Deadline-now), or the
	// deadline is negative.
	ErrInvalidDeadline = errors.New("sched: deadline cannot be met")
	// ErrInvalidEstimate means a deadline job has an estimate <= 0, so no
	// exact test is possible.
	ErrInvalidEstimate = errors.New("sched: estimate must be positive")
	// ErrQueueFull means the best-effort FIFO holds Config.MaxBestEffort
	// jobs already.
	ErrQueueFull = errors.New("sched: best-effort queue full")
	// ErrDuplicate means a job with the same ID is queued or running.
	ErrDuplicate = errors.New("sched: duplicate job id")
)

// Unschedulable is the error of [Scheduler.Admit] when no available core can
// take a deadline job without a deadline miss.
type Unschedulable struct {
	// RetryAfter is a hint, in ns from the rejected call's now (>= 0), of when
	// the same request (same relative deadline and estimate) would fit on some
	// core if every core runs its current plan. It ignores best-effort jobs
	// that may start meanwhile and new arrivals. When no core is available at
	// all it is Config.RestartCost, the time a restarting worker takes.
	RetryAfter int64
}

// Error implements error.
func (e *Unschedulable) Error() string {
	return "sched: no core can meet the deadline (retry after " +
		strconv.FormatInt(e.RetryAfter, 10) + "ns)"
}
