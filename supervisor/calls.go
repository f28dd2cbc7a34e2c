package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// maxParams bounds the parameters of one call.
const maxParams = 64

// call is a decoded call: module, export, typed params, input.
type call struct {
	module  *Module
	export  ExportInfo
	params  []uint64
	results []wasmval.Type
	in      callInput
	key     string
	// shape is the estimator key of (module, export, params) with any
	// input, for a call with input; "" otherwise (learnedKey).
	shape string
}

// callInput is a call's WASI input in the Job form (ipc.Job): stdin, and
// argv after the program name and environment as NUL-ended entries. The
// zero value is no input.
type callInput struct{ stdin, args, env []byte }

// setInput gives cl its input, and with it an estimator key of its own:
// the same export with another input may take another time. A call
// without input keeps the key it had, and the calibrations stored under
// it.
func (cl *call) setInput(stdin []byte, args, env []string) {
	cl.in = callInput{stdin: stdin, args: ipc.AppendList(nil, args), env: ipc.AppendList(nil, env)}
	d := cl.in.digest()
	cl.key = estimateKey(cl.module, cl.export.Name, cl.params, d)
	cl.shape = ""
	if d != "" {
		cl.shape = estimateKey(cl.module, cl.export.Name, cl.params, anyInput)
	}
}

// forShape returns cl keyed by its shape, for a background calibration
// that measures it for any input; cl itself for a call without input.
func (cl *call) forShape() *call {
	if cl.shape == "" {
		return cl
	}
	c := *cl
	c.key = cl.shape
	return &c
}

// anyInput stands for the digest in a shape's estimator key (call.shape):
// not hex, so no digest is ever equal to it.
const anyInput = "any-input"

// learnedKey returns the estimator key whose estimate a call uses: its own
// (module, export, params, input) once that has one, else, for a call with
// input, its shape's: what the representative input of a register, and
// every run with input since, say this export takes. Inputs that never
// repeat (a camera's frames) are thus admitted on what the shape takes,
// not each as unmeasured; s.mu held.
func (s *Supervisor) learnedKey(cl *call) string {
	return learnedKeyOf(s.est, cl.key, cl.shape)
}

func learnedKeyOf(est *sched.Estimator, key, shape string) string {
	if shape == "" || est.Runs(key) > 0 {
		return key
	}
	return shape
}

// observe feeds a finished run of t into the estimator: its shape's
// estimate always, its own input's only when that has one already (a
// calibration made it), so that a stream of inputs that never repeat does
// not evict every other estimate from the estimator's bounded set; s.mu
// held.
func (s *Supervisor) observe(t *task, run int64, atLeast bool) {
	for _, k := range []string{t.key, t.shape} {
		switch {
		case k == "" || k == t.key && t.shape != "" && s.est.Runs(k) == 0:
		case atLeast:
			s.est.ObserveAtLeast(k, run)
		default:
			s.est.Observe(k, run)
		}
	}
}

// digest identifies the input in estimator keys and stored calibrations:
// the first 16 hex digits of a SHA-256 over the three fields, each
// preceded by its length so that bytes cannot move from one to the next;
// "" when there is no input.
func (in callInput) digest() string {
	if len(in.stdin) == 0 && len(in.args) == 0 && len(in.env) == 0 {
		return ""
	}
	h := sha256.New()
	for _, f := range [][]byte{in.stdin, in.args, in.env} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// resolve checks a call's module, export and params against the
// export's signature.
func (s *Supervisor) resolve(module, export string, rawTypes, rawParams []byte, resultsLen int) (*call, error) {
	m, ok := s.store.get(module)
	if !ok {
		return nil, apierrNoModule(module)
	}
	return resolveIn(m, export, rawTypes, rawParams, resultsLen)
}

// estimateKey identifies a (module contents, export, params, input)
// quadruple; input is a callInput digest, "" for none, which leaves the
// key as it was before calls had input.
func estimateKey(m *Module, export string, params []uint64, input string) string {
	var buf [160]byte // most keys: only the string is allocated
	b := buf[:0]
	b = append(b, m.SHA256[:min(16, len(m.SHA256))]...)
	b = append(b, '/')
	b = append(b, export...)
	b = append(b, '/')
	for i, p := range params {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, p, 16)
	}
	if input != "" {
		b = append(b, '/')
		b = append(b, input...)
	}
	return string(b)
}

