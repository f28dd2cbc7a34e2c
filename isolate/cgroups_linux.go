package isolate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Supervisor is the name of the group (and Placement) of the calling
// process, the supervisor itself.
const Supervisor = "supervisor"

// BusyError says that a live process, another hyper-sched, holds the base
// group: its groups are not stale and are left alone.
type BusyError struct {
	Path string
	Pid  int
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use by pid %d, another hyper-sched", e.Path, e.Pid)
}

// HeldError says that the kernel refused CPUs to a cgroup v1 cpuset group
// because a group beside it, not one of ours, holds some of them with
// cpuset.cpu_exclusive: v1 then gives them to no sibling. A hyper-sched
// from before issue 13 held every CPU so, from its start until the next
// start after its end.
type HeldError struct {
	Group string // the holder's directory
	CPUs  string // the CPUs asked for that it holds
	Err   error  // the kernel's refusal
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("CPUs %s are held exclusively (cpuset.cpu_exclusive) by cpuset group %s: %v", e.CPUs, e.Group, e.Err)
}

func (e *HeldError) Unwrap() error { return e.Err }

// Cgroups is the isolation the supervisor set up: the ladder rung it got
// and the group of every child. Its methods are safe for concurrent use.
// A nil *Cgroups is affinity-only.
type Cgroups struct {
	opts     Options
	mode     Mode
	skipped  []error
	cleaned  []string
	isolated []int // the kernel's isolcpus=

	mu     sync.Mutex
	b      backend // nil in affinity mode and after Close
	groups map[string]Placement
}

// backend is one cgroup rung.
type backend interface {
	// prepare creates or refreshes a group; the file is the open group
	// directory for CLONE_INTO_CGROUP (v2 only).
	prepare(name string, cpus []int) (Placement, *os.File, error)
	// place puts pid into its group unless it started there.
	place(p *Placement, pid int) error
	// inspect fills in what the kernel reports now.
	inspect(p *Placement)
	// close removes every group and puts the supervisor back.
	close() error
}

// Setup climbs down the isolation ladder from opts.Best and stops at the
// first rung that works: cgroup v2 cpuset, cgroup v1 cpuset-only hierarchy,
// affinity. Groups left by a previous run that was killed are removed
// first (their processes killed), unless that run is still alive. The
// calling process moves into the supervisor group on its housekeeping CPUs
// and is pinned to them.
//
// The error is non-nil only for invalid options. Every rung not taken, and
// why, is in Skipped; what the supervisor got is Placement(Supervisor).
// Close undoes it all.
func Setup(opts Options) (*Cgroups, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cgroups{opts: opts, mode: ModeAffinity, isolated: Isolated(), groups: map[string]Placement{}}
	sup := Placement{Name: Supervisor, Mode: ModeAffinity, CPUs: FormatList(opts.Housekeeping)}
	if opts.Best.rank() <= ModeCgroup2.rank() {
		b, p, err := setupV2(opts, &c.cleaned)
		if err == nil {
			c.b, c.mode, sup = b, ModeCgroup2, p
		} else {
			c.skipped = append(c.skipped, fmt.Errorf("cgroup v2 cpuset: %w", err))
		}
	}
	if c.b == nil && opts.Best.rank() <= ModeCgroup1.rank() {
		b, p, err := setupV1(opts, &c.cleaned)
		if err == nil {
			c.b, c.mode, sup = b, ModeCgroup1, p
		} else {
			c.skipped = append(c.skipped, fmt.Errorf("cgroup v1 cpuset: %w", err))
		}
	}
	if err := SetAffinity(os.Getpid(), opts.Housekeeping); err != nil {
		sup.note(err)
	}
	c.groups[Supervisor] = sup
	return c, nil
}

// Mode is the rung Setup reached.
func (c *Cgroups) Mode() Mode {
	if c == nil {
		return ModeAffinity
	}
	return c.mode
}

// Skipped lists each better rung Setup did not take, with the reason.
func (c *Cgroups) Skipped() []error {
	if c == nil {
		return nil
	}
	return c.skipped
}

// Cleaned lists the stale groups of a previous run that Setup removed.
func (c *Cgroups) Cleaned() []string {
	if c == nil {
		return nil
	}
	return c.cleaned
}

