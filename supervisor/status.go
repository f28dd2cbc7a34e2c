package supervisor

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// ProcStatus is one child in /status and hyper-schedctl status.
type ProcStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Pid       int    `json:"pid"`
	CPU       int    `json:"cpu"`
	Affinity  string `json:"affinity"`
	Isolation string `json:"isolation"`
	// Placement is what the kernel reports for the process: cgroup path,
	// cpuset, partition state, affinity, scheduling policy.
	Placement *isolate.Placement `json:"placement,omitempty"`
	Uptime    string             `json:"uptime,omitempty"`
	Restarts  int                `json:"restarts"`
	LastExit  string             `json:"last_exit,omitempty"`
	Stderr    []string           `json:"stderr_tail,omitempty"`
	Lane      int                `json:"lane"`
	LaneState string             `json:"lane_state,omitempty"` // idle, running, stopped, killed, down
	Task      uint64             `json:"task,omitempty"`       // the call started on this lane
	Queue     *CoreQueue         `json:"queue,omitempty"`      // its core's, on every lane
}

// CoreQueue is a worker core's scheduling state.
type CoreQueue struct {
	Available bool    `json:"available"`
	Queued    int     `json:"queued"`
	Running   uint64  `json:"running_task,omitempty"`
	Stopped   int     `json:"stopped"`     // started calls whose lanes are stopped
	Lanes     int     `json:"lanes"`       // live lanes
	BacklogMs float64 `json:"backlog_ms"`  // planned work from now
	Busy      float64 `json:"utilisation"` // share of time since start spent running jobs
	Admitted  uint64  `json:"admitted"`
	Completed uint64  `json:"completed"`
	Rejected  uint64  `json:"infeasible"` // admission tests this core failed
	Preempted uint64  `json:"preemptions"`
	Rotations uint64  `json:"quantum_rotations"`
}

// Status is GET /status.
type Status struct {
	Status       string       `json:"status"`
	Ready        bool         `json:"ready"`
	Uptime       string       `json:"uptime"`
	WorkerCPUs   string       `json:"worker_cpus"`
	Housekeeping string       `json:"housekeeping_cpus"`
	CPUsFrom     string       `json:"cpus_from"`
	Procs        []ProcStatus `json:"processes"`
	BestEffort   int          `json:"best_effort_queued"`
	InFlight     int          `json:"in_flight"`
	Modules      []string     `json:"modules"`
	// Supervisor is where the supervisor itself runs; Skipped lists the
	// better isolation rungs not taken, with the kernel's reasons.
	Supervisor isolate.Placement `json:"supervisor_placement"`
	Skipped    []string          `json:"isolation_skipped,omitempty"`
	// SupervisorNice is the nice the supervisor set itself last: -5 with
	// calls queueing or a deadline call in hand, 0 serving best-effort
	// calls one at a time (nice.go); absent when it cannot set one.
	SupervisorNice *int     `json:"supervisor_nice,omitempty"`
	Counters       counters `json:"counters"`
	// Dispatch counts preemptions, resumes, quantum rotations, kills and
	// lost lanes; RestartCostMs is the measured lane start that admission
	// charges a kill leaving a core without a free lane.
	Dispatch      dispatch.Counters `json:"dispatch"`
	CalibQueue    CalibQueueStats   `json:"calibration_queue"`
	Lanes         int               `json:"lanes_per_cpu"`
	RestartCostMs float64           `json:"restart_cost_ms"`
	PreemptCostMs float64           `json:"preempt_cost_ms"`
	// DispatchOverheadUs is charged to every deadline job, WakeCostUs to
	// work starting on a core whose lanes sleep, TailCostUs once to every
	// core's plan (a slow hop); OverheadSource says whether they were
	// "measured" at start, set by "flag", or are the "default" until a
	// core is measured.
	DispatchOverheadUs float64 `json:"dispatch_overhead_us"`
	WakeCostUs         float64 `json:"wake_cost_us"`
	TailCostUs         float64 `json:"tail_cost_us"`
	OverheadSource     string  `json:"dispatch_overhead_source"`
	// ModuleDir is --module-dir's state, with the files not loaded.
	ModuleDir *ModuleDirStatus `json:"module_dir,omitempty"`
	// Chains are the chains in flight, with where each stage is.
	Chains []ChainStatus `json:"chains,omitempty"`
}

// ChainStatus is one chain in flight in /status.
type ChainStatus struct {
	Name       string        `json:"task_unique_name"`
	DeadlineMs float64       `json:"deadline_ms"`
	Stages     []StageStatus `json:"stages"`
}