func typesString(ts []wasmval.Type) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, ",")
}

// newTasks counts a call of n tasks (a chain's stages) and names it: the
// client's task_unique_name, or one made up; it refuses the call when the
// daemon stops, n more tasks would be over MaxInFlight, the name is taken,
// or no worker can run anything; s.mu held.
func (s *Supervisor) newTasks(name string, n int) (string, error) {
	s.count.Calls++
	if s.shutting {
		return "", apierrShutdown()
	}
	if name == "" || name == "anon" {
		name = "task-" + strconv.FormatUint(s.nextID+1, 10)
		if _, taken := s.names[name]; taken { // a client chose that name
			name += "-anon"
		}
	}
	if len(s.tasks)+n > s.cfg.MaxInFlight {
		s.count.Rejected++
		e := apierr.New(apierr.Unschedulable, "%d calls are in flight, the configured limit", s.cfg.MaxInFlight)
		if n > 1 {
			e = apierr.New(apierr.Unschedulable, "%d calls are in flight and this chain has %d stages, over the configured limit of %d", len(s.tasks), n, s.cfg.MaxInFlight)
		}
		e.RetryAfter = time.Second
		return "", e
	}
	if _, taken := s.names[name]; taken {
		return "", apierr.New(apierr.InvalidUniqueName, "task_unique_name %q is in flight already", name)
	}
	if !s.anyWorkerWanted() {
		// Not a full machine to retry in a moment: nothing will run it
		// until an operator acts.
		s.count.Rejected++
		return "", apierr.New(apierr.WorkerLost, "no worker is available: every worker is FATAL or stopped; see hyper-schedctl status, and hyper-schedctl start all")
	}
	return name, nil
}

// refused forgets the tasks of a call (a chain's stages) that admission
// refused with err, and counts the refusal.
func (s *Supervisor) refused(name string, err error, ts ...*task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range ts {
		delete(s.tasks, t.id)
	}
	delete(s.names, name)
	s.count.Rejected++
	decision := "rejected"
	if errors.Is(err, sched.ErrInvalidDeadline) {
		decision = "invalid_deadline"
	}
	s.met.admission.WithLabelValues(decision).Inc()
}

