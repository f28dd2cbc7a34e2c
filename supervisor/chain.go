package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
)

// chainCall is one admitted chain (/call with "then"): its stages, each a
// task, in order. The first stage's task holds the chain's name in
// s.names, so /uname finds the chain while it runs.
type chainCall struct {
	name     string
	arrived  time.Time
	deadline time.Time // end to end
	stages   []*task
}

// stageSpec is one stage of a chain, the call itself included.
type stageSpec struct {
	module, export string
	types, params  []byte
	resultsLen     int
	declared       time.Duration
	args, env      []string
}

// stagesOf returns the stages of spec's chain: the call itself, then Then.
func stagesOf(spec httpapi.CallSpec) []stageSpec {
	out := []stageSpec{{spec.Module, spec.Export, spec.ParamTypes, spec.Params, spec.ResultsLength, spec.Declared, spec.Args, spec.Env}}
	for _, st := range spec.Then {
		out = append(out, stageSpec{st.Module, st.Export, st.ParamTypes, st.Params, st.ResultsLength, st.Declared, st.Args, st.Env})
	}
	return out
}

// stageError returns err, an *apierr.Error about stage i (0-based) of k,
// with the stage named in its message; its class and RetryAfter are kept.
func stageError(i, k int, st stageSpec, err error) error {
	var e *apierr.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("chain stage %d of %d (%s %s): %w", i+1, k, st.module, st.export, err)
	}
	return &apierr.Error{Code: e.Code, RetryAfter: e.RetryAfter,
		Msg: fmt.Sprintf("chain stage %d of %d (%s %s): %s", i+1, k, st.module, st.export, e.Msg)}
}

