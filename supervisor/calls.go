package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// maxParams bounds the parameters of one call.
const maxParams = 64

// call is a decoded call: module, export, typed params.
type call struct {
	module  *Module
	export  ExportInfo
	params  []uint64
	results []wasmval.Type
	key     string
}

// resolve checks a call's module, export and params against the
// export's signature.
func (s *Supervisor) resolve(module, export string, rawTypes, rawParams []byte, resultsLen int) (*call, error) {
	m, ok := s.store.get(module)
	if !ok {
		return nil, apierrNoModule(module)
	}
	exp, ok := m.export(export)
	if !ok {
		return nil, apierr.New(apierr.InvalidExportFunc, "module %q has no exported function %q", module, export)
	}
	sig := exp.Params
	args, err := wasmval.ParseParams(rawParams, maxParams)
	if err != nil {
		return nil, apierr.New(apierr.InvalidParams, "%v", err)
	}
	if len(args) != len(sig) {
		return nil, apierr.New(apierr.InvalidParams, "%s takes %d params (%s), got %d", export, len(sig), typesString(sig), len(args))
	}
	types, err := wasmval.ParseTypes(rawTypes, len(args))
	if err != nil {
		return nil, apierr.New(apierr.InvalidParams, "%v", err)
	}
	// A non-nil types has one entry per param.
	if types != nil && !slices.Equal(types, sig) {
		return nil, apierr.New(apierr.InvalidParams, "param_type %s does not match %s(%s)", typesString(types), export, typesString(sig))
	}
	bits, err := wasmval.Bits(args, sig)
	if err != nil {
		return nil, apierr.New(apierr.InvalidParams, "%v", err)
	}
	results := exp.Results // shared with the store, read only
	if resultsLen >= 0 && resultsLen != len(results) {
		return nil, apierr.New(apierr.InvalidParams, "results_length is %d but %s returns %d values", resultsLen, export, len(results))
	}
	return &call{module: m, export: exp, params: bits, results: results, key: estimateKey(m, export, bits)}, nil
}

// estimateKey identifies a (module contents, export, params) triple.
func estimateKey(m *Module, export string, params []uint64) string {
	b := make([]byte, 0, 16+2+len(export)+17*len(params))
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
	return string(b)
}

func typesString(ts []wasmval.Type) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, ",")
}

