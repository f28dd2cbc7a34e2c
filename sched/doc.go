// Package sched is the pure scheduling logic of hyper-sched: preemptive
// earliest-deadline-first (EDF) scheduling of each core over a few lanes,
// the exact admission test, a global best-effort FIFO shared round robin,
// and the estimator that learns execution times.
//
// The supervisor is its only caller. It owns one [Scheduler] and one
// [Estimator] from a single goroutine; neither is safe for concurrent use and
// neither takes a lock.
//
// # Model
//
// Times are nanoseconds on a monotonic clock chosen by the caller; the
// package never reads a clock, time is always passed in as now. A deadline
// job has an absolute deadline D and an estimate C. EDF order is earlier
// deadline first, then smaller [Job.ID].
//
// Each core has [Config.Lanes] lanes, worker processes of its own, and runs
// at most one job at a time. Its started jobs hold one lane each: the
// running one, and the stopped ones (deadline jobs on a stack whose
// deadlines fall towards the top, and best-effort jobs). A job starts only
// on a free lane; a stopped job resumes on its own. At every event
// [Scheduler.Next] decides, returning an [Action]:
//
//   - a queued firm job whose deadline (plus LateCap) has passed is dropped
//     (Expired);
//   - the earliest deadline job runs: a queued one earlier than the running
//     job, or any while a best-effort job runs, preempts it (Stop, Run) if a
//     lane is free and the running job is not pinned (below); otherwise it
//     waits; a stopped job resumes (Resume) when it is the earliest again;
//   - with no deadline work on the core, best-effort jobs run, at most
//     max(Lanes-1, 1) of them started per core, round robin for
//     Config.Quantum each (Recheck): at a quantum's end the running one
//     stops and a new one starts from the FIFO if allowed, else the least
//     recently run one resumes.
//
// Done ends the running job and frees its lane. Remove ends a started job
// whose lane died (killed at its deadline or cap, or crashed): the core has
// one lane less until LaneUp, and if none is then free it is blocked for
// RestartCost. Cancel removes only jobs never started. With Lanes = 1 no job
// is ever preempted: the non-preemptive model.
//
// Every job is released when admitted, so without new arrivals a core's
// future is fixed: the running job to its end, then every other deadline
// job (queued ones with their estimates, stopped ones with what remains of
// theirs) back to back in EDF order, each one's end freeing the lane the
// next one needs.
//
// # The exact admission test
//
// The running job ends at the latest at runEnd: when the rest of its
// estimate has run if it is within it (a verified deadline job, or best
// effort with a known estimate below the cap), unless its kill comes first;
// otherwise at its kill: Deadline+LateCap+Grace for a deadline job, its run
// time reaching BestEffortCap plus Grace for best effort (a kill already
// due but not yet Removed counts as now). t0 = free(now) is that end, never
// before now, plus RestartCost if it is a kill that leaves
// no lane free (with one lane, always); an idle core that a kill left
// without a free lane is blocked until its replacement (the Remove's time
// plus RestartCost).
//
// Admit(now, j) tests every available core and plans j there in one of two
// ways:
//
//   - preempting, if j would (a lane is free, the running job is not pinned,
//     and it is best effort or later than j in EDF order): j runs first, from
//     now, charged PreemptCost; then the stopped job's rest (runEnd from j's
//     finish); then the queue in EDF order;
//   - waiting, if that plan fails or j does not preempt: the running job to
//     t0, then the queue and j in EDF order.
//
// The plan is admissible if and only if every deadline that counts is met,
// finishing exactly at the deadline being on time: j's, every queued
// verified job's, every stopped verified job's within its estimate, and,
// if j preempts, the running job's if it is verified and within its
// estimate (pushed into its kill, it misses). A job admitted to wait while
// it is earlier than the running job (or that is best effort) pins the
// core: the running job is not preempted until it ends, so the plan stays
// true; the pin goes when no such job waits. A core whose queue is already
// late (possible only when reality left the plan: an overrun, a core idle
// with work queued, a lost lane) admits nothing.
//
// An unverified job ([Job.Unverified]) is planned as running until its
// kill and its lane's restart: Estimate becomes
// Deadline+LateCap+Grace+RestartCost-now. Its own lateness is not checked,
// but it delays every job after it by that much, so a wrong claim can only
// make the claimant late. It must be able to start before its deadline,
// though: one that could only start after it would just expire in the
// queue. A stopped job past its estimate (or unverified)
// keeps as its rest the time to its kill when it was stopped, unchecked.
//
// This is exact for the estimates given, not a utilisation bound: the
// tests' brute-force oracle plays each core's future job by job under these
// rules and agrees with Admit on random states, and a simulation of the
// dispatcher never sees an admitted verified job late. Two corners are
// pessimistic by design: the restart after the running job's kill delays
// even a stopped job that could resume without a lane, and an unverified
// job's restart counts even where another lane would be free at its kill.
//
// Before any core is tested, a job with C >= D-now (unverified: D <= now) is
// refused as invalid (DESIGN §2). So a new job needs at least 1 ns of slack
// on an idle core, while in the plan finishing exactly at the deadline is
// on time.
//
// The test costs O(log n) per core for n queued jobs, and so do enqueueing,
// cancelling and starting a job. Each core's queue (queued and stopped
// deadline jobs) is a treap ordered by (deadline, ID) whose every node keeps
// two aggregates of its subtree run alone from time 0: the sum of the
// estimates, and the minimum of due time minus finish time (the latest
// start at which the whole subtree is on time; unchecked jobs have no due
// time). Both compose from the children, so one walk from the root yields
// the work that runs before the new job and the latest start at which the
// jobs after it are still on time; the insertion delays exactly those jobs
// by the new estimate. The preempting plan needs only the root's aggregate.
//
// # Core choice
//
// Among the feasible cores, Admit picks the one whose schedule after the
// insertion has the largest minimum slack (deadline minus finish time, over
// the deadlines that count in its plan, the new job's included): worst fit,
// which spreads load
// and keeps the most headroom against estimate errors. Equal slacks go to the
// core whose plan goes idle first (t0 plus its queued estimates, before the
// insertion), because one tight job at the front of a queue pins its minimum
// slack however much work waits behind it; remaining ties go to the lowest
// core index. If no available core can take the job, Admit returns an
// [*Unschedulable] whose RetryAfter is a hint of when the same request (same
// relative deadline and estimate) would fit if the cores run their current
// plans.
//
// # Chains
//
// [Scheduler.AdmitChain] admits the k stages of a chain, each taking the
// previous one's output, as one unit: all on one core, or none. Their
// deadlines are latest-possible ([Scheduler.ChainDeadlines]): the last is
// the chain's, each earlier one the next one's less the next one's
// estimate. On one core EDF runs stage i before stage i+1, so "released
// when admitted" holds whenever it matters: stage i+1 is never the earliest
// job before stage i ended. The test is the one above with every stage
// inserted at once (the first stage may preempt; the others, and the
// preempted job's rest, then run in EDF order with the queue), O(k log n)
// per core. The caller Cancels the rest of a chain when a stage fails.
//
// # Use
//
// The supervisor calls Admit for every call, then Next on the chosen core
// (for a best-effort job, on every core), and carries out the Action in
// order: answer Expired, start or resume Run (on an idle lane, or Run's
// stopped one), stop Stop's lane, arm a timer for Recheck. When a job's
// result arrives it calls Done, then Next. When it kills a started job
// (running or stopped) at Deadline+LateCap, or a best-effort one at its
// cap, or a lane dies under a job, it calls Remove, then Next; LaneUp when
// a replacement lane is up, LaneDown when an idle lane dies. When a whole
// worker is lost it calls SetAvailable(core, false) and Drain, re-Admits
// the queued jobs elsewhere and answers the started ones.
//
// # Never
//
// The package performs no I/O, starts no goroutines, does not log and never
// reads the clock. It reports errors and counters ([Scheduler.Stats]) and
// leaves answering, killing and restarting to the supervisor.
package sched