// callChain admits, runs and answers a chain: every stage resolved and
// estimated, then all admitted on one core at once (dispatch.AdmitChain)
// or the whole chain refused, as a single call would be; then the stages
// run one after the other, the stdout of each the stdin of the next, and
// one answer carries every stage's timings and the last stage's output and
// results. A stage that traps, is killed or lost, exits non-zero, or whose
// output cannot be the next stage's input (unfed) ends the chain: the
// answer is that stage's error, naming it, and the stages after it never
// run. A client that goes away cancels the stages not yet started.
//
// # Notes
//
// A stage after the first is estimated on its module, export, params,
// args and environment, without its stdin, which is only known when the
// stage before it ends: its runs refine that one estimate whatever input
// they get, and a background calibration of it runs on an empty stdin.
func (s *Supervisor) callChain(ctx context.Context, spec httpapi.CallSpec) (_ *httpapi.CallResult, err error) {
	admitted := false
	defer func() {
		if err != nil && !admitted {
			s.recordRefusal(spec, err)
		}
	}()
	sts := stagesOf(spec)
	k := len(sts)
	if k > sched.MaxChain {
		return nil, apierr.New(apierr.BadRequest, "a chain has at most %d stages, not %d", sched.MaxChain, k)
	}
	if spec.Deadline <= 0 {
		return nil, apierr.New(apierr.BadRequest, "then needs expected_deadline: a chain runs under one end-to-end deadline")
	}
	cls := make([]*call, k)
	es := make([]estimate, k)
	overhead := time.Duration(s.overhead.Load())
	var total time.Duration
	for i, st := range sts {
		if cls[i], err = s.resolve(st.module, st.export, st.types, st.params, st.resultsLen); err != nil {
			return nil, stageError(i, k, st, err)
		}
		var stdin []byte
		if i == 0 {
			stdin = spec.Input // the others get the stage before's output
		}
		cls[i].setInput(stdin, st.args, st.env)
		if st.declared >= spec.Deadline {
			return nil, stageError(i, k, st, apierr.New(apierr.InvalidDeadline, "expected_execution_time %v is not below the chain's expected_deadline %v", st.declared, spec.Deadline))
		}
		es[i] = s.estimate(cls[i], st.declared)
		total += es[i].c + overhead
	}
	if total >= spec.Deadline {
		var parts []string
		for i, e := range es {
			parts = append(parts, fmt.Sprintf("stage %d %v (%s)", i+1, e.c.Round(time.Microsecond), e.source))
		}
		for i, e := range es {
			if e.learned && e.source == sched.SourceLearned {
				s.remeasure(cls[i]) // one slow run may have raised it
			}
		}
		return nil, apierr.New(apierr.InvalidDeadline, "the chain's %d stages take %v by their estimates and the dispatch overhead of %v each (%s), not below expected_deadline %v",
			k, total.Round(time.Microsecond), overhead, strings.Join(parts, ", "), spec.Deadline)
	}
	// An unmeasured stage is planned as holding its core until its kill
	// and its lane's restart, counted from admission (sched.Job.Unverified):
	// the stages after it could then only fit on a core that nothing uses
	// before the chain. Rather than refuse such a chain every time, measure
	// its stages and ask for a retry; the last stage may be unmeasured, as
	// a single call may.
	var unmeasured []string
	for i, e := range es[:k-1] {
		if !e.learned {
			unmeasured = append(unmeasured, fmt.Sprintf("%d (%s %s)", i+1, sts[i].module, sts[i].export))
			s.calibrateLater(cls[i])
		}
	}
	if len(unmeasured) > 0 {
		e := apierr.New(apierr.Unschedulable, "chain stage %s: no measured execution time yet, and only a chain's last stage may run unmeasured; it is being measured now, retry in a moment", strings.Join(unmeasured, ", stage "))
		e.RetryAfter = time.Second
		return nil, e
	}

	s.mu.Lock()
	name, err := s.newTasks(spec.TaskName, k)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	ch := &chainCall{name: name, arrived: spec.Arrived, deadline: spec.Arrived.Add(spec.Deadline)}
	dts := make([]*dispatch.Task, k)
	for i, cl := range cls {
		s.nextID++
		t := &task{id: s.nextID, name: name, module: cl.module, export: sts[i].export, params: cl.params,
			results: cl.results, in: cl.in, key: cl.key, arrived: spec.Arrived, estimate: es[i].c, source: es[i].source, core: -1,
			chain: ch, stage: i}
		t.events = append(t.events, Step{At: spec.Arrived, What: "arrived", Detail: fmt.Sprintf("chain stage %d of %d", i+1, k)})
		dt := dispatch.NewTask(t.id)
		dt.Payload, t.dt = t, dt
		dt.Estimate, dt.Unverified = es[i].c+overhead, !es[i].learned
		if i > 0 {
			dt.Feed = t.feeder(s.cfg.MaxInput)
		}
		ch.stages = append(ch.stages, t)
		dts[i] = dt
		s.tasks[t.id] = t
	}
	last := dts[k-1]
	last.Deadline = ch.deadline
	if spec.AllowLate {
		last.LateCap = s.cfg.BestEffortCap
		ch.stages[k-1].lateCap = last.LateCap
	}
	s.names[name] = ch.stages[0]
	s.mu.Unlock()

	core, err := s.disp.AdmitChain(dts)
	if err != nil {
		s.refused(name, err, ch.stages...)
		var u *sched.Unschedulable
		if errors.As(err, &u) {
			for i, e := range es {
				if e.learned && e.source == sched.SourceLearned {
					s.remeasure(cls[i])
				}
			}
		}
		return nil, s.chainAdmitError(err, spec, k)
	}
	admitted = true
	s.mu.Lock()
	s.count.Admitted++
	s.count.Chains++
	s.met.admission.WithLabelValues("admitted").Inc()
	for i, t := range ch.stages {
		t.core, t.deadline = core, dts[i].Deadline
	}
	s.mu.Unlock()
	for i, e := range es {
		if !e.learned {
			s.calibrateLater(cls[i]) // admitted unverified: measure it for next time
		}
	}

	dos := make([]dispatch.Outcome, k)
	cancelled := false
	for i, t := range ch.stages {
		if !cancelled {
			select {
			case dos[i] = <-t.dt.Done:
				continue
			case <-ctx.Done():
				// The stages not started are cancelled; a started one
				// still ends in exactly one answer.
				for _, u := range ch.stages[i:] {
					s.disp.Cancel(u.id)
				}
				cancelled = true
			}
		}
		dos[i] = <-t.dt.Done
	}
	return s.answerChain(ch, spec, dos)
}

// feeder returns a chain stage's dispatch.Task.Feed: it makes the
// previous stage's stdout this stage's stdin, or refuses a result that
// cannot go on (unfed). It runs under the dispatcher's lock and takes no
// other; the lane reads t.in when it starts the stage, under that lock too.
func (t *task) feeder(maxInput int) func(prev any) bool {
	return func(prev any) bool {
		r, ok := prev.(*ipc.Result)
		if !ok || unfed(r, maxInput) != nil {
			return false
		}
		t.in.stdin = r.Stdout
		return true
	}
}

// unfed returns why a chain stage's result r cannot be the next stage's
// input, nil if it can: a trap or a refusal (its own error then), a
// non-zero exit code, stdout cut at --max-output, or stdout over
// --max-input (maxInput; 0: ipc.DefaultMaxIO), the next stage's limit.
func unfed(r *ipc.Result, maxInput int) error {
	if maxInput <= 0 {
		maxInput = ipc.DefaultMaxIO
	}
	switch {
	case r.Trap != "" || r.Err != "":
		return apierr.New(apierr.Trap, "failed") // outcomeOf has the real error
	case r.Exited && r.ExitCode != 0:
		return apierr.New(apierr.Trap, "exited with code %d%s", r.ExitCode, stderrHint(r.Stderr))
	case r.StdoutBytes > int64(len(r.Stdout)):
		return apierr.New(apierr.TooLarge, "its output of %d bytes was cut at %d (--max-output), so it cannot be the next stage's input", r.StdoutBytes, len(r.Stdout))
	case len(r.Stdout) > maxInput:
		return apierr.New(apierr.TooLarge, "its output of %d bytes is over the next stage's input limit of %d (--max-input)", len(r.Stdout), maxInput)
	}
	return nil
}

