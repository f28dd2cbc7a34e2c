package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Register compiles, validates, stores and calibrates uploaded modules
// (POST /register). Identical bytes under a taken name are accepted as they
// are; other bytes need spec.Replace.
func (s *Supervisor) Register(ctx context.Context, spec httpapi.RegisterSpec) ([]httpapi.Registered, error) {
	if len(spec.Modules) == 0 {
		return nil, apierr.New(apierr.BadRequest, "no module file in the form: send one as -F \"name.wasm=@file.wasm\"")
	}
	var out []httpapi.Registered
	for _, up := range spec.Modules {
		r, err := s.registerOne(ctx, spec, up)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Supervisor) registerOne(ctx context.Context, spec httpapi.RegisterSpec, up httpapi.Upload) (httpapi.Registered, error) {
	if err := ValidName(up.Name); err != nil {
		return httpapi.Registered{}, apierr.New(apierr.InvalidWasmName, "%v", err)
	}
	s.mu.Lock()
	shutting := s.shutting
	s.mu.Unlock()
	if shutting {
		return httpapi.Registered{}, apierrShutdown()
	}
	sum := Sum(up.Wasm)
	old, taken := s.store.get(up.Name)
	if taken {
		if old.SHA256 == sum {
			r, err := s.registered(old)
			if err != nil {
				return r, err
			}
			r.Unchanged = true
			return r, nil
		}
		if !spec.Replace {
			return httpapi.Registered{}, apierr.New(apierr.Conflict,
				"a different module named %q is registered (sha256 %s); add the form field replace=true to replace it", up.Name, old.SHA256[:12])
		}
	}
	if !taken && s.store.len() >= s.cfg.MaxModules {
		return httpapi.Registered{}, apierr.New(apierr.TooLarge,
			"%d modules are registered, the configured limit; delete one first (DELETE /modules/NAME)", s.cfg.MaxModules)
	}
	m := &Module{Name: up.Name, SHA256: sum, Size: len(up.Wasm), Registered: time.Now().UTC(), wasm: up.Wasm}
	l, err := s.bench.ensureLoaded(ctx, m)
	if err != nil {
		return httpapi.Registered{}, err
	}
	m.CompileNs = l.CompileNs
	for _, e := range l.Exports {
		m.Exports = append(m.Exports, ExportInfo{Name: e.Name, Params: wasmTypes(e.Params), Results: wasmTypes(e.Results)})
	}
	if err := s.store.put(m); err != nil {
		return httpapi.Registered{}, err
	}
	if taken {
		s.calib.cancelModule(m.Name, m.SHA256) // the replaced bytes' background work
	}
	if err := s.installOnWorkers(ctx, m); err != nil {
		return httpapi.Registered{}, err
	}
	s.log.Info("registered", "module", m.Name, "sha256", m.SHA256[:12], "exports", len(m.Exports))

	// Calibrate the named call, or the parameterless exports: the first
	// maxRegisterCalibrations of them, in export order.
	var calls []*call
	if spec.Export != "" {
		cl, err := s.resolve(m.Name, spec.Export, spec.ParamTypes, spec.Params, -1)
		if err != nil {
			return httpapi.Registered{}, err
		}
		calls = append(calls, cl)
	} else {
		names, n := registerExports(m.Exports)
		for _, name := range names {
			if cl, err := s.resolve(m.Name, name, nil, nil, -1); err == nil {
				calls = append(calls, cl)
			}
		}
		if n > len(names) {
			s.log.Warn("register: calibrating only the first parameterless exports", "module", m.Name,
				"parameterless", n, "calibrated", len(names),
				"others", "calibrated on first use; name one with export_func, or use /test")
		}
	}
	for _, cl := range calls {
		if _, err := s.calibrateAs(ctx, cl, calRegister); err != nil {
			s.log.Warn("calibrate at register", "module", m.Name, "export", cl.export.Name, "err", err)
		}
	}
	return s.registered(m)
}

// registerExports returns the parameterless exports that a register
// without export_func calibrates — the first maxRegisterCalibrations, in
// export order — and how many there are.
func registerExports(exports []ExportInfo) (names []string, parameterless int) {
	for _, e := range exports {
		if len(e.Params) > 0 {
			continue
		}
		if parameterless++; parameterless <= maxRegisterCalibrations {
			names = append(names, e.Name)
		}
	}
	return names, parameterless
}

// installOnWorkers installs the committed module m on every worker lane.
func (s *Supervisor) installOnWorkers(ctx context.Context, m *Module) error {
	if s.installHook != nil {
		if err := s.installHook(m); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.pushLoad(m)
	s.mu.Unlock()
	return nil
}

// pushLoad sends m to every worker that is up; s.mu held. A worker still
// starting gets it from supervise, which compares its loaded set with the
// store.
func (s *Supervisor) pushLoad(m *Module) {
	for _, w := range s.workers {
		if w.out != nil {
			w.out.push(ipc.KindLoad, m.loadFrame())
		}
	}
}

// wasmTypes converts benchd's type codes, which are wasmval's. The result
// is never nil, so meta.json says [] rather than null.
func wasmTypes(ts []uint8) []wasmval.Type {
	out := make([]wasmval.Type, len(ts))
	for i, t := range ts {
		out[i] = wasmval.Type(t)
	}
	return out
}

// registered is the register answer for m, or not found when a DELETE
// removed it meanwhile.
func (s *Supervisor) registered(m *Module) (httpapi.Registered, error) {
	name := m.Name
	m, ok := s.store.get(name) // the stored copy has the calibrations
	if !ok {
		return httpapi.Registered{}, apierrNoModule(name)
	}
	r := httpapi.Registered{Name: m.Name, SHA256: m.SHA256, Size: m.Size, Exports: m.Exports,
		Compile: time.Duration(m.CompileNs), Calibrations: m.Calibrations}
	s.mu.Lock()
	for _, c := range m.Calibrations {
		if c.Err == "" {
			if ns, ok := s.est.Learned(estimateKeyFor(m, c)); ok {
				r.Expected = max(r.Expected, time.Duration(ns))
			}
		}
	}
	s.mu.Unlock()
	return r, nil
}

func estimateKeyFor(m *Module, c Calibration) string {
	params := make([]uint64, len(c.Params))
	for i, p := range c.Params {
		params[i], _ = strconv.ParseUint(p, 10, 64)
	}
	return estimateKey(m, c.Export, params)
}

// calibrateAs measures cl in benchd, seeds the estimator with the result
// and stores it with the module; source says who asked (Calibration.Source).
// Concurrent calibrations of the same estimator key share one measurement:
// every caller gets its Calibration and its error. The Calibration is
// shared and read only; it is nil when nothing was measured (benchd was
// unreachable, the module is gone, ctx ended). A caller whose ctx ends
// stops waiting; if it was the one measuring, a waiter takes over.
func (s *Supervisor) calibrateAs(ctx context.Context, cl *call, source string) (*Calibration, error) {
	foreground := source != calBackground
	for {
		sh, leader := s.calib.join(cl.key, foreground)
		if leader {
			return s.lead(ctx, cl, source, sh, foreground)
		}
		select {
		case <-sh.done:
		case <-ctx.Done():
			s.calib.leave(sh)
			return nil, ctx.Err()
		}
		if !sh.abandoned {
			return sh.cal, sh.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// lead runs the calibration sh of cl and publishes its outcome.
func (s *Supervisor) lead(ctx context.Context, cl *call, source string, sh *sharedCalibration, foreground bool) (cal *Calibration, err error) {
	abandoned := true // if measure panics, waiters do not take a nil result for one
	defer func() { s.calib.finish(cl.key, sh, foreground, cal, err, abandoned) }()
	cal, err = s.measure(ctx, cl, source)
	// An end of ctx is this caller giving up, not an outcome of the call.
	abandoned = err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
	return cal, err
}

// measure runs cl in benchd and records the outcome: a failed measurement
// is recorded too, with its error.
func (s *Supervisor) measure(ctx context.Context, cl *call, source string) (*Calibration, error) {
	// cl was resolved before it waited: the module may be gone since.
	if cur, ok := s.store.get(cl.module.Name); !ok {
		return nil, apierrNoModule(cl.module.Name)
	} else if cur.SHA256 != cl.module.SHA256 {
		return nil, apierr.New(apierr.InvalidWasmName, "module %q was replaced while this request waited; send it again", cl.module.Name)
	}
	measure := s.calib.measure
	if measure == nil {
		measure = s.benchMeasure
	}
	res, err := measure(ctx, cl)
	if err != nil && (apierr.CodeOf(err) == apierr.ShuttingDown ||
		ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))) {
		return nil, err // not an outcome of the call: nothing to record
	}
	cal := Calibration{Export: cl.export.Name, Source: source, Params: paramStrings(cl.params), At: time.Now().UTC()}
	if err != nil {
		cal.Err = err.Error()
	} else {
		cal.Runs, cal.MinNs, cal.MedianNs, cal.P99Ns, cal.MaxNs = res.Runs, res.MinNs, res.MedianNs, res.P99Ns, res.MaxNs
		cal.InstantiateNs, cal.TotalNs, cal.Stable = res.InstantiateNs, res.TotalNs, res.Stable
		switch {
		case res.Trap != "":
			cal.Err = res.Trap
			err = apierr.New(apierr.Trap, "%s", res.Trap)
		case res.Err != "":
			cal.Err = res.Err
			err = apierr.New(apierr.InvalidParams, "%s", res.Err)
		}
	}
	cal.CompileNs = cl.module.CompileNs
	s.mu.Lock()
	s.count.Calibrations++
	result := "ok"
	if cal.Err != "" {
		result = "failed"
	}
	s.met.calibrations.WithLabelValues(result).Inc()
	if cal.Err == "" {
		s.est.Seed(cl.key, cal.P99Ns)
	}
	s.mu.Unlock()
	s.saveCalibration(cl.module, cal)
	return &cal, err
}

// benchMeasure has benchd measure cl.
func (s *Supervisor) benchMeasure(ctx context.Context, cl *call) (*ipc.Calibrated, error) {
	budget := s.cfg.CalibrationBudget
	req := &ipc.Calibrate{Module: cl.module.Name, Export: cl.export.Name, Params: cl.params, BudgetNs: budget.Nanoseconds()}
	// Twice at most: a benchd restarted between the load and the
	// calibration has lost the module and says so (Missing).
	for try := 0; try < 2; try++ {
		if _, err := s.bench.ensureLoaded(ctx, cl.module); err != nil {
			return nil, err
		}
		v, err := s.bench.do(ctx, ipc.KindCalibrate, req, 2*budget+time.Second, s.progress(cl))
		if err != nil {
			return nil, err
		}
		res, ok := v.(*ipc.Calibrated)
		if !ok {
			return nil, fmt.Errorf("benchd answered a calibration with %T", v)
		}
		if !res.Missing {
			return res, nil
		}
		s.bench.forget(cl.module.Name)
	}
	return nil, apierr.New(apierr.WorkerLost, "benchd lost module %q twice while calibrating it; try again", cl.module.Name)
}

// saveCalibration stores cal with the module. A module deleted or replaced
// meanwhile is left alone.
func (s *Supervisor) saveCalibration(m *Module, cal Calibration) {
	if _, err := s.store.putCalibration(m.Name, m.SHA256, cal); err != nil {
		s.log.Error("save calibration", "module", m.Name, "err", err)
	}
}

func paramStrings(ps []uint64) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.FormatUint(p, 10)
	}
	return out
}

// Test measures a call in benchd and stores the result as its estimate
// (POST /test).
func (s *Supervisor) Test(ctx context.Context, spec httpapi.CallSpec) (*httpapi.Tested, error) {
	cl, err := s.resolve(spec.Module, spec.Export, spec.ParamTypes, spec.Params, spec.ResultsLength)
	if err != nil {
		return nil, err
	}
	// A /test that finds the same call being calibrated gets that
	// calibration's outcome, error included.
	cal, err := s.calibrateAs(ctx, cl, calTest)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	est, ok := s.est.Learned(cl.key)
	s.mu.Unlock()
	if !ok {
		est = cal.P99Ns
	}
	return &httpapi.Tested{Estimate: time.Duration(est), Calibration: cal}, nil
}

// seedEstimates loads a stored module's calibrations into the estimator.
func (s *Supervisor) seedEstimates(m *Module) {
	for _, c := range m.Calibrations {
		if c.Err == "" && c.P99Ns > 0 {
			s.est.Seed(estimateKeyFor(m, c), c.P99Ns)
		}
	}
}

// DeleteModule removes a module (DELETE /modules/:name). A call already
// running finishes; one still queued is answered Error_Invalid_wasm_name by
// its worker, which no longer has the module.
func (s *Supervisor) DeleteModule(name string) error {
	if _, ok := s.store.get(name); !ok {
		return apierrNoModule(name)
	}
	if err := s.store.remove(name); err != nil {
		return err
	}
	s.calib.cancelModule(name, "")
	s.mu.Lock()
	for _, c := range s.children() {
		if c.out != nil {
			c.out.push(ipc.KindUnload, &ipc.Unload{Name: name})
		}
	}
	s.mu.Unlock()
	s.bench.forget(name)
	return nil
}

// progress logs a long calibration's progress, about once a second.
func (s *Supervisor) progress(cl *call) func(*ipc.Progress) {
	var last time.Time
	return func(p *ipc.Progress) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		s.log.Info("calibrating", "module", cl.module.Name, "export", cl.export.Name,
			"runs", p.Runs, "elapsed", time.Duration(p.ElapsedNs).Round(time.Millisecond),
			"median", time.Duration(p.MedianNs))
	}
}
