package supervisor

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/dispatch"
)

// metrics are the daemon's Prometheus series (GET /metrics). They live in
// a registry of their own: no package-level state, and a test can run two
// supervisors side by side.
type metrics struct {
	reg          *prometheus.Registry
	calls        *prometheus.CounterVec   // by outcome
	admission    *prometheus.CounterVec   // by decision
	latency      callVec                  // arrival → answer, by module and export
	exec         callVec                  // instantiate + call on the worker
	calibrations *prometheus.CounterVec   // by result
	start        *prometheus.HistogramVec // arrival → first instruction on a lane, by preempted
	// series bounds the module and export labels of latency and exec.
	series *callSeries
}

// Bounds of the series labelled by module and export (callSeries): any
// tenant can register modules with thousands of exports and call each, and
// every pair cost ~3.5 KB of /metrics page, for good: 13.5 KB grew to
// 18.9 MB after 5,000 exports (issue 14).
const (
	// maxExportSeries bounds the exports of one module with series of
	// their own; calls of its other exports count under export="_other".
	maxExportSeries = 16
	// maxCallSeries bounds the (module, export) pairs with series, the
	// per-module "_other" ones included: at ~3.5 KB each (both
	// histograms), the page stays under 1 MB. Beyond it calls count under
	// module="_other", export="_other", as do calls of a module deleted
	// while they ran.
	maxCallSeries = 256
	// maxExportLabel bounds an export name used as a label value: wasm
	// puts no bound on names, and each series repeats its labels on ~21
	// lines. A longer name counts under its module's _other. Module names
	// are bounded already (MaxNameLen).
	maxExportLabel = 128
	// otherLabel names the series that aggregate the rest.
	otherLabel = "_other"
)

// callSeries decides the labels of a call's module and export series,
// within maxExportSeries and maxCallSeries, and drops a module's series
// when it is deleted (forget) or replaced by a version without some of
// its exports (keep). Its lock is held while an observation is made, so
// that one cannot bring back the series of a module just forgotten.
type callSeries struct {
	mu      sync.Mutex
	vecs    []*prometheus.HistogramVec
	exports map[string]map[string]bool // module → exports with series ("_other" included)
	n       int                        // pairs with series
	// registered reports whether a module is registered: a call of one
	// deleted meanwhile counts under _other, _other.
	registered func(module string) bool
}

// labels returns the series labels of a call of module's export; mu held.
func (cs *callSeries) labels(module, export string) (string, string) {
	if !cs.registered(module) {
		return otherLabel, otherLabel
	}
	ex := cs.exports[module]
	if ex[export] {
		return module, export
	}
	if len(ex)-btoi(ex[otherLabel]) >= maxExportSeries || len(export) > maxExportLabel {
		export = otherLabel
		if ex[export] {
			return module, export
		}
	}
	if cs.n >= maxCallSeries {
		return otherLabel, otherLabel
	}
	if ex == nil {
		ex = map[string]bool{}
		cs.exports[module] = ex
	}
	ex[export] = true
	cs.n++
	return module, export
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// forget drops module's series: it was deleted.
func (cs *callSeries) forget(module string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, v := range cs.vecs {
		v.DeletePartialMatch(prometheus.Labels{"module": module})
	}
	cs.n -= len(cs.exports[module])
	delete(cs.exports, module)
}

// keep drops the series of module's exports not in exports: it was
// replaced by a version without them.
func (cs *callSeries) keep(module string, exports []ExportInfo) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for e := range cs.exports[module] {
		if e == otherLabel || slices.ContainsFunc(exports, func(x ExportInfo) bool { return x.Name == e }) {
			continue
		}
		for _, v := range cs.vecs {
			v.DeleteLabelValues(module, e)
		}
		delete(cs.exports[module], e)
		cs.n--
	}
}

// callVec is a histogram by module and export within callSeries' bounds.
type callVec struct {
	vec    *prometheus.HistogramVec
	series *callSeries
}

// WithLabelValues returns the observer of a call of module's export: its
// own series, its module's _other, or _other, _other.
func (v callVec) WithLabelValues(module, export string) prometheus.Observer {
	return prometheus.ObserverFunc(func(x float64) {
		v.series.mu.Lock()
		defer v.series.mu.Unlock()
		v.vec.WithLabelValues(v.series.labels(module, export)).Observe(x)
	})
}

// latencyBuckets span 50 µs to ~13 s: a no-op call to a long calibration.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 19)