// Call admits, runs and answers one call (POST /call).
func (s *Supervisor) Call(ctx context.Context, spec httpapi.CallSpec) (*httpapi.CallResult, error) {
	cl, err := s.resolve(spec.Module, spec.Export, spec.ParamTypes, spec.Params, spec.ResultsLength)
	if err != nil {
		return nil, err
	}
	var c time.Duration
	var source string
	if spec.Deadline > 0 {
		if spec.Declared >= spec.Deadline {
			return nil, apierr.New(apierr.InvalidDeadline, "expected_execution_time %v is not below expected_deadline %v", spec.Declared, spec.Deadline)
		}
		if c, source, err = s.estimate(ctx, cl, spec.Declared); err != nil {
			return nil, err
		}
		if c >= spec.Deadline {
			return nil, apierr.New(apierr.InvalidDeadline, "the %s execution time of %s is %v, not below expected_deadline %v", source, spec.Export, c, spec.Deadline)
		}
	}

	s.mu.Lock()
	s.count.Calls++
	if s.shutting {
		s.mu.Unlock()
		return nil, apierrShutdown()
	}
	name := spec.TaskName
	if name == "" || name == "anon" {
		name = "task-" + strconv.FormatUint(s.nextID+1, 10)
		if _, taken := s.names[name]; taken { // a client chose that name
			name += "-anon"
		}
	}
	if len(s.tasks) >= s.cfg.MaxInFlight {
		s.count.Rejected++
		s.mu.Unlock()
		e := apierr.New(apierr.Unschedulable, "%d calls are in flight, the configured limit", s.cfg.MaxInFlight)
		e.RetryAfter = time.Second
		return nil, e
	}
	if _, taken := s.names[name]; taken {
		s.mu.Unlock()
		return nil, apierr.New(apierr.InvalidUniqueName, "task_unique_name %q is in flight already", name)
	}
	s.nextID++
	t := &task{id: s.nextID, name: name, module: cl.module, export: spec.Export, params: cl.params,
		results: cl.results, key: cl.key, arrived: spec.Arrived, estimate: c, source: source, core: -1,
		done: make(chan outcome, 1)}
	t.events = append(t.events, Step{At: spec.Arrived, What: "arrived"})
	j := sched.Job{ID: t.id, Estimate: (c + s.cfg.DispatchOverhead).Nanoseconds()}
	if spec.Deadline > 0 {
		t.deadline = spec.Arrived.Add(spec.Deadline)
		j.Deadline = s.at(t.deadline)
		if spec.AllowLate {
			// It may finish late, up to the best-effort cap past its
			// deadline; admission counts it as blocking its core until then.
			t.lateCap = s.cfg.BestEffortCap
			j.LateCap = t.lateCap.Nanoseconds()
		}
	} else {
		// Best effort: the learned estimate, so a short call blocks its
		// core in the admission test for its run time, not the whole cap.
		j.Estimate = s.cfg.BestEffortCap.Nanoseconds()
		if ns, ok := s.est.Learned(cl.key); ok && ns+s.cfg.DispatchOverhead.Nanoseconds() < j.Estimate {
			j.Estimate = ns + s.cfg.DispatchOverhead.Nanoseconds()
		}
	}
	if j.Deadline == 0 && !s.anyWorkerWanted() {
		s.count.Rejected++
		s.mu.Unlock()
		return nil, apierr.New(apierr.WorkerLost, "no worker is running or restarting; see hyper-schedctl status")
	}
	core, err := s.sched.Admit(s.now(), j)
	if err != nil {
		s.count.Rejected++
		decision := "rejected"
		if errors.Is(err, sched.ErrInvalidDeadline) {
			decision = "invalid_deadline"
		}
		s.met.admission.WithLabelValues(decision).Inc()
		s.mu.Unlock()
		return nil, s.admitError(err, spec)
	}
	s.count.Admitted++
	if j.Deadline == 0 {
		s.met.admission.WithLabelValues("best_effort").Inc()
		s.count.BestEffort++
		t.event("queued", "best effort")
	} else {
		s.met.admission.WithLabelValues("admitted").Inc()
		t.core = core
		t.event("admitted", s.workers[core].name)
	}
	s.tasks[t.id] = t
	s.names[name] = t
	s.dispatchIdle()
	s.mu.Unlock()

	var o outcome
	select {
	case o = <-t.done:
	case <-ctx.Done():
		s.mu.Lock()
		if s.sched.Cancel(t.id) {
			s.finish(t, outcome{err: apierr.New(apierr.BadRequest, "client went away")})
		}
		s.mu.Unlock()
		o = <-t.done // a running job still ends in exactly one answer
	}
	if o.err != nil {
		return nil, o.err
	}
	res := &httpapi.CallResult{TaskID: t.id, TaskName: name, CPU: o.cpu, Worker: o.worker,
		Types: t.results, Results: o.results, Estimate: c, EstimateSource: source,
		Queue: o.started.Sub(t.arrived), Exec: time.Duration(o.execNs), Instantiate: time.Duration(o.instNs),
		Total: o.finished.Sub(t.arrived), Stdout: o.stdout, Stderr: o.stderr}
	if !t.deadline.IsZero() {
		met := !o.finished.After(t.deadline)
		res.DeadlineMet = &met
		res.Deadline = spec.Deadline
	}
	return res, nil
}