// stderrHint returns ": stderr …" with the start of a failed stage's
// stderr, or "" without any.
func stderrHint(b []byte) string {
	const keep = 200
	if len(b) == 0 {
		return ""
	}
	s := strings.ToValidUTF8(string(b[:min(len(b), keep)]), "\uFFFD")
	if len(b) > keep {
		s += "…"
	}
	return fmt.Sprintf(" (stderr: %q)", s)
}

// chainAdmitError is admitError for a chain of k stages.
func (s *Supervisor) chainAdmitError(err error, spec httpapi.CallSpec, k int) error {
	var u *sched.Unschedulable
	switch {
	case errors.Is(err, sched.ErrInvalidDeadline):
		return apierr.New(apierr.InvalidDeadline, "expected_deadline %v cannot be met by a chain of %d stages: too little of it is left for their estimated execution times", spec.Deadline, k)
	case errors.As(err, &u):
		e := apierr.New(apierr.Unschedulable, "no worker core can run this chain of %d stages within %v without making an admitted call late; none of it ran", k, spec.Deadline)
		e.RetryAfter = time.Duration(u.RetryAfter)
		return e
	}
	return s.admitError(err, spec)
}

// answerChain turns the stages' outcomes into the chain's one answer and
// records it.
func (s *Supervisor) answerChain(ch *chainCall, spec httpapi.CallSpec, dos []dispatch.Outcome) (*httpapi.CallResult, error) {
	k := len(ch.stages)
	os := make([]outcome, k)
	failed := -1
	var why error
	for i, t := range ch.stages {
		os[i] = s.outcomeOf(t, dos[i])
		if failed >= 0 {
			continue
		}
		if os[i].err != nil {
			failed, why = i, os[i].err
		} else if i < k-1 && dos[i+1].Kind == dispatch.Cancelled {
			// Its result was not fed on (a non-zero exit, output cut)
			// unless the client went away meanwhile.
			if r, ok := dos[i].Result.(*ipc.Result); ok {
				if err := unfed(r, s.cfg.MaxInput); err != nil {
					failed, why = i, err
				}
			}
		}
	}
	var chainErr error
	if failed >= 0 {
		t := ch.stages[failed]
		chainErr = stageError(failed, k, stageSpec{module: t.module.Name, export: t.export}, why)
		if e, ok := chainErr.(*apierr.Error); ok && failed < k-1 {
			if failed+2 == k {
				e.Msg += fmt.Sprintf("; stage %d did not run", k)
			} else {
				e.Msg += fmt.Sprintf("; stages %d to %d did not run", failed+2, k)
			}
		}
	}
	s.mu.Lock()
	s.finishChain(ch, os, failed, chainErr)
	s.mu.Unlock()
	if chainErr != nil {
		return nil, chainErr
	}
	first, lastT, lastO := ch.stages[0], ch.stages[k-1], os[k-1]
	res := &httpapi.CallResult{TaskID: first.id, TaskName: ch.name, CPU: lastO.cpu, Worker: lastO.worker,
		Types: lastT.results, Results: lastO.results, Deadline: spec.Deadline, EstimateSource: sched.SourceLearned,
		Queue: os[0].started.Sub(ch.arrived), Total: lastO.finished.Sub(ch.arrived), Stdout: lastO.stdout, Stderr: lastO.stderr,
		Lane: dos[k-1].Lane, Begin: os[0].begin, Preempted: dos[0].Preempted,
		StdoutBytes: lastO.stdoutBytes, StderrBytes: lastO.stderrBytes, ExitCode: lastO.exitCode}
	if lastO.exitCode != nil && len(lastO.results) < len(res.Types) {
		res.Types = nil // it exited before returning its results
	}
	met := !lastO.finished.After(ch.deadline)
	res.DeadlineMet = &met
	prevEnd := ch.arrived
	for i, t := range ch.stages {
		o := os[i]
		res.Estimate += t.estimate
		res.Instantiate += time.Duration(o.instNs)
		res.Exec += time.Duration(o.execNs)
		res.Stopped += o.stopped
		if weaker(t.source, res.EstimateSource) {
			res.EstimateSource = t.source
		}
		res.Stages = append(res.Stages, httpapi.StageResult{Module: t.module.Name, Export: t.export, TaskID: t.id,
			CPU: o.cpu, Worker: o.worker, Lane: dos[i].Lane, Types: t.results, Results: o.results,
			Deadline: t.deadline.Sub(ch.arrived), DeadlineMet: !o.finished.After(t.deadline),
			Estimate: t.estimate, EstimateSource: t.source, Queue: max(o.started.Sub(prevEnd), 0),
			Instantiate: time.Duration(o.instNs), Exec: time.Duration(o.execNs), Total: o.finished.Sub(ch.arrived),
			Stopped: o.stopped, Preempted: dos[i].Preempted, OutputBytes: o.stdoutBytes, ExitCode: o.exitCode})
		if o.exitCode != nil && len(o.results) < len(t.results) {
			res.Stages[i].Types = nil
		}
		prevEnd = o.finished
	}
	return res, nil
}