// Call admits, runs and answers one call (POST /call).
func (s *Supervisor) Call(ctx context.Context, spec httpapi.CallSpec) (_ *httpapi.CallResult, err error) {
	nice := s.nice.Load()
	nice.begin(spec.Deadline > 0)
	defer nice.end(spec.Deadline > 0)
	if spec.Then != nil {
		return s.callChain(ctx, spec)
	}
	admitted := false // from then on, finish records the call for /uname
	defer func() {
		if err != nil && !admitted {
			s.recordRefusal(spec, err)
		}
	}()
	cl, err := s.resolve(spec.Module, spec.Export, spec.ParamTypes, spec.Params, spec.ResultsLength)
	if err != nil {
		return nil, err
	}
	cl.setInput(spec.Input, spec.Args, spec.Env)
	var e estimate
	if spec.Deadline > 0 {
		if spec.Declared >= spec.Deadline {
			return nil, apierr.New(apierr.InvalidDeadline, "expected_execution_time %v is not below expected_deadline %v", spec.Declared, spec.Deadline)
		}
		e = s.estimate(cl, spec.Declared)
		if e.c >= spec.Deadline {
			if e.learned {
				// One slow run may have raised it: measure again, so that
				// the shape is not locked out for good.
				s.remeasure(cl)
			}
			return nil, apierr.New(apierr.InvalidDeadline, "the %s execution time of %s is %v, not below expected_deadline %v", e.source, spec.Export, e.c, spec.Deadline)
		}
	}

	s.mu.Lock()
	name, err := s.newTasks(spec.TaskName, 1)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.nextID++
	t := &task{id: s.nextID, name: name, module: cl.module, export: spec.Export, params: cl.params,
		results: cl.results, in: cl.in, key: cl.key, shape: cl.shape, arrived: spec.Arrived, estimate: e.c, source: e.source, core: -1}
	t.events = append(t.events, Step{At: spec.Arrived, What: "arrived"})
	dt := dispatch.NewTask(t.id)
	dt.Payload, t.dt = t, dt
	overhead := time.Duration(s.overhead.Load())
	if spec.Deadline > 0 {
		t.deadline = spec.Arrived.Add(spec.Deadline)
		dt.Deadline, dt.Estimate, dt.Unverified = t.deadline, e.c+overhead, !e.learned
		if spec.AllowLate {
			// It may finish late, up to the best-effort cap past its
			// deadline; admission counts it as blocking its core until then.
			t.lateCap = s.cfg.BestEffortCap
			dt.LateCap = t.lateCap
		}
	} else {
		// Best effort: the learned estimate, so a short call blocks a core
		// it cannot be preempted on for its run time, not the whole cap.
		dt.Estimate = s.cfg.BestEffortCap
		if ns, ok := s.est.Learned(s.learnedKey(cl)); ok && time.Duration(ns)+overhead < dt.Estimate {
			dt.Estimate = time.Duration(ns) + overhead
		}
	}
	s.tasks[t.id] = t
	s.names[name] = t
	s.mu.Unlock()

	core, err := s.disp.Admit(dt)
	if err != nil {
		s.refused(name, err, t)
		var u *sched.Unschedulable
		if errors.As(err, &u) && e.learned && e.source == sched.SourceLearned {
			s.remeasure(cl) // refused on a learned estimate: it may be stale
		}
		return nil, s.admitError(err, spec)
	}
	admitted = true
	s.mu.Lock()
	s.recordFinished(2) // while the job runs (recordFinished)
	s.count.Admitted++
	if spec.Deadline == 0 {
		s.met.admission.WithLabelValues("best_effort").Inc()
		s.count.BestEffort++
	} else {
		s.met.admission.WithLabelValues("admitted").Inc()
		t.core = core
	}
	s.mu.Unlock()
	if !e.learned && spec.Deadline > 0 {
		// Admitted unverified: measure it for next time. A call with
		// input had no estimate for its shape either, and is measured
		// for the shape, so that calls with other new inputs meanwhile
		// share its calibration.
		s.calibrateLater(cl.forShape())
	}

	var do dispatch.Outcome
	select {
	case do = <-dt.Done:
	case <-ctx.Done():
		s.disp.Cancel(t.id)
		do = <-dt.Done // a started job still ends in exactly one answer
	}
	o := s.outcomeOf(t, do)
	s.mu.Lock()
	s.finish(t, o)
	s.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	res := &httpapi.CallResult{TaskID: t.id, TaskName: name, CPU: o.cpu, Worker: o.worker,
		Types: t.results, Results: o.results, Estimate: e.c, EstimateSource: e.source,
		Queue: o.started.Sub(t.arrived), Exec: time.Duration(o.execNs), Instantiate: time.Duration(o.instNs),
		Total: o.finished.Sub(t.arrived), Stdout: o.stdout, Stderr: o.stderr, Lane: do.Lane, Stopped: o.stopped, Begin: o.begin, Preempted: do.Preempted,
		StdoutBytes: o.stdoutBytes, StderrBytes: o.stderrBytes, ExitCode: o.exitCode}
	if o.exitCode != nil && len(o.results) < len(res.Types) {
		res.Types = nil // it exited before returning its results
	}
	if !t.deadline.IsZero() {
		met := !o.finished.After(t.deadline)
		res.DeadlineMet = &met
		res.Deadline = spec.Deadline
	}
	return res, nil
}

// estimate is the C a deadline call is admitted with.
type estimate struct {
	c       time.Duration
	source  string // sched.SourceDeclared, sched.SourceLearned, or "none"
	learned bool   // a measurement exists: the call is verified
}