// StageStatus is one stage of a chain in flight.
type StageStatus struct {
	Stage      int     `json:"stage"`
	Task       uint64  `json:"task"`
	Module     string  `json:"wasm_name"`
	Export     string  `json:"export_func"`
	State      string  `json:"state"`       // queued, running, or how it ended
	DeadlineMs float64 `json:"deadline_ms"` // its own, from the chain's arrival
}

// Status snapshots the daemon for GET /status. The kernel's view of each
// process (cgroup files, /proc) is read after the lock is released, so a
// status poll never holds up admission with file I/O.
func (s *Supervisor) Status() any {
	out, pids := s.status()
	procs := s.children()
	for i := range out.Procs {
		s.fillPlacement(&out.Procs[i], procs[i], pids[i])
	}
	out.Supervisor, out.Skipped = s.supervisorIsolation(), s.isolationSkipped()
	if g := s.nice.Load(); g != nil {
		n := g.nice()
		out.SupervisorNice = &n
	}
	out.CalibQueue = s.CalibrationQueue()
	out.ModuleDir = s.mdir.status()
	return out
}

// status is the part of Status taken under s.mu, with each process's pid.
func (s *Supervisor) status() (Status, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	up := time.Since(s.epoch)
	st, cores, dc := s.disp.Stats()
	cfg := s.disp.Config()
	out := Status{Status: "Success", Ready: s.ready, Uptime: up.Round(time.Millisecond).String(),
		WorkerCPUs: isolate.FormatList(s.choice.Workers), Housekeeping: isolate.FormatList(s.choice.Housekeeping),
		CPUsFrom: s.choice.Source, BestEffort: st.BestEffortQueued, InFlight: len(s.tasks), Counters: s.count,
		Dispatch: dc, Lanes: s.cfg.Lanes, RestartCostMs: ms(time.Duration(cfg.RestartCost)), PreemptCostMs: ms(time.Duration(cfg.PreemptCost)),
		DispatchOverheadUs: us(time.Duration(s.overhead.Load())), WakeCostUs: us(time.Duration(cfg.WakeCost)),
		TailCostUs: us(time.Duration(cfg.TailCost)), OverheadSource: "flag"}
	switch {
	case s.probing && len(s.probes) > 0:
		out.OverheadSource = "measured"
	case s.probing:
		out.OverheadSource = "default"
	}
	for _, c := range s.children() {
		p := s.procStatus(c)
		pids = append(pids, c.pid)
		if c.core >= 0 {
			cs := cores[c.core]
			q := &CoreQueue{Available: cs.Available, Queued: cs.Queued, Running: cs.RunningID, Stopped: cs.Stopped,
				Lanes: cs.CoreStats.Lanes, BacklogMs: ms(time.Duration(cs.Backlog)), Admitted: cs.Admitted,
				Completed: cs.Completed, Rejected: cs.Infeasible, Preempted: cs.Preemptions, Rotations: cs.Rotations}
			if up > 0 {
				q.Busy = float64(cs.Busy) / float64(up)
			}
			p.Queue, p.Lane, p.LaneState, p.Task = q, c.lane, cs.Lanes[c.lane].State, cs.Lanes[c.lane].Task
		}
		out.Procs = append(out.Procs, p)
	}
	for _, m := range s.store.all() {
		out.Modules = append(out.Modules, m.Name)
	}
	for _, t := range s.tasks {
		if ch := t.chain; ch != nil && t.stage == 0 {
			cs := ChainStatus{Name: ch.name, DeadlineMs: ms(ch.deadline.Sub(ch.arrived))}
			for i, st := range ch.stages {
				cs.Stages = append(cs.Stages, StageStatus{Stage: i + 1, Task: st.id, Module: st.module.Name, Export: st.export,
					State: s.stageState(st)})
				if !st.deadline.IsZero() { // not yet admitted
					cs.Stages[i].DeadlineMs = ms(st.deadline.Sub(ch.arrived))
				}
			}
			out.Chains = append(out.Chains, cs)
		}
	}
	slices.SortFunc(out.Chains, func(a, b ChainStatus) int { return cmp.Compare(a.Stages[0].Task, b.Stages[0].Task) })
	return out, pids
}