// Prepare creates (or, for a restart, refreshes) the group name on cpus and
// returns where a process started for it goes. On cgroup v2 Placement.Dir
// is the open group directory: StartInside puts it into a SysProcAttr so
// the child is born inside its cgroup, and Release closes it once the child
// has started. Then call Place.
//
// A group that could not be made leaves the child to affinity: the
// Placement says so and the error says why. Steps skipped for a group that
// was made (partition, exclusive CPUs on v2) are in Placement.Err only.
func (c *Cgroups) Prepare(name string, cpus []int) (Placement, error) {
	if name == "" || name == Supervisor || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return Placement{}, fmt.Errorf("prepare %q: not a group name", name)
	}
	if len(cpus) == 0 {
		return Placement{}, fmt.Errorf("prepare %s: no CPUs", name)
	}
	p := Placement{Name: name, Mode: ModeAffinity, CPUs: FormatList(cpus)}
	var perr error
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		p.Dedicated = disjoint(cpus, c.opts.Housekeeping)
		if c.b != nil {
			bp, dir, err := c.b.prepare(name, cpus)
			if err == nil {
				p, p.Dir = bp, dir
			} else {
				perr = fmt.Errorf("prepare %s: %w", name, err)
				p.note(perr)
			}
		}
		p.RealTime = c.realTime(&p, cpus)
		stored := p
		stored.Dir = nil
		c.groups[name] = stored
	}
	return p, perr
}

// realTime decides SCHED_FIFO for a prepared group; c.mu held.
func (c *Cgroups) realTime(p *Placement, cpus []int) bool {
	switch {
	case c.opts.RealTime == RealTimeOff:
		return false
	case !p.Dedicated:
		if c.opts.RealTime == RealTimeOn {
			p.note(errors.New("SCHED_FIFO: not used on a CPU shared with housekeeping"))
		}
		return false
	case c.opts.RealTime == RealTimeOn:
		return true
	}
	return subset(cpus, c.isolated) || p.Partition == "isolated"
}

// Place confines pid, just started for the prepared group name and not yet
// working: into its cgroup where it did not start there (v1), pinned to
// its CPUs, and SCHED_FIFO where wanted. It returns every step that
// failed; the process is confined as far as the others went.
func (c *Cgroups) Place(name string, pid int) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.groups[name]
	if !ok {
		return fmt.Errorf("place %s: not prepared", name)
	}
	var errs []error
	if c.b != nil && p.Mode != ModeAffinity {
		if err := c.b.place(&p, pid); err != nil {
			errs = append(errs, err)
		}
	}
	cpus, _ := ParseList(p.CPUs)
	errs = append(errs, SetAffinity(pid, cpus))
	if p.RealTime {
		errs = append(errs, SetRealTime(pid, c.opts.Priority))
	}
	err := errors.Join(errs...)
	if err != nil {
		p.note(err)
		err = fmt.Errorf("place %s: %w", name, err)
	}
	c.groups[name] = p
	return err
}

// Inspect returns the placement of group name with what the kernel reports
// now: effective CPUs and partition state of the group, and the cgroup,
// affinity and policy of pid (skipped when pid is 0).
func (c *Cgroups) Inspect(name string, pid int) Placement {
	p := Placement{Name: name, Mode: c.Mode()}
	if c != nil {
		c.mu.Lock()
		if q, ok := c.groups[name]; ok {
			p = q
		} else {
			p.Err = "not prepared"
		}
		if c.b != nil && p.Path != "" {
			c.b.inspect(&p)
		}
		c.mu.Unlock()
	}
	if pid > 0 {
		if v2, v1, err := memberships(pid); err == nil {
			p.Cgroup = v2
			if p.Mode == ModeCgroup1 || v2 == "" {
				p.Cgroup = v1["cpuset"]
			}
		}
		if a, err := Affinity(pid); err == nil {
			p.Affinity = FormatList(a)
		}
		p.Policy, _ = Policy(pid)
	}
	return p
}

// Close kills whatever is left in the child groups, removes every group
// Setup and Prepare made and moves the calling process back to where it
// was. It is safe to call more than once.
func (c *Cgroups) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b == nil {
		return nil
	}
	err := c.b.close()
	c.b = nil
	if err != nil {
		return fmt.Errorf("remove cgroups: %w", err)
	}
	return nil
}

// StartInside sets attr to start the process inside p's cgroup (v2,
// CLONE_INTO_CGROUP), so it never runs outside it; without Dir it does
// nothing.
func (p Placement) StartInside(attr *syscall.SysProcAttr) {
	if p.Dir != nil {
		attr.UseCgroupFD = true
		attr.CgroupFD = int(p.Dir.Fd())
	}
}

// Release closes Dir once the process has started (or failed to).
func (p *Placement) Release() {
	if p.Dir != nil {
		p.Dir.Close()
		p.Dir = nil
	}
}
