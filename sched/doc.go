// Package sched is the pure scheduling logic of hyper-sched: per-core
// earliest-deadline-first (EDF) queues, the exact admission test, a global
// best-effort FIFO, and the estimator that learns execution times.
//
// The supervisor is its only caller. It owns one [Scheduler] and one
// [Estimator] from a single goroutine; neither is safe for concurrent use and
// neither takes a lock.
//
// # Model
//
// Every worker core runs one job at a time and jobs are not preempted. A
// deadline job has an absolute deadline D and an execution-time estimate C
// (both in nanoseconds on a monotonic clock chosen by the caller; the
// package never reads a clock, time is always passed in as now). Each core
// keeps its queued deadline jobs in EDF order: earlier deadline first, and
// on equal deadlines the smaller [Job.ID] first. Because jobs are not
// preempted, a core's future is fully determined by that order: the queued
// jobs run back to back after the running one.
//
// A job without a deadline (D = 0) is best-effort. It waits in one global
// FIFO, starts only on an available core that has no deadline work queued,
// and may run for at most [Config.BestEffortCap] before the supervisor kills
// it.
//
// # The exact admission test
//
// For each available core, the timeline starts at t0, the time the running
// job frees the core at the latest:
//
//   - no running job: t0 = now;
//   - a running deadline job that has run no longer than its estimate:
//     t0 = min(start+C, D+Grace+RestartCost);
//   - a running deadline job past its estimate: it will be killed at its
//     deadline and its worker restarted, so t0 = D+Grace+RestartCost;
//   - a running best-effort job with a known estimate C < BestEffortCap,
//     within it: t0 = start+C;
//   - a running best-effort job past its estimate, or with none known
//     (C >= BestEffortCap): it will be killed at its cap, so
//     t0 = start+BestEffortCap+Grace+RestartCost;
//
// and t0 is never earlier than now. The new job is inserted into the core's
// EDF order and the queue is replayed from t0, each job finishing at t0 plus
// the sum of the estimates up to and including its own. The insertion is
// admissible if and only if every job on the core, old and new, finishes by
// its deadline (finishing exactly at the deadline is on time). This is exact
// for the given estimates, not a utilisation bound; as a consequence a job
// is never admitted if it would make an already admitted one late. A core
// already holding a job that is late in this replay (possible only when
// reality left the plan: the running job overran its estimate, or the core
// sat idle with work queued) admits nothing until that job leaves the queue.
//
// Before any core is tested, a job with C >= D-now is refused as invalid
// (DESIGN §2). So a new job needs at least 1 ns of slack on an idle core,
// while in the replay finishing exactly at the deadline is on time.
//
// The test costs O(log n) per core for n queued jobs, and so do enqueueing,
// cancelling and starting a job. Each core's queue is a treap ordered by
// (deadline, ID) whose every node keeps two aggregates of its subtree run
// alone from time 0: the sum of the estimates, and the minimum of deadline
// minus finish time (the latest start at which the whole subtree is on
// time). Both compose from the children, so one walk from the root yields
// the work that runs before the new job and the latest start at which the
// jobs after it are still on time; the insertion delays exactly those jobs
// by the new estimate.
//
// # Core choice
//
// Among the feasible cores, Admit picks the one whose schedule after the
// insertion has the largest minimum slack (deadline minus finish time, over
// every job on the core, the new one included): worst fit, which spreads load
// and keeps the most headroom against estimate errors. Equal slacks go to the
// core whose plan goes idle first (t0 plus its queued estimates, before the
// insertion), because one tight job at the front of a queue pins its minimum
// slack however much work waits behind it; remaining ties go to the lowest
// core index. If no available core can take the job, Admit returns an
// [*Unschedulable] whose RetryAfter is a hint of when the same request (same
// relative deadline and estimate) would fit if the cores run their current
// plans.
//
// # Use
//
// The supervisor calls Admit for every call and, if the chosen core is idle
// (or, for a best-effort job, some core is), Next for that core. When a
// worker reports a result it calls Done then Next. When it kills a job at
// its deadline it calls Done only once the replacement worker is up, so that
// the restart keeps counting as blocking time. When a worker is lost it
// reads Running, calls SetAvailable(core, false) and Drain, and re-Admits
// the drained jobs on the other cores.
//
// # Never
//
// The package performs no I/O, starts no goroutines, does not log and never
// reads the clock. It reports errors and counters ([Scheduler.Stats]) and
// leaves answering, killing and restarting to the supervisor.
package sched
