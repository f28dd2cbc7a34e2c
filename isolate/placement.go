package isolate

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// Mode names a rung of the isolation ladder, best first.
type Mode string

const (
	// ModeCgroup2 is a cgroup v2 cpuset per process, with an isolated
	// partition for a worker where the kernel grants one.
	ModeCgroup2 Mode = "cgroup2"
	// ModeCgroup1 is a cpuset-only cgroup v1 hierarchy. Only the cpuset
	// controller is used: a v1 cpu cgroup would demand cpu.rt_runtime_us
	// before SCHED_FIFO is allowed in it.
	ModeCgroup1 Mode = "cgroup1-cpuset"
	// ModeAffinity is sched_setaffinity alone: nothing stops a process
	// from widening its own mask again.
	ModeAffinity Mode = "affinity"
)

// rank orders the modes, best first; an unknown mode ranks last.
func (m Mode) rank() int {
	switch m {
	case ModeCgroup2:
		return 0
	case ModeCgroup1:
		return 1
	case ModeAffinity:
		return 2
	}
	return 3
}

// ParseMode parses a mode name as Mode's constants spell it.
func ParseMode(s string) (Mode, error) {
	m := Mode(s)
	if m.rank() > 2 {
		return "", fmt.Errorf("isolation mode %q: want cgroup2, cgroup1-cpuset or affinity", s)
	}
	return m, nil
}

// RealTime says when a dedicated process (one whose CPUs are all outside
// the housekeeping set: a worker) runs SCHED_FIFO.
type RealTime uint8

const (
	// RealTimeAuto, the default, uses SCHED_FIFO when every CPU of the
	// process is isolated: in the kernel's isolcpus= list or in a valid
	// isolated cpuset partition. Elsewhere a spinning FIFO thread would
	// starve the kernel's per-CPU work on a CPU that still runs it.
	RealTimeAuto RealTime = iota
	// RealTimeOff never changes the scheduling policy.
	RealTimeOff
	// RealTimeOn uses SCHED_FIFO for every dedicated process.
	RealTimeOn
)

func (r RealTime) String() string {
	switch r {
	case RealTimeOff:
		return "off"
	case RealTimeOn:
		return "on"
	}
	return "auto"
}

// ParseRealTime parses "auto", "on" or "off".
func ParseRealTime(s string) (RealTime, error) {
	switch s {
	case "auto", "":
		return RealTimeAuto, nil
	case "on":
		return RealTimeOn, nil
	case "off":
		return RealTimeOff, nil
	}
	return 0, fmt.Errorf("realtime %q: want auto, on or off", s)
}

// Options configures Setup. The zero value of each field means its default.
type Options struct {
	// Name is the base group created when the supervisor is not in a
	// delegated cgroup: /sys/fs/cgroup/<Name> (v2) or <own cpuset>/<Name>
	// (v1). Default "hyper-sched".
	Name string
	// Housekeeping are the CPUs of the supervisor and benchd; a group whose
	// CPUs avoid them all is dedicated: a partition (v2) and SCHED_FIFO are
	// tried for it only. Required.
	Housekeeping []int
	// Best is the best rung tried. Default ModeCgroup2.
	Best Mode
	// RealTime decides SCHED_FIFO for dedicated processes. Default auto.
	RealTime RealTime
	// WorkerMemoryMax, if positive, is written to memory.max of every
	// dedicated (worker) group on cgroup v2, in bytes; a worker past it is
	// killed by the kernel and restarted like any lost worker. v1 has no
	// memory controller in hyper-sched's cpuset-only hierarchy. Default 0:
	// no limit beyond the per-instance page limit.
	WorkerMemoryMax int64
	// Priority is the SCHED_FIFO priority, 1-99. Default 10: above every
	// SCHED_OTHER task, below the kernel's threaded interrupt handlers (50),
	// so a worker never delays the interrupts it depends on.
	Priority int
}

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "hyper-sched"
	}
	if o.Best == "" {
		o.Best = ModeCgroup2
	}
	if o.Priority == 0 {
		o.Priority = 10
	}
	switch {
	case len(o.Housekeeping) == 0:
		return o, fmt.Errorf("isolation options: no housekeeping CPUs")
	case o.Priority < 1 || o.Priority > 99:
		return o, fmt.Errorf("isolation options: SCHED_FIFO priority %d is outside 1-99", o.Priority)
	case o.Best.rank() > 2:
		return o, fmt.Errorf("isolation options: unknown mode %q", o.Best)
	case o.Name == "." || o.Name == ".." || strings.Contains(o.Name, "/"):
		return o, fmt.Errorf("isolation options: group name %q is not one path element", o.Name)
	}
	return o, nil
}

// Placement is where one process (group) was put, for status and logs.
// Prepare fills the intent; Inspect adds what the kernel reports now.
type Placement struct {
	Name string `json:"name"`
	Mode Mode   `json:"mode"`
	// Path is the cgroup directory, empty in affinity mode.
	Path string `json:"path,omitempty"`
	// CPUs asked for, and Effective as the kernel reports them
	// (cpuset.cpus.effective, or cpuset.effective_cpus on v1).
	CPUs      string `json:"cpus"`
	Effective string `json:"cpus_effective,omitempty"`
	Mems      string `json:"mems,omitempty"`
	// Partition is cpuset.cpus.partition as the kernel reports it, e.g.
	// "isolated" or "isolated invalid (Parent is not a partition root)";
	// empty where none was tried (v1, or a group sharing a housekeeping
	// CPU).
	Partition string `json:"partition,omitempty"`
	// MemoryMax is memory.max of the group as the kernel reports it
	// (cgroup v2), when a limit was asked for.
	MemoryMax string `json:"memory_max,omitempty"`
	// Dedicated says the CPUs avoid every housekeeping CPU.
	Dedicated bool `json:"dedicated"`
	// RealTime says SCHED_FIFO is wanted for this group's processes.
	RealTime bool `json:"realtime"`
	// Cgroup is the pid's cgroup as /proc/PID/cgroup reports it, Affinity
	// its Cpus_allowed_list and Policy its scheduling policy (Inspect).
	Cgroup   string `json:"cgroup,omitempty"`
	Affinity string `json:"affinity,omitempty"`
	Policy   string `json:"policy,omitempty"`
	// Err lists the steps that were not taken, "; "-separated; empty when
	// everything asked for is in place.
	Err string `json:"error,omitempty"`

	// Dir is the open cgroup v2 directory Prepare returns for
	// StartInside; nil otherwise and in every stored copy.
	Dir *os.File `json:"-"`
}

// note appends a step not taken to p.Err.
func (p *Placement) note(err error) {
	if err == nil {
		return
	}
	if p.Err != "" {
		p.Err += "; "
	}
	p.Err += err.Error()
}

// disjoint reports whether a and b share no CPU.
func disjoint(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// subset reports whether every CPU of a is in b; an empty a is not.
func subset(a, b []int) bool {
	if len(a) == 0 {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// union returns the sorted union of a and b.
func union(a, b []int) []int {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
