package isolate

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1 is the cgroup v1 rung: a hierarchy of the cpuset controller alone,
// <own cpuset>/<Name>/{supervisor,benchd,worker-N}. Processes are moved in
// by pid (v1 has no CLONE_INTO_CGROUP), before the child's hello.
type v1 struct {
	root   string // the cpuset mount, /sys/fs/cgroup/cpuset
	group  string // base group relative to root ("/hyper-sched")
	dir    string // root + group
	origin string // the cpuset group the supervisor was in before Setup
	hk     []int
	hier   cgroup1.Hierarchy
	base   cgroup1.Cgroup
}

func setupV1(o Options, cleaned *[]string) (*v1, Placement, error) {
	var sup Placement
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, sup, fmt.Errorf("read mounts: %w", err)
	}
	i := slices.IndexFunc(mounts, func(m cgMount) bool { return !m.v2 && slices.Contains(m.supers, "cpuset") })
	if i < 0 {
		return nil, sup, errors.New("no cgroup v1 cpuset hierarchy is mounted")
	}
	m := mounts[i]
	for _, other := range []string{"cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer"} {
		if slices.Contains(m.supers, other) {
			return nil, sup, fmt.Errorf("the v1 cpuset hierarchy at %s is shared with %s; hyper-sched needs cpuset alone (in a v1 cpu cgroup SCHED_FIFO needs cpu.rt_runtime_us)", m.dir, other)
		}
	}
	if filepath.Base(m.dir) != "cpuset" {
		return nil, sup, fmt.Errorf("the v1 cpuset hierarchy is mounted at %s, not at <cgroup root>/cpuset", m.dir)
	}
	_, own, err := memberships(0)
	if err != nil || own["cpuset"] == "" {
		return nil, sup, fmt.Errorf("find own cpuset group: %v", err)
	}
	origin := own["cpuset"]
	if m.root != "/" { // a container's bind mount of its part of the hierarchy
		origin = "/" + strings.TrimPrefix(strings.TrimPrefix(origin, m.root), "/")
	}
	if path.Base(origin) == Supervisor && path.Base(path.Dir(origin)) == o.Name {
		// Still inside from an earlier Setup without Close: step out first,
		// or removing the stale groups would kill this process.
		origin = path.Dir(path.Dir(origin))
		if err := moveSelf(filepath.Join(m.dir, origin)); err != nil {
			return nil, sup, err
		}
	}
	b := &v1{root: m.dir, origin: origin, hk: o.Housekeeping, group: path.Join(origin, o.Name)}
	b.dir = filepath.Join(b.root, b.group)
	cpuset := cgroup1.NewCpuset(filepath.Dir(m.dir))
	b.hier = func() ([]cgroup1.Subsystem, error) { return []cgroup1.Subsystem{cpuset}, nil }

	if err := claimStale(b.dir, cleaned); err != nil {
		return nil, sup, err
	}
	// Made here rather than by cgroup1.New's MkdirAll, so that what a
	// failure removes is surely ours: a base that exists now was made
	// meanwhile by another instance.
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		return nil, sup, fmt.Errorf("create %s: %w", b.dir, unwrapPath(err))
	}
	// cgroup1.New copies cpuset.cpus and cpuset.mems from the parent into
	// each new group: v1 refuses tasks in a group with either empty.
	if b.base, err = cgroup1.New(cgroup1.StaticPath(b.group), &specs.LinuxResources{}, cgroup1.WithHierarchy(b.hier)); err != nil {
		all, _ := readList(filepath.Join(b.originDir(), "cpuset.cpus"))
		return nil, sup, unmake(b.dir, fmt.Errorf("create %s: %w", b.dir, heldBy(b.dir, all, err)))
	}
	sup, _, err = b.prepare(Supervisor, o.Housekeeping)
	if err == nil {
		err = moveSelf(sup.Path)
	}
	if err != nil {
		return nil, sup, errors.Join(err, b.close())
	}
	return b, sup, nil
}

// prepare creates (or refreshes) group name with cpus. No group is made
// cpuset.cpu_exclusive: v1 allows an exclusive group only below an
// exclusive parent, so an exclusive worker would need an exclusive base,
// and the base holds the housekeeping CPUs too (docs/isolation.md, "Why is
// no v1 group exclusive?").
func (b *v1) prepare(name string, cpus []int) (Placement, *os.File, error) {
	p := Placement{Name: name, Mode: ModeCgroup1, Path: filepath.Join(b.dir, name), CPUs: FormatList(cpus),
		Dedicated: disjoint(cpus, b.hk)}
	// A group made here and not finished is removed; one that was there
	// (a restart) is left as it was, with its processes.
	made := false
	fail := func(err error) (Placement, *os.File, error) {
		err = fmt.Errorf("create %s with cpus %s: %w", p.Path, p.CPUs, unwrapPath(err))
		if made {
			err = unmake(p.Path, err)
		}
		return p, nil, err
	}
	if !exists(p.Path) {
		// cgroup1.New would first copy all of the parent's CPUs into the new
		// group, which the kernel refuses when some sibling holds one of them
		// exclusively: the group gets its own CPUs before that.
		mems, err := readString(filepath.Join(b.dir, "cpuset.mems"))
		if err == nil {
			err = os.Mkdir(p.Path, 0o755)
			made = err == nil
		}
		if err == nil {
			err = writeString(filepath.Join(p.Path, "cpuset.cpus"), p.CPUs)
		}
		if err == nil {
			err = writeString(filepath.Join(p.Path, "cpuset.mems"), mems)
		}
		if err != nil {
			return fail(err)
		}
	}
	if _, err := b.base.New(name, &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: p.CPUs}}); err != nil {
		return fail(err)
	}
	p.Mems, _ = readString(filepath.Join(p.Path, "cpuset.mems"))
	return p, nil, nil
}

// heldBy explains err, the kernel's refusal of cpus to the v1 group dir:
// an EINVAL with a group beside dir holding some of cpus exclusively is
// a *HeldError naming it. Any other err is returned as it is.
func heldBy(dir string, cpus []int, err error) error {
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	parent := filepath.Dir(dir)
	for _, name := range subgroups(parent) {
		sib := filepath.Join(parent, name)
		if sib == dir {
			continue
		}
		if v, _ := readString(filepath.Join(sib, "cpuset.cpu_exclusive")); v != "1" {
			continue
		}
		theirs, _ := readList(filepath.Join(sib, "cpuset.cpus"))
		if held := intersect(cpus, theirs); len(held) > 0 {
			return &HeldError{Group: sib, CPUs: FormatList(held), Err: err}
		}
	}
	return err
}

// place moves pid, all its threads, into its group.
func (b *v1) place(p *Placement, pid int) error {
	g, err := cgroup1.Load(cgroup1.StaticPath(path.Join(b.group, p.Name)), cgroup1.WithHierarchy(b.hier))
	if err == nil {
		err = g.AddProc(uint64(pid))
	}
	if err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, p.Path, unwrapPath(err))
	}
	return nil
}

func (b *v1) inspect(p *Placement) {
	p.Effective, _ = readString(filepath.Join(p.Path, "cpuset.effective_cpus"))
}

// close removes the child groups, moves the supervisor back where it came
// from and removes the base.
func (b *v1) close() error {
	err := purgeChildren(b.dir)
	return errors.Join(err, leaveBase(b.root, b.originDir(), b.dir))
}

// originDir is the group the supervisor came from.
func (b *v1) originDir() string { return filepath.Join(b.root, b.origin) }
