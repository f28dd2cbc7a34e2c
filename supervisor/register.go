package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	s.mu.Lock()
	s.pushLoad(m)
	s.mu.Unlock()
	s.log.Info("registered", "module", m.Name, "sha256", m.SHA256[:12], "exports", len(m.Exports))

	// Calibrate the named call, or every parameterless export.
	var calls []*call
	if spec.Export != "" {
		cl, err := s.resolve(m.Name, spec.Export, spec.ParamTypes, spec.Params, -1)
		if err != nil {
			return httpapi.Registered{}, err
		}
		calls = append(calls, cl)
	} else {
		for _, e := range m.Exports {
			if len(e.Params) == 0 {
				cl, err := s.resolve(m.Name, e.Name, nil, nil, -1)
				if err == nil {
					calls = append(calls, cl)
				}
			}
		}
	}
	for _, cl := range calls {
		if _, err := s.calibrate(ctx, cl); err != nil {
			s.log.Warn("calibrate at register", "module", m.Name, "export", cl.export.Name, "err", err)
		}
	}
	return s.registered(m)
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

// calibrate measures cl in benchd, seeds the estimator with the result and
// stores it with the module. Concurrent calibrations of the same call wait
// for the first.
func (s *Supervisor) calibrate(ctx context.Context, cl *call) (*Calibration, error) {
	s.mu.Lock()
	if s.calibrating == nil {
		s.calibrating = map[string]chan struct{}{}
	}
	if wait, busy := s.calibrating[cl.key]; busy {
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	}
	done := make(chan struct{})
	s.calibrating[cl.key] = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calibrating, cl.key)
		s.mu.Unlock()
		close(done)
	}()

	budget := s.cfg.CalibrationBudget
	req := &ipc.Calibrate{Module: cl.module.Name, Export: cl.export.Name, Params: cl.params, BudgetNs: budget.Nanoseconds()}
	var v any
	var err error
	// Twice at most: a benchd restarted between the load and the
	// calibration has lost the module and says so (Missing).
	for try := 0; try < 2; try++ {
		if _, err := s.bench.ensureLoaded(ctx, cl.module); err != nil {
			return nil, err
		}
		v, err = s.bench.do(ctx, ipc.KindCalibrate, req, 2*budget+time.Second, s.progress(cl))
		if c, ok := v.(*ipc.Calibrated); err != nil || !ok || !c.Missing {
			break
		}
		s.bench.forget(cl.module.Name)
	}
	cal := Calibration{Export: cl.export.Name, Params: paramStrings(cl.params), At: time.Now().UTC()}
	var res *ipc.Calibrated
	switch {
	case err != nil:
		cal.Err = err.Error()
	default:
		var ok bool
		if res, ok = v.(*ipc.Calibrated); !ok {
			return nil, fmt.Errorf("benchd answered a calibration with %T", v)
		}
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

// saveCalibration replaces the module's calibration of the same call and
// persists the module. A module deleted or replaced meanwhile is left alone.
func (s *Supervisor) saveCalibration(m *Module, cal Calibration) {
	cur, ok := s.store.get(m.Name)
	if !ok || cur.SHA256 != m.SHA256 {
		return
	}
	next := *cur
	next.Calibrations = slices.DeleteFunc(slices.Clone(cur.Calibrations), func(c Calibration) bool {
		return c.sameCall(cal.Export, cal.Params)
	})
	next.Calibrations = append(next.Calibrations, cal)
	if err := s.store.put(&next); err != nil {
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
	cal, err := s.calibrate(ctx, cl)
	if err != nil {
		return nil, err
	}
	if cal == nil { // another request calibrated the same call meanwhile
		cur, ok := s.store.get(cl.module.Name)
		if !ok {
			return nil, apierrNoModule(cl.module.Name)
		}
		params := paramStrings(cl.params)
		for i := range cur.Calibrations {
			if c := cur.Calibrations[i]; c.sameCall(cl.export.Name, params) {
				cal = &c
			}
		}
		if cal == nil {
			return nil, errors.New("calibration finished without a result")
		}
	}
	s.mu.Lock()
	est, _ := s.est.Learned(cl.key)
	s.mu.Unlock()
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
