package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Register compiles, validates, stores and calibrates uploaded modules
// (POST /register): all of them, or none. Identical bytes under a taken
// name are accepted as they are; other bytes need spec.Replace.
//
// Every module is compiled in benchd and checked against the call to
// calibrate first, with no lock held (prepare). Then, holding the store's
// locks of their names, the form is checked against what is registered,
// committed to disk and memory, and installed on the workers, and undone
// whole should a step fail (commitForm). Calibrations run last, without
// the locks, so that a DELETE or another register need not wait for them.
func (s *Supervisor) Register(ctx context.Context, spec httpapi.RegisterSpec) ([]httpapi.Registered, error) {
	if len(spec.Modules) == 0 {
		return nil, apierr.New(apierr.BadRequest, "no module file in the form: send one as -F \"name.wasm=@file.wasm\"")
	}
	s.mu.Lock()
	shutting := s.shutting
	s.mu.Unlock()
	if shutting {
		return nil, apierrShutdown()
	}
	spec, unspool, err := s.store.spoolAll(spec)
	defer unspool()
	if err != nil {
		return nil, err
	}
	ups, err := s.prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := s.commitForm(ctx, spec.Replace, ups); err != nil {
		return nil, err
	}
	// The bytes are in the store: the spool files and their share of the
	// upload budget go while the calibrations run.
	spec.Release()
	unspool()
	returnMemory(spec)
	out := make([]httpapi.Registered, 0, len(ups))
	for _, u := range ups {
		out = append(out, s.calibrateRegistered(ctx, u))
	}
	return out, nil
}

// apierrBadName refuses a name no module can have: a 400 (InvalidWasmName
// is the 404 of a valid name that is not registered).
func apierrBadName(err error) error { return apierr.New(apierr.BadRequest, "%v", err) }

// CheckUpload refuses a module file of a register form by its name, before
// its bytes are read (httpapi.UploadChecker): a name that can never be a
// module's, or a new name while --max-modules are registered. Register
// checks again.
func (s *Supervisor) CheckUpload(name string) error {
	if err := ValidName(name); err != nil {
		return apierrBadName(err)
	}
	if _, ok := s.store.get(name); !ok && s.store.len() >= s.cfg.MaxModules {
		return apierrFull(s.cfg.MaxModules)
	}
	return nil
}

func apierrFull(max int) error {
	return apierr.New(apierr.TooLarge,
		"%d modules are registered, the configured limit; delete one first (DELETE /modules/NAME)", max)
}

// returnMemoryAbove is the size of a form above which the register hands
// free memory back to the kernel once its modules are installed.
const returnMemoryAbove = 4 << 20

// returnMemory gives the heap's free pages back to the kernel after a
// form that moved large modules through memory: each was read from disk
// for benchd and for the lanes, and encoded into their frames, at most a
// few at a time but each time anew. Go's background scavenger only
// returns what lies beyond the next collection's goal, which an idle
// daemon does not lower: 141 MB stayed resident 150 s after 50 registers
// of 30 MiB modules and their deletes (docs/benchmarks.md). The forced
// collection costs a few milliseconds on the housekeeping CPU, once per
// large form.
func returnMemory(spec httpapi.RegisterSpec) {
	var n int64
	for _, up := range spec.Modules {
		n += up.Size
	}
	if n >= returnMemoryAbove {
		debug.FreeOSMemory()
	}
}

// checkInitDir checks Config.InitDir: empty, or an existing directory.
func checkInitDir(dir string) error {
	if dir == "" {
		return nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return fmt.Errorf("config: init dir %s: %w", dir, cutPathErr(err))
	}
	return nil
}

func cutPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// upload is one module of a register form on its way in.
type upload struct {
	m     *Module
	calls []*call // to calibrate once registered
	// skipped counts the parameterless exports not calibrated
	// (maxRegisterCalibrations).
	skipped   int
	unchanged bool // the same bytes were registered already
}