func newMetrics(s *Supervisor) *metrics {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hyper_sched_call_latency_seconds", Help: "Time from a call's arrival to its answer.", Buckets: latencyBuckets,
	}, []string{"module", "export"})
	exec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hyper_sched_exec_seconds", Help: "Instantiate plus call time on the worker.", Buckets: latencyBuckets,
	}, []string{"module", "export"})
	series := &callSeries{vecs: []*prometheus.HistogramVec{latency, exec}, exports: map[string]map[string]bool{},
		registered: func(name string) bool { _, ok := s.store.get(name); return ok }}
	m := &metrics{
		reg:     prometheus.NewRegistry(),
		latency: callVec{latency, series},
		exec:    callVec{exec, series},
		series:  series,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_calls_total", Help: "Answered calls by outcome.",
		}, []string{"outcome"}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_admission_decisions_total", Help: "Admission decisions: admitted, best_effort, rejected, invalid_deadline.",
		}, []string{"decision"}),
		start: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyper_sched_start_latency_seconds", Help: "Time from a call's arrival to its lane beginning it; preempted=true when it stopped another call to start.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2, 18),
		}, []string{"preempted"}),
		calibrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_calibrations_total", Help: "Calibrations run by benchd, by result.",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.calls, m.admission, latency, exec, m.calibrations, m.start,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	for _, c := range s.children() {
		labels := prometheus.Labels{"proc": c.name}
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hyper_sched_restarts_total", Help: "Times a child process was started again.", ConstLabels: labels,
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(c.restarts)
		}))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hyper_sched_process_running", Help: "1 when the child process is RUNNING.", ConstLabels: labels,
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			if c.state == Running {
				return 1
			}
			return 0
		}))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hyper_sched_calibration_queue_pending", Help: "Background calibrations waiting for benchd.",
	}, func() float64 { return float64(s.CalibrationQueue().Pending) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hyper_sched_calibration_queue_dropped_total", Help: "Background calibrations dropped because the queue was full.",
	}, func() float64 { return float64(s.CalibrationQueue().Dropped) }))
	for core, cpu := range s.choice.Workers {
		labels := prometheus.Labels{"proc": fmt.Sprintf("worker-%d", cpu)}
		for _, cs := range coreSeries {
			read := func() float64 {
				_, cores, _ := s.disp.Stats()
				return cs.read(cores[core])
			}
			if cs.counter {
				m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: cs.name, Help: cs.help, ConstLabels: labels}, read))
			} else {
				m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: cs.name, Help: cs.help, ConstLabels: labels}, read))
			}
		}
	}
	return m
}

// coreSeries are the series of each worker core, read from the dispatcher.
var coreSeries = []struct {
	name, help string
	counter    bool
	read       func(dispatch.CoreInfo) float64
}{
	{"hyper_sched_queue_length", "Deadline jobs queued (not started) on a worker core.", false,
		func(c dispatch.CoreInfo) float64 { return float64(c.Queued) }},
	{"hyper_sched_stopped_jobs", "Started jobs whose lanes are stopped (preempted) on a worker core.", false,
		func(c dispatch.CoreInfo) float64 { return float64(c.Stopped) }},
	{"hyper_sched_lanes_up", "Live lanes of a worker core.", false,
		func(c dispatch.CoreInfo) float64 { return float64(c.CoreStats.Lanes) }},
	{"hyper_sched_core_busy_seconds_total", "Time a worker core spent running jobs.", true,
		func(c dispatch.CoreInfo) float64 { return time.Duration(c.Busy).Seconds() }},
	{"hyper_sched_preemptions_total", "Running jobs stopped for a more urgent one on a worker core.", true,
		func(c dispatch.CoreInfo) float64 { return float64(c.Preemptions) }},
	{"hyper_sched_quantum_rotations_total", "Best-effort jobs stopped at the end of a quantum on a worker core.", true,
		func(c dispatch.CoreInfo) float64 { return float64(c.Rotations) }},
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// outcomeLabel names an answer's outcome for hyper_sched_calls_total.
func outcomeLabel(err error) string {
	if err == nil {
		return "success"
	}
	switch apierr.CodeOf(err) {
	case apierr.Trap:
		return "trap"
	case apierr.DeadlineExceeded:
		return "deadline_exceeded"
	case apierr.WorkerLost:
		return "worker_lost"
	case apierr.ShuttingDown:
		return "shutting_down"
	case apierr.InvalidWasmName:
		return "module_gone"
	case apierr.BadRequest:
		return "client_gone"
	}
	return "error"
}