// estimate returns the C used for admission: the larger of the declared
// and the learned value. A call never measured is admitted unverified (it
// can only hurt itself) and measured in the background; it never waits for
// a calibration.
func (s *Supervisor) estimate(cl *call, declared time.Duration) estimate {
	s.mu.Lock()
	learned, ok := s.est.Learned(s.learnedKey(cl))
	s.mu.Unlock()
	c, source := sched.Choose(declared.Nanoseconds(), learned, ok)
	if !ok && declared == 0 {
		source = "none"
	}
	return estimate{c: time.Duration(c), source: source, learned: ok}
}

// remeasureEvery is how often at most a shape refused on its learned
// estimate is measured again; remeasureKeys bounds the memory of when.
const (
	remeasureEvery = 10 * time.Second
	remeasureKeys  = 4096
)

// remeasure asks benchd to measure again, in the background, a shape that
// was refused because of its learned estimate when that estimate rests on
// few or old runs or one outlier (Estimator.Stale), at most once per
// remeasureEvery: one unlucky run must not lock it out for good, and a
// stream of refused calls must not become a stream of calibrations.
func (s *Supervisor) remeasure(cl *call) {
	now := time.Now()
	s.mu.Lock()
	key := s.learnedKey(cl)
	if !s.est.Stale(key) {
		s.mu.Unlock()
		return // many fresh runs agree: the estimate is what the shape costs
	}
	if last, ok := s.remeasured[key]; ok && now.Sub(last) < remeasureEvery {
		s.mu.Unlock()
		return
	}
	if s.remeasured == nil || len(s.remeasured) >= remeasureKeys {
		s.remeasured = map[string]time.Time{} // forgetting only allows an early retry
	}
	// calibrateLater takes only its queue's lock. A request the full queue
	// dropped is not a re-measure: the next refusal asks again.
	if key == cl.shape {
		cl = cl.forShape() // refused on the shape's estimate: measure that
	}
	if s.remeasureLater(cl) {
		s.remeasured[key] = now
	}
	s.mu.Unlock()
}

// trapStderr is how much of a trapped call's stderr its error repeats.
const trapStderr = 1024

// outcomeOf turns the dispatcher's outcome of t into the call's answer,
// and feeds the run into the estimator.
func (s *Supervisor) outcomeOf(t *task, do dispatch.Outcome) outcome {
	o := outcome{kind: do.Kind, cpu: -1, started: do.Started, finished: do.Finished}
	if do.Core >= 0 {
		w := s.lane(do.Core, do.Lane)
		o.cpu, o.worker = w.cpu, w.name
	}
	if o.ran = !do.Started.IsZero(); o.ran {
		o.stopped = max(do.Finished.Sub(do.Started)-do.Ran, 0)
	} else {
		o.started = do.Finished
	}
	switch do.Kind {
	case dispatch.Finished:
		r := do.Result.(*ipc.Result)
		o.instNs, o.execNs = r.InstNs, r.ExecNs
		if r.StartMono > 0 {
			o.begin = time.Duration(max(r.StartMono-s.monoOf(t.arrived), 0))
			s.met.start.WithLabelValues(strconv.FormatBool(do.Preempted)).Observe(o.begin.Seconds())
		}
		switch {
		case r.Trap != "" && len(r.Stderr) > 0:
			// What the guest said before it trapped (a C abort() is a
			// trap) is often the only account of why.
			o.err = apierr.New(apierr.Trap, "%s; stderr: %q", r.Trap, r.Stderr[:min(len(r.Stderr), trapStderr)])
		case r.Trap != "":
			o.err = apierr.New(apierr.Trap, "%s", r.Trap)
		case r.Err != "":
			// The lane rejects only what the supervisor could not check: a
			// module deleted while this call was queued.
			o.err = apierr.New(apierr.InvalidWasmName, "%s", r.Err)
		default:
			o.results, o.stdout, o.stderr = r.Results, r.Stdout, r.Stderr
			o.stdoutBytes, o.stderrBytes = r.StdoutBytes, r.StderrBytes
			if r.Exited || t.export == "_start" {
				// A command's answer: an exit code, 0 when _start
				// returned without proc_exit.
				code := int(r.ExitCode)
				o.exitCode = &code
			}
			run := r.InstNs + r.ExecNs
			if o.stopped > 0 {
				// The lane's clock ran on while it was stopped.
				run = min(run, do.Ran.Nanoseconds())
			}
			s.mu.Lock()
			s.observe(t, run, false)
			s.mu.Unlock()
		}
	case dispatch.Killed:
		// Why says when: its deadline, its allow_late cap or the
		// best-effort cap, and whether it was running or stopped.
		o.err = apierr.New(apierr.DeadlineExceeded, "%s on %s: %s (after %v of run time)",
			t.export, o.worker, do.Why, do.Ran.Round(time.Microsecond))
		s.log.Info("killed a call's lane", "lane", o.worker, "task", t.id, "module", t.module.Name,
			"export", t.export, "why", do.Why, "ran", do.Ran.Round(time.Microsecond))
		// Killed: it takes at least this long. Feed it back so that the
		// same call is not admitted and killed again and again.
		s.mu.Lock()
		s.observe(t, do.Ran.Nanoseconds(), true)
		s.mu.Unlock()
	case dispatch.Expired:
		o.err = apierr.New(apierr.DeadlineExceeded, "the deadline passed while the call was queued behind calls that ran longer than estimated")
	case dispatch.Lost:
		o.err = apierr.New(apierr.WorkerLost, "%s", do.Why)
	case dispatch.Cancelled:
		o.err = apierr.New(apierr.BadRequest, "client went away")
	case dispatch.Aborted:
		o.err = apierr.New(apierr.ShuttingDown, "hyper-sched is shutting down: %s", do.Why)
	default:
		o.err = fmt.Errorf("unknown outcome %v", do.Kind)
	}
	return o
}