// prepare checks every module of the form before anything changes: its
// name, that it comes once, that it compiles, that it has the call to
// calibrate. A name taken by other bytes without replace is refused here
// already, sparing benchd the compile; commitForm checks again under the
// lock.
func (s *Supervisor) prepare(ctx context.Context, spec httpapi.RegisterSpec) ([]*upload, error) {
	seen := map[string]bool{}
	ups := make([]*upload, 0, len(spec.Modules))
	for _, up := range spec.Modules {
		if err := ValidName(up.Name); err != nil {
			return nil, apierrBadName(err)
		}
		if seen[up.Name] {
			return nil, apierr.New(apierr.BadRequest, "module %q comes twice in the form", up.Name)
		}
		seen[up.Name] = true
		if cur, ok := s.store.get(up.Name); ok && cur.SHA256 != up.SHA256 && !spec.Replace {
			return nil, apierrTaken(cur)
		}
		u, err := s.compile(ctx, spec, up)
		if err != nil {
			return nil, err
		}
		ups = append(ups, u)
	}
	return ups, nil
}

// apierrTaken refuses other bytes under cur's name.
func apierrTaken(cur *Module) error {
	return apierr.New(apierr.Conflict,
		"a different module named %q is registered (sha256 %s); add the form field replace=true to replace it", cur.Name, cur.SHA256[:min(12, len(cur.SHA256))])
}

// compile has benchd compile up, and resolves the calls a register
// calibrates against its exports: the named call, or its parameterless
// exports.
func (s *Supervisor) compile(ctx context.Context, spec httpapi.RegisterSpec, up httpapi.Upload) (*upload, error) {
	m := &Module{Name: up.Name, SHA256: up.SHA256, Size: int(up.Size), Registered: time.Now().UTC(),
		spool: up.File, dir: s.store.moduleDir(up.Name)}
	l, err := s.bench.ensureLoaded(ctx, m)
	if err != nil {
		return nil, err
	}
	m.CompileNs = l.CompileNs
	for _, e := range l.Exports {
		m.Exports = append(m.Exports, ExportInfo{Name: e.Name, Params: wasmTypes(e.Params), Results: wasmTypes(e.Results)})
	}
	u := &upload{m: m}
	// The form's input, if any, is every calibrated call's: it is the
	// input the client will send, so the one worth measuring.
	if spec.Export != "" {
		cl, err := resolveIn(m, spec.Export, spec.ParamTypes, spec.Params, -1)
		if err != nil {
			return nil, err
		}
		cl.setInput(spec.Input, spec.Args, spec.Env)
		u.calls = append(u.calls, cl)
		return u, nil
	}
	names, n := registerExports(m.Exports)
	for _, name := range names {
		if cl, err := resolveIn(m, name, nil, nil, -1); err == nil {
			cl.setInput(spec.Input, spec.Args, spec.Env)
			u.calls = append(u.calls, cl)
		}
	}
	u.skipped = n - len(names)
	return u, nil
}