// estimate returns the C used for admission: the larger of the declared
// and the learned value. A call never measured is calibrated by benchd
// first when nothing was declared; when something was, it is admitted on
// that and calibrated in the background for next time.
func (s *Supervisor) estimate(ctx context.Context, cl *call, declared time.Duration) (time.Duration, string, error) {
	s.mu.Lock()
	learned, ok := s.est.Learned(cl.key)
	s.mu.Unlock()
	if !ok {
		if declared > 0 {
			go s.calibrate(context.Background(), cl)
		} else {
			if _, err := s.calibrate(ctx, cl); err != nil {
				return 0, "", err
			}
			s.mu.Lock()
			learned, ok = s.est.Learned(cl.key)
			s.mu.Unlock()
		}
	}
	c, source := sched.Choose(declared.Nanoseconds(), learned, ok)
	return time.Duration(c), source, nil
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

// dispatchIdle starts the next job on every idle running worker; s.mu held.
func (s *Supervisor) dispatchIdle() {
	now := s.now()
	for i := 0; i < len(s.workers); i++ {
		c := s.workers[i]
		if c.state != Running || c.running != nil {
			continue
		}
		j, ok := s.sched.Next(c.core, now)
		if !ok {
			continue
		}
		t := s.tasks[j.ID]
		if t == nil || t.answered {
			// Cannot happen: finished tasks leave the scheduler first.
			panic(fmt.Sprintf("supervisor: scheduler returned unknown job %d", j.ID))
		}
		if !t.deadline.IsZero() && t.lateCap == 0 && time.Now().After(t.deadline) {
			// Jobs ahead of it overran their estimates: starting it now
			// would only get the worker killed. Answer, and take the next.
			s.sched.Done(c.core, now)
			s.count.Missed++
			t.event("expired", "its deadline passed while it was queued")
			s.finish(t, outcome{err: apierr.New(apierr.DeadlineExceeded,
				"the deadline passed while the call was queued on %s behind calls that ran longer than estimated", c.name),
				cpu: c.cpu, worker: c.name})
			i-- // the same worker is still idle
			continue
		}
		s.start(c, t)
	}
}

// start marks t running on c, arms its firm deadline and sends the job;
// s.mu held.
func (s *Supervisor) start(c *child, t *task) {
	c.running = t
	t.core = c.core
	t.started = time.Now()
	t.event("started", c.name)
	limit := s.cfg.BestEffortCap
	if !t.deadline.IsZero() {
		limit = time.Until(t.deadline) + t.lateCap + s.cfg.Grace
	}
	gen := c.gen
	t.killAt = t.started.Add(limit)
	t.timer = time.AfterFunc(limit, func() { s.overrun(c, gen, t) })
	s.warm.n++
	s.warm.startSum += t.started.Sub(t.arrived)
	// A failed write closes the connection; the worker's monitor then
	// answers this job as lost.
	c.out.push(ipc.KindJob, &ipc.Job{ID: t.id, Module: []byte(t.module.Name),
		Export: []byte(t.export), Params: t.params})
}

// overrun fires at a running job's firm deadline (or best-effort cap): the
// worker is killed, the call answered 504, the worker restarted.
func (s *Supervisor) overrun(c *child, gen int, t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen != gen || c.running != t || t.answered {
		return
	}
	if c.resultFor.Load() == t.id || pendingBytes(c.nc) > 0 {
		// The result is already on its way (read but waiting for this
		// lock, or in the socket): the job ended in time or nearly, and
		// its answer will say deadline_met. Killing now would lose it.
		return
	}
	c.killedByUs = true
	what := "its deadline"
	if t.lateCap > 0 {
		what = fmt.Sprintf("%v past its deadline (allow_late)", t.lateCap)
	}
	if t.deadline.IsZero() {
		what = "the best-effort runtime cap " + s.cfg.BestEffortCap.String()
	}
	s.count.Killed++
	t.event("killed", c.name)
	s.finish(t, outcome{err: apierr.New(apierr.DeadlineExceeded, "%s was still running on %s at %s; the worker was killed",
		t.export, c.name, what), cpu: c.cpu, worker: c.name})
	s.killChild(c)
}

// onResult answers the running job of c and starts the next.
func (s *Supervisor) onResult(c *child, r *ipc.Result) {
	s.mu.Lock()
	t := c.running
	if t == nil || t.id != r.ID || t.answered {
		s.mu.Unlock()
		c.log.Warn("result for a job not running", "task", r.ID)
		return
	}
	now := time.Now()
	c.running = nil
	if c.state == Stopping && c.nc != nil {
		c.nc.Close() // the stop was waiting for this job (stopProc)
	}
	s.sched.Done(c.core, s.now())
	o := outcome{cpu: c.cpu, worker: c.name, started: t.started, finished: now, instNs: r.InstNs, execNs: r.ExecNs}
	switch {
	case r.Trap != "":
		s.count.Traps++
		o.err = apierr.New(apierr.Trap, "%s", r.Trap)
	case r.Err != "":
		// The worker rejects only what the supervisor could not check: a
		// module deleted while this call was queued.
		o.err = apierr.New(apierr.InvalidWasmName, "%s", r.Err)
	default:
		o.results = append([]uint64(nil), r.Results...)
		o.stdout = append([]byte(nil), r.Stdout...)
		o.stderr = append([]byte(nil), r.Stderr...)
		s.est.Observe(t.key, r.InstNs+r.ExecNs)
		s.count.Completed++
	}
	s.warm.schedSum += time.Duration(r.InstNs)
	t.event("finished", fmt.Sprintf("exec %dµs", r.ExecNs/1000))
	s.finish(t, o)
	s.dispatchIdle()
	s.mu.Unlock()
}

// finish delivers t's one answer; s.mu held. Later calls are ignored.
func (s *Supervisor) finish(t *task, o outcome) {
	if t.answered {
		return
	}
	t.answered = true
	s.count.Answered++
	s.met.calls.WithLabelValues(outcomeLabel(o.err)).Inc()
	if !o.finished.IsZero() {
		s.met.latency.WithLabelValues(t.module.Name, t.export).Observe(o.finished.Sub(t.arrived).Seconds())
	}
	if o.err == nil {
		s.met.exec.WithLabelValues(t.module.Name, t.export).Observe(time.Duration(o.instNs + o.execNs).Seconds())
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	delete(s.tasks, t.id)
	if s.names[t.name] == t {
		delete(s.names, t.name)
	}
	state := "done"
	if o.err != nil {
		state = "failed: " + o.err.Error()
	}
	if !t.deadline.IsZero() && !t.started.IsZero() {
		if o.err == nil && !o.finished.After(t.deadline) {
			s.count.Met++
		} else {
			s.count.Missed++
		}
	}
	tl := t.timeline(state)
	tl.CPU = o.cpu
	if !t.deadline.IsZero() && o.err == nil {
		met := !o.finished.After(t.deadline)
		tl.DeadlineMet = &met
	}
	s.recent.add(tl)
	t.done <- o
}

// childUp is called when c reached RUNNING; s.mu held.
func (s *Supervisor) childUp(c *child) {
	s.broadcast()
	if c.core < 0 {
		return
	}
	s.sched.Done(c.core, s.now()) // the job killed at its deadline, if any
	s.sched.SetAvailable(c.core, true)
	if len(c.pending) > 0 {
		c.pending = s.readmit(c.pending, c.name+" restarted")
		s.losePending(c, "restarted too late")
	}
	if !s.ready {
		s.ready = true
		for _, w := range s.workers {
			s.ready = s.ready && w.state == Running
		}
	}
	s.dispatchIdle()
}

// childDown is called when c's process is gone; s.mu held. Its running job
// is answered; its queue is admitted again on the other cores, or answered
// when it no longer fits anywhere.
func (s *Supervisor) childDown(c *child, why string) {
	s.broadcast()
	if c.core < 0 {
		s.bench.lost(why)
		return
	}
	if t := c.running; t != nil {
		c.running = nil
		if !t.answered {
			s.count.WorkerLost++
			t.event("worker lost", why)
			s.finish(t, outcome{err: apierr.New(apierr.WorkerLost, "%s exited while running this call (%s)", c.name, why),
				cpu: c.cpu, worker: c.name})
		}
	}
	if c.killedByUs && c.state == Exited {
		// Our own deadline kill, restarted at once: the queue stays, and
		// the killed job keeps blocking the core in the admission test
		// until its deadline + grace + restart cost (sched.Config). childUp
		// ends it with Done and dispatches the queue.
		return
	}
	s.sched.SetAvailable(c.core, false)
	// What no other core can take waits for the restart (childUp).
	c.pending = append(c.pending, s.readmit(s.sched.Drain(c.core), why)...)
}

// readmit admits jobs again after their worker was lost and returns those
// that fit nowhere now; s.mu held.
func (s *Supervisor) readmit(jobs []sched.Job, why string) (left []sched.Job) {
	now := s.now()
	for _, j := range jobs {
		t := s.tasks[j.ID]
		if t == nil {
			continue
		}
		core, err := s.sched.Admit(now, j)
		if err != nil {
			left = append(left, j)
			continue
		}
		t.core = core
		t.event("re-admitted", s.workers[core].name+" after "+why)
	}
	return left
}

// losePending answers the jobs waiting for c's restart; s.mu held.
func (s *Supervisor) losePending(c *child, why string) {
	for _, j := range c.pending {
		if t := s.tasks[j.ID]; t != nil {
			s.count.WorkerLost++
			t.event("worker lost", why)
			s.finish(t, outcome{err: apierr.New(apierr.WorkerLost, "%s: %s, and no other core can finish this call in time", c.name, why)})
		}
	}
	c.pending = nil
}

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
		if t.deadline.IsZero() && t.started.IsZero() && s.sched.Cancel(t.id) {
			s.count.WorkerLost++
			s.finish(t, outcome{err: apierr.New(apierr.WorkerLost, "every worker is FATAL or stopped")})
		}
	}
}

// abortAll answers every call still in flight with err; s.mu held.
func (s *Supervisor) abortAll(err error) {
	for _, t := range s.tasks {
		s.sched.Cancel(t.id)
		s.finish(t, outcome{err: err})
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