// weaker reports whether estimate source a is weaker evidence than b:
// none < declared < learned. A chain's source is its weakest stage's.
func weaker(a, b string) bool {
	rank := func(s string) int {
		switch s {
		case sched.SourceLearned:
			return 2
		case sched.SourceDeclared:
			return 1
		}
		return 0
	}
	return rank(a) < rank(b)
}

// finishChain records a chain's one answer (err, from stage failed, or
// nil): one call in the counters, its stages in its timeline; s.mu held.
func (s *Supervisor) finishChain(ch *chainCall, os []outcome, failed int, err error) {
	first := ch.stages[0]
	if first.answered {
		return
	}
	k := len(ch.stages)
	s.count.Answered++
	kind := os[k-1].kind
	if failed >= 0 {
		kind = os[failed].kind
	}
	switch {
	case kind == dispatch.Killed:
		s.count.Killed++
	case kind == dispatch.Lost:
		s.count.WorkerLost++
	case apierr.CodeOf(err) == apierr.Trap:
		s.count.Traps++
	}
	if err == nil {
		s.count.Completed++
	}
	s.met.calls.WithLabelValues(outcomeLabel(err)).Inc()
	last := os[k-1]
	if ran := os[0].ran; ran || os[0].kind == dispatch.Expired {
		if err == nil && !last.finished.After(ch.deadline) {
			s.count.Met++
		} else {
			s.count.Missed++
		}
	}
	for i, t := range ch.stages {
		t.answered = true
		delete(s.tasks, t.id)
		if os[i].err == nil {
			s.met.exec.WithLabelValues(t.module.Name, t.export).Observe(time.Duration(os[i].instNs + os[i].execNs).Seconds())
		}
	}
	if s.names[ch.name] == first {
		delete(s.names, ch.name)
	}
	state := "done"
	if err != nil {
		state = "failed: " + err.Error()
	}
	tl := s.chainTimeline(ch, state, os)
	if err == nil {
		met := !last.finished.After(ch.deadline)
		tl.DeadlineMet = &met
	}
	s.recordFinished(-1)
	s.recent.add(tl)
}

// chainTimeline returns ch's timeline for /uname: the chain as a whole
// (its name, end-to-end deadline and summed estimate, the first stage's
// events) and each stage's own in Stages. os, if not nil, are the stages'
// outcomes (the chain is answered); s.mu held.
func (s *Supervisor) chainTimeline(ch *chainCall, state string, os []outcome) Timeline {
	first := ch.stages[0]
	tl := s.timelineOf(first, state)
	tl.DeadlineMs = ms(ch.deadline.Sub(ch.arrived))
	at := ch.deadline
	tl.DeadlineAt = &at
	tl.EstimateMs = 0
	if first.core >= 0 {
		tl.CPU = s.choice.Workers[first.core]
	}
	for i, t := range ch.stages {
		tl.EstimateMs += ms(t.estimate)
		st := "in flight"
		switch {
		case os != nil && os[i].err == nil:
			st = "done"
		case os != nil:
			st = "failed: " + os[i].err.Error()
		case t.dt != nil:
			st = s.stageState(t)
		}
		stl := s.timelineOf(t, st)
		stl.Stage = i + 1
		if os != nil {
			stl.CPU = os[i].cpu
		} else if t.core >= 0 {
			stl.CPU = s.choice.Workers[t.core]
		}
		if os != nil && os[i].err == nil && !t.deadline.IsZero() {
			met := !os[i].finished.After(t.deadline)
			stl.DeadlineMet = &met
		}
		tl.Stages = append(tl.Stages, stl)
	}
	return tl
}

// stageState says where an unanswered stage is, from its dispatcher
// timeline: queued (admitted, waiting for the stage before it or its
// turn), running, or ended; s.mu held.
func (s *Supervisor) stageState(t *task) string {
	steps := s.disp.Timeline(t.dt)
	if len(steps) == 0 {
		return "queued"
	}
	switch w := steps[len(steps)-1].What; w {
	case "admitted", "re-admitted":
		return "queued"
	case "started", "resumed":
		return "running"
	default:
		return w
	}
}