// commitForm registers the prepared modules under their names' locks:
// checked against what is registered now, installed on the workers, then
// committed to disk and memory (store.commit). A module is served only once
// every lane has it, and a form whose install or commit fails is undone on
// the workers. Modules registered already with the same bytes are left as
// they are.
func (s *Supervisor) commitForm(ctx context.Context, replace bool, ups []*upload) error {
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.m.Name
	}
	unlock, err := s.store.lock(ctx, names...)
	if err != nil {
		return err
	}
	defer unlock()
	var fresh, olds []*Module
	added := 0
	for _, u := range ups {
		cur, ok := s.store.get(u.m.Name)
		switch {
		case ok && cur.SHA256 == u.m.SHA256:
			u.m, u.unchanged = cur, true
		case ok && !replace:
			return apierrTaken(cur)
		default:
			if !ok {
				added++
			}
			fresh, olds = append(fresh, u.m), append(olds, cur)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// Only new names count: a replacement never takes another slot, even
	// over a limit lowered since the modules were registered.
	if added > 0 && !s.store.reserve(added, s.cfg.MaxModules) {
		return apierrFull(s.cfg.MaxModules)
	}
	defer s.store.release(added)
	for i, m := range fresh {
		done, err := s.installOnWorkers(ctx, m)
		defer done() // once committed: lanes starting meanwhile load it
		if err != nil {
			s.uninstall(fresh[:i+1], olds)
			return apierr.New(apierr.CodeOf(err), "register: install on the workers: %v; the register was undone", err)
		}
	}
	c, err := s.store.commit(fresh)
	if err != nil {
		// Versions that could not be put back stay registered, and on
		// the workers: they must have what the store has.
		var stuck *stuckError
		errors.As(err, &stuck)
		var undo, back []*Module
		for i, m := range fresh {
			if stuck == nil || !slices.Contains(stuck.stuck, m) {
				undo, back = append(undo, m), append(back, olds[i])
			}
		}
		s.uninstall(undo, back)
		return fmt.Errorf("register: %w", err)
	}
	if err := c.finish(); err != nil {
		s.log.Warn("register: remove the replaced versions; the next start will", "err", err)
	}
	for _, v := range c.vs {
		if v.old != nil {
			s.calib.cancelModule(v.m.Name, v.m.SHA256) // the replaced bytes' calibrations
			s.met.series.keep(v.m.Name, v.m.Exports)
		}
		s.log.Info("registered", "module", v.m.Name, "sha256", v.m.SHA256[:12], "exports", len(v.m.Exports))
	}
	return nil
}

// uninstall undoes the install of ms on the workers: olds[i], the version
// of ms[i] still served, goes back, or ms[i] is unloaded where there was
// none.
func (s *Supervisor) uninstall(ms, olds []*Module) {
	for i, m := range ms {
		if old := olds[i]; old != nil {
			done, err := s.installOnWorkers(context.Background(), old)
			done()
			if err != nil {
				s.log.Error("register: put the served version back on the workers", "module", old.Name, "err", err)
			}
			continue
		}
		s.unloadEverywhere(m.Name)
	}
}

// unloadEverywhere tells every child that is up to forget module name.
func (s *Supervisor) unloadEverywhere(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children() {
		if c.out != nil {
			c.out.push(ipc.KindUnload, &ipc.Unload{Name: name})
		}
	}
}

// calibrateRegistered calibrates a module just registered — the named
// call, or its first parameterless exports — and returns its answer. A
// failed calibration is logged; the module stays registered.
func (s *Supervisor) calibrateRegistered(ctx context.Context, u *upload) httpapi.Registered {
	if u.unchanged {
		r := s.registered(u.m)
		r.Unchanged = true
		return r
	}
	if u.skipped > 0 {
		s.log.Warn("register: calibrating only the first parameterless exports", "module", u.m.Name,
			"parameterless", len(u.calls)+u.skipped, "calibrated", len(u.calls),
			"others", "calibrated on first use; name one with export_func, or use /test")
	}
	for i, cl := range u.calls {
		_, err := s.calibrateAs(ctx, cl, calRegister)
		if err == nil {
			continue
		}
		// The client went, or the module did (a DELETE, another
		// register): what is left is not measured now.
		if ctx.Err() != nil || apierr.CodeOf(err) == apierr.InvalidWasmName {
			s.log.Info("register: calibrations ended", "module", u.m.Name, "measured", i, "left", len(u.calls)-i, "why", err)
			break
		}
		s.log.Warn("calibrate at register", "module", u.m.Name, "export", cl.export.Name, "err", err)
	}
	return s.registered(u.m)
}

// resolveIn checks a call of module m: export, and params against the
// export's signature; resolve finds m in the store, register checks a
// module not in the store yet.
func resolveIn(m *Module, export string, rawTypes, rawParams []byte, resultsLen int) (*call, error) {
	exp, ok := m.export(export)
	if !ok {
		return nil, apierr.New(apierr.InvalidExportFunc, "module %q has no exported function %q", m.Name, export)
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
	results := exp.Results // shared with the module (the store's too), read only
	if resultsLen >= 0 && resultsLen != len(results) {
		return nil, apierr.New(apierr.InvalidParams, "results_length is %d but %s returns %d values", resultsLen, export, len(results))
	}
	return &call{module: m, export: exp, params: bits, results: results, key: estimateKey(m, export, bits, "")}, nil
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

// wasmTypes converts benchd's type codes, which are wasmval's. The result
// is never nil, so meta.json says [] rather than null.
func wasmTypes(ts []uint8) []wasmval.Type {
	out := make([]wasmval.Type, len(ts))
	for i, t := range ts {
		out[i] = wasmval.Type(t)
	}
	return out
}

// registered is the register answer for m: the stored copy, which has the
// calibrations, while it has m's bytes; m itself once a DELETE or another
// register took its place.
func (s *Supervisor) registered(m *Module) httpapi.Registered {
	if cur, ok := s.store.get(m.Name); ok && cur.SHA256 == m.SHA256 {
		m = cur
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
	return r
}

func estimateKeyFor(m *Module, c Calibration) string {
	params := make([]uint64, len(c.Params))
	for i, p := range c.Params {
		params[i], _ = strconv.ParseUint(p, 10, 64)
	}
	return estimateKey(m, c.Export, params, c.Input)
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
	mctx, done := s.calib.boundContext(ctx, cl.module)
	defer done()
	cal, err = s.measure(mctx, cl, source)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(mctx), errModuleGone) {
		// The bytes went, not the caller: that is the outcome, the
		// waiters' too.
		abandoned = false
		return nil, apierr.New(apierr.InvalidWasmName, "module %q was deleted or replaced during its calibration", cl.module.Name)
	}
	// An end of ctx is this caller giving up, not an outcome of the call.
	abandoned = err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
	return cal, err
}

// measure runs cl in benchd and records the outcome: a failed measurement
// is recorded too, with its error.
func (s *Supervisor) measure(ctx context.Context, cl *call, source string) (*Calibration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // the caller went while it waited for its turn
	}
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
	if errors.Is(context.Cause(ctx), errModuleGone) {
		// benchd finished a calibration of bytes deleted or replaced
		// meanwhile: it seeds no estimate.
		return nil, ctx.Err()
	}
	cal := Calibration{Export: cl.export.Name, Source: source, Params: paramStrings(cl.params), At: time.Now().UTC(),
		Input: cl.in.digest()}
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
	req := &ipc.Calibrate{Module: cl.module.Name, Export: cl.export.Name, Params: cl.params, BudgetNs: budget.Nanoseconds(),
		Stdin: cl.in.stdin, Args: cl.in.args, Env: cl.in.env}
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
	cl.setInput(spec.Input, spec.Args, spec.Env)
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

// DeleteModule removes a module (DELETE /modules/:name): from disk first,
// then from memory and the workers, holding the name's lock so that it
// falls in one order with the name's registers and calibration saves. On
// a disk error the module stays registered and served, and the error says
// why. A call already running finishes; one still queued is answered
// Error_Invalid_wasm_name by its worker, which no longer has the module.
func (s *Supervisor) DeleteModule(name string) error {
	if _, ok := s.store.get(name); !ok {
		return apierrNoModule(name)
	}
	unlock, err := s.store.lock(context.Background(), name)
	if err != nil {
		return err
	}
	trash, err := s.deleteLocked(name)
	unlock()
	if err != nil {
		return err
	}
	if err := s.store.purge(trash); err != nil {
		s.log.Warn("delete: remove the deleted module's files; the next start will", "module", name, "err", err)
	}
	return nil
}

// deleteLocked is DeleteModule with the name's lock held. It returns the
// trash directory the module's files are in, for store.purge.
func (s *Supervisor) deleteLocked(name string) (trash string, err error) {
	if _, ok := s.store.get(name); !ok {
		return "", apierrNoModule(name)
	}
	trash, err = s.store.moveAside(name)
	if err != nil {
		return "", fmt.Errorf("delete module %s: %w; it is still registered", name, err)
	}
	s.calib.cancelModule(name, "")
	s.met.series.forget(name)
	s.unloadEverywhere(name)
	s.bench.forget(name)
	return trash, nil
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
