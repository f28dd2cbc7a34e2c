package supervisor

import (
	"fmt"
	"net/http"
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
	latency      *prometheus.HistogramVec // arrival → answer, by module and export
	exec         *prometheus.HistogramVec // instantiate + call on the worker
	calibrations *prometheus.CounterVec   // by result
	start        *prometheus.HistogramVec // arrival → first instruction on a lane, by preempted
}

// latencyBuckets span 50 µs to ~13 s: a no-op call to a long calibration.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 19)

func newMetrics(s *Supervisor) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_calls_total", Help: "Answered calls by outcome.",
		}, []string{"outcome"}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_admission_decisions_total", Help: "Admission decisions: admitted, best_effort, rejected, invalid_deadline.",
		}, []string{"decision"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyper_sched_call_latency_seconds", Help: "Time from a call's arrival to its answer.", Buckets: latencyBuckets,
		}, []string{"module", "export"}),
		exec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyper_sched_exec_seconds", Help: "Instantiate plus call time on the worker.", Buckets: latencyBuckets,
		}, []string{"module", "export"}),
		start: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyper_sched_start_latency_seconds", Help: "Time from a call's arrival to its lane beginning it; preempted=true when it stopped another call to start.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2, 18),
		}, []string{"preempted"}),
		calibrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyper_sched_calibrations_total", Help: "Calibrations run by benchd, by result.",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.calls, m.admission, m.latency, m.exec, m.calibrations, m.start,
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