// procStatus describes c as the supervisor knows it; s.mu held.
// fillPlacement adds the kernel's view.
func (s *Supervisor) procStatus(c *child) ProcStatus {
	p := ProcStatus{Name: c.name, State: c.state.String(), Pid: c.pid, CPU: c.cpu, Restarts: c.restarts,
		LastExit: c.lastExit}
	if c.pid > 0 {
		p.Uptime = time.Since(c.upAt).Round(time.Millisecond).String()
	}
	if c.state != Running {
		p.Stderr, _ = c.errs.last(10)
	}
	return p
}

// Healthy reports whether every worker is RUNNING (GET /healthz).
func (s *Supervisor) Healthy() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false, "shutting down"
	}
	if !s.mdir.ready() {
		return false, "loading --module-dir " + s.cfg.ModuleDir
	}
	// A lane stopped on purpose (hyper-schedctl stop) does not count. A
	// CPU serves while one of its lanes runs and none is FATAL: a lane
	// killed at a deadline and being respawned does not make the node
	// unhealthy (the core goes on with its other lanes).
	lanesUp, lanesWanted, cpusUp, cpusWanted := 0, 0, 0, 0
	for core := range s.choice.Workers {
		running, wanted, fatal := 0, 0, false
		for li := range s.cfg.Lanes {
			w := s.lane(core, li)
			if w.wanted || w.state == Fatal {
				wanted++
				fatal = fatal || w.state == Fatal
				if w.state == Running {
					running++
				}
			}
		}
		lanesUp, lanesWanted = lanesUp+running, lanesWanted+wanted
		if wanted > 0 {
			cpusWanted++
			if running > 0 && !fatal {
				cpusUp++
			}
		}
	}
	msg := fmt.Sprintf("%d of %d worker CPUs serving, %d of %d lanes running", cpusUp, cpusWanted, lanesUp, lanesWanted)
	if !s.ready {
		return false, "starting: " + msg
	}
	return cpusUp > 0 && cpusUp == cpusWanted, msg
}

// Modules lists the registered modules (GET /modules).
func (s *Supervisor) Modules() any {
	out := []moduleView{}
	for _, m := range s.store.all() {
		out = append(out, moduleView{m, s.mdir.source(m.Name)})
	}
	return out
}

// moduleView is a module in /modules: where it comes from, "http" or
// "module-dir", beside its record.
type moduleView struct {
	*Module
	Source string `json:"source"`
}

// Module describes one module (GET /modules/:name).
func (s *Supervisor) Module(name string) (any, error) {
	m, ok := s.store.get(name)
	if !ok {
		return nil, apierrNoModule(name)
	}
	return moduleView{m, s.mdir.source(name)}, nil
}

// Timeline returns a task's timeline, in flight or recently finished
// (GET /uname).
func (s *Supervisor) Timeline(name string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordFinished(-1)
	if t, ok := s.names[name]; ok {
		if t.chain != nil {
			return s.chainTimeline(t.chain, "in flight", nil), nil
		}
		tl := s.timelineOf(t, "in flight")
		if t.core >= 0 {
			tl.CPU = s.choice.Workers[t.core]
		}
		return tl, nil
	}
	if tl, ok := s.recent.get(name); ok {
		return tl, nil
	}
	return nil, apierr.New(apierr.UnknownTask, "no task named %q is in flight or among the last %d finished or refused", name, recentKeep)
}

// WarmStart is the seed's GET /warm-start-latency line, means over the
// calls that succeeded: start_latency, from a request's arrival to its job
// being queued on a worker (decoding, lookup, admission); sched_latency,
// that plus the instantiate time on the lane, the seed's "admission +
// instantiate", which is the warm start; and queue_latency, from being
// queued to being started on a lane, the time spent waiting behind other
// calls, which the seed's figures leave out and which load alone sets.
func (s *Supervisor) WarmStart() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordFinished(-1)
	w := s.warm
	n := time.Duration(max(w.n, 1))
	return fmt.Sprintf("cnt: %d, start_latency: %dµs, sched_latency: %dµs, queue_latency: %dµs", w.n,
		(w.startSum / n).Microseconds(), (w.schedSum / n).Microseconds(), (w.queueSum / n).Microseconds())
}

// fillPlacement adds where c (process pid) runs as the kernel reports it:
// mode, cgroup, cpuset, partition, affinity, policy. It reads files, so it
// is called without s.mu.
func (s *Supervisor) fillPlacement(p *ProcStatus, c *child, pid int) {
	pl := s.isolationOf(c, pid)
	p.Isolation, p.Placement, p.Affinity = string(pl.Mode), &pl, pl.Affinity
}
