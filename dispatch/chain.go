package dispatch

import (
	"fmt"
	"time"

	"github.com/hyper-sched/hyper-sched/sched"
)

// chain links the stages of one chain admitted by AdmitChain.
type chain struct {
	stages []*Task
	// ended: a stage did not succeed, and every stage after it was
	// answered Cancelled.
	ended bool
}

// AdmitChain admits the stages of one chain, in order, as one unit: all of
// them or none (sched.Scheduler.AdmitChain; they share one core). Stage
// i+1 takes stage i's output, so it can start only when stage i has
// finished: the dispatcher then calls its Feed with stage i's Result,
// before anything else can start on the core.
//
// The last stage's Deadline is the chain's end-to-end deadline, and its
// LateCap applies to it alone; the Deadline of every other stage is
// derived here (sched.Scheduler.ChainDeadlines) and set on the task: its
// firm deadline, at which it is killed like any task. Estimate and
// Unverified are each stage's.
//
// Every stage gets exactly one Outcome on its Done channel. When a stage
// ends other than Finished (killed, expired, lost, cancelled), or its
// successor's Feed refuses its result, every later stage is answered
// Cancelled with a Why that names the stage: none of them has started.
// Cancel on a stage cancels it and the rest the same way, if it has not
// started. Abort answers every stage Aborted.
//
// Errors are sched.Scheduler.AdmitChain's (sched.ErrInvalidChain also for
// a chain without a deadline, or a stage already admitted), and
// ErrAborted.
func (d *Dispatcher) AdmitChain(stages []*Task) (core int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		return -1, ErrAborted
	}
	k := len(stages)
	if k == 0 || k > sched.MaxChain || stages[k-1].Deadline.IsZero() {
		return -1, sched.ErrInvalidChain
	}
	var buf [sched.MaxChain]sched.Job
	js := buf[:k]
	for i, t := range stages {
		if t.chain != nil || t.answered {
			return -1, sched.ErrInvalidChain
		}
		js[i] = sched.Job{ID: t.ID, Estimate: t.Estimate.Nanoseconds(), Unverified: t.Unverified}
	}
	last := stages[k-1]
	js[k-1].LateCap = last.LateCap.Nanoseconds()
	d.sc.ChainDeadlines(max(d.at(last.Deadline), 1), js)
	core, err = d.sc.AdmitChain(d.now(), js)
	if err != nil {
		return -1, err
	}
	ch := &chain{stages: append([]*Task(nil), stages...)}
	for i, t := range stages {
		if i < k-1 {
			t.Deadline, t.LateCap = d.epoch.Add(time.Duration(js[i].Deadline)), 0
		}
		t.chain, t.stage, t.core = ch, i, core
		d.tasks[t.ID] = t
		d.count.Admitted++
		d.step(t, "admitted", fmt.Sprintf("core %d, chain stage %d/%d, due in %v",
			core, i+1, k, t.Deadline.Sub(d.clock.Now()).Round(time.Microsecond)))
	}
	d.count.Chains++
	d.next(core)
	return core, nil
}

// chainAfter carries t's outcome o on to the rest of t's chain: on
// Finished it feeds the next stage; otherwise, or if that stage's Feed
// refuses the result, it ends the chain; d.mu held.
func (d *Dispatcher) chainAfter(t *Task, o Outcome) {
	ch := t.chain
	if ch.ended || d.aborted || t.stage+1 >= len(ch.stages) {
		return
	}
	nx := ch.stages[t.stage+1]
	if nx.answered {
		return // expired or cancelled while t ran; its chainAfter ended the chain
	}
	var why string
	if o.Kind == Finished {
		if nx.Feed == nil || nx.Feed(o.Result) {
			return
		}
		why = fmt.Sprintf("stage %d of its chain failed", t.stage+1)
	} else {
		why = fmt.Sprintf("stage %d of its chain was %s", t.stage+1, o.Kind)
		if o.Why != "" {
			why += ": " + o.Why
		}
	}
	ch.ended = true
	for _, later := range ch.stages[t.stage+1:] {
		if later.answered {
			continue
		}
		if !later.started.IsZero() {
			// Cannot happen: a stage starts only once the one before it
			// finished and was fed. Leave it its own outcome.
			continue
		}
		d.sc.Cancel(later.ID) // false if a CoreDown drained it already
		d.answer(later, Outcome{Kind: Cancelled, Why: "not run: " + why})
	}
}

// readmitChain admits again, on the other cores, the stages left of the
// chain of t, which CoreDown drained from its core before any of them
// started; if none can take them, the first is answered Lost with why and
// the rest Cancelled; d.mu held.
func (d *Dispatcher) readmitChain(t *Task, why string) {
	ch := t.chain
	var buf [sched.MaxChain]sched.Job
	js := buf[:0]
	var rest []*Task
	for _, s := range ch.stages[t.stage:] {
		if !s.answered {
			js = append(js, d.job(s))
			rest = append(rest, s)
		}
	}
	c, err := d.sc.AdmitChain(d.now(), js)
	if err != nil {
		d.count.Lost++
		d.answer(rest[0], Outcome{Kind: Lost, Why: why + ", and no other core can finish its chain in time"})
		return
	}
	for _, s := range rest {
		s.core = c
		d.step(s, "re-admitted", fmt.Sprintf("core %d after %s, with the rest of its chain", c, why))
	}
	d.next(c)
}