func (s *Supervisor) admitError(err error, spec httpapi.CallSpec) error {
	var u *sched.Unschedulable
	switch {
	case errors.Is(err, sched.ErrInvalidDeadline):
		return apierr.New(apierr.InvalidDeadline, "expected_deadline %v cannot be met: too little of it is left for the estimated execution time", spec.Deadline)
	case errors.As(err, &u):
		e := apierr.New(apierr.Unschedulable, "no worker core can finish this call within %v without making an admitted call late", spec.Deadline)
		e.RetryAfter = time.Duration(u.RetryAfter)
		return e
	case errors.Is(err, sched.ErrQueueFull):
		e := apierr.New(apierr.Unschedulable, "the best-effort queue is full")
		e.RetryAfter = s.cfg.BestEffortCap
		return e
	}
	return fmt.Errorf("admit: %w", err)
}

func apierrShutdown() error {
	return apierr.New(apierr.ShuttingDown, "hyper-sched is shutting down")
}

func apierrNoModule(name string) error {
	return apierr.New(apierr.InvalidWasmName, "no module named %q is registered", name)
}

// finish records t's one answer; s.mu held.
func (s *Supervisor) finish(t *task, o outcome) {
	if t.answered {
		return
	}
	t.answered = true
	s.count.Answered++
	switch {
	case o.kind == dispatch.Killed:
		s.count.Killed++
	case o.kind == dispatch.Lost:
		s.count.WorkerLost++
	case apierr.CodeOf(o.err) == apierr.Trap:
		s.count.Traps++
	}
	if o.err == nil {
		s.count.Completed++
	}
	s.met.calls.WithLabelValues(outcomeLabel(o.err)).Inc()
	if !o.finished.IsZero() {
		s.met.latency.WithLabelValues(t.module.Name, t.export).Observe(o.finished.Sub(t.arrived).Seconds())
	}
	if o.err == nil {
		s.met.exec.WithLabelValues(t.module.Name, t.export).Observe(time.Duration(o.instNs + o.execNs).Seconds())
	}
	delete(s.tasks, t.id)
	if s.names[t.name] == t {
		delete(s.names, t.name)
	}
	// Met or missed: calls that ran, or whose deadline passed in the queue.
	if !t.deadline.IsZero() && (o.ran || o.kind == dispatch.Expired) {
		if o.err == nil && !o.finished.After(t.deadline) {
			s.count.Met++
		} else {
			s.count.Missed++
		}
	}
	s.unrecorded = append(s.unrecorded, finishedCall{t: t, err: o.err, cpu: o.cpu, started: o.started,
		finished: o.finished, instNs: o.instNs})
}

// finishedCall is a call answered but not yet in /uname's and
// /warm-start-latency's records: what they need of its outcome (not its
// output, which may be megabytes).
type finishedCall struct {
	t                 *task
	err               error
	cpu               int
	started, finished time.Time
	instNs            int64
}

// recordFinished puts up to n calls (all: n < 0) that finish left
// unrecorded in the records of /uname and /warm-start-latency, oldest
// first; s.mu held.
//
// Recording a call, its timeline built and kept, is a few microseconds
// its client need not wait for (docs/benchmarks.md, "Sixth pass"). So
// finish leaves it to the next admission, which records two while its
// job runs on its lane, and to whoever reads or adds to the records:
// they record all first, so what they see is as if each call had been
// recorded as it finished.
func (s *Supervisor) recordFinished(n int) {
	if n < 0 || n > len(s.unrecorded) {
		n = len(s.unrecorded)
	}
	for i := range n {
		o := &s.unrecorded[i]
		t := o.t
		state := "done"
		if o.err != nil {
			state = "failed: " + o.err.Error()
		}
		tl := s.timelineOf(t, state)
		if o.err == nil {
			s.warm.add(t.arrived, admittedAt(tl.Events, t.arrived), o.started, time.Duration(o.instNs))
		}
		tl.CPU = o.cpu
		if !t.deadline.IsZero() && o.err == nil {
			met := !o.finished.After(t.deadline)
			tl.DeadlineMet = &met
		}
		s.recent.add(tl)
		s.unrecorded[i] = finishedCall{} // let the task go
	}
	if n == len(s.unrecorded) {
		s.unrecorded = s.unrecorded[:0]
	} else {
		s.unrecorded = s.unrecorded[n:]
	}
}

// recordRefusal keeps the timeline of a call refused before admission for
// /uname, under the name its client chose, in the same bounded ring as
// finished calls: /uname of a refused name shows the refusal and why, not
// an older call of that name. A call without a name of its own is not
// kept: its client has no name to ask for.
func (s *Supervisor) recordRefusal(spec httpapi.CallSpec, err error) {
	if spec.TaskName == "" || spec.TaskName == "anon" {
		return
	}
	_, code := httpapi.StatusOf(err)
	now := time.Now()
	tl := Timeline{Name: spec.TaskName, Module: spec.Module, Export: spec.Export, State: "refused: " + err.Error(), CPU: -1,
		Events: []Step{{At: spec.Arrived, What: "arrived"},
			{At: now, SinceU: max(now.Sub(spec.Arrived), 0).Microseconds(), What: "refused", Detail: code}}}
	if spec.Deadline > 0 {
		tl.DeadlineMs = ms(spec.Deadline)
		at := spec.Arrived.Add(spec.Deadline)
		tl.DeadlineAt = &at
	}
	s.mu.Lock()
	s.recordFinished(-1)
	s.recent.add(tl)
	s.mu.Unlock()
}

// lane returns the child serving lane li of core.
func (s *Supervisor) lane(core, li int) *child { return s.workers[core*s.cfg.Lanes+li] }

// anyWorkerWanted reports whether some worker runs or will run again
// (not FATAL, not stopped); s.mu held.
func (s *Supervisor) anyWorkerWanted() bool {
	for _, w := range s.workers {
		if w.wanted {
			return true
		}
	}
	return false
}

// loseBestEffortIfNoWorker answers the queued best-effort calls when no
// worker will ever take them; s.mu held.
func (s *Supervisor) loseBestEffortIfNoWorker() {
	if s.anyWorkerWanted() {
		return
	}
	for _, t := range s.tasks {
		if t.deadline.IsZero() {
			s.disp.Lose(t.id, "every worker is FATAL or stopped")
		}
	}
}

// pendingBytes returns how many bytes wait unread in nc's receive queue
// (SIOCINQ), 0 when unknown.
func pendingBytes(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}
