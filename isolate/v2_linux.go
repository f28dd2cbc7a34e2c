package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// v2 is the cgroup v2 rung. The base group is the supervisor's own cgroup
// when systemd delegated it (Delegate=yes), else <mount>/<Name>; beside
// the supervisor leaf it holds one group per child.
type v2 struct {
	mount     string // cgroup2 mount point
	group     string // base group, relative to mount ("/hyper-sched")
	dir       string // mount + group
	delegated bool
	origin    string // the group the supervisor was in before Setup
	mems      string
	hk        []int
	memMax    int64 // memory.max of worker groups; 0: none
	base      *cgroup2.Manager
}

func setupV2(o Options, cleaned *[]string) (*v2, Placement, error) {
	var sup Placement
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, sup, fmt.Errorf("read mounts: %w", err)
	}
	i := slices.IndexFunc(mounts, func(m cgMount) bool { return m.v2 })
	if i < 0 {
		return nil, sup, errors.New("no cgroup2 filesystem is mounted")
	}
	m := mounts[i]
	if m.root != "/" {
		return nil, sup, fmt.Errorf("the cgroup2 mount %s shows %s, not the whole hierarchy", m.dir, m.root)
	}
	ctrls, err := readString(filepath.Join(m.dir, "cgroup.controllers"))
	if err != nil {
		return nil, sup, fmt.Errorf("read controllers: %w", err)
	}
	if !slices.Contains(strings.Fields(ctrls), "cpuset") {
		return nil, sup, fmt.Errorf("the cgroup2 hierarchy at %s has no cpuset controller (it has %q; on a hybrid host cpuset is bound to cgroup v1)", m.dir, ctrls)
	}
	own, _, err := memberships(0)
	if err != nil || own == "" {
		return nil, sup, fmt.Errorf("find own cgroup2 group: %v", err)
	}
	// A process still in the supervisor leaf of a delegated group (Setup
	// again without Close) has that group as its own.
	if filepath.Base(own) == Supervisor && delegated(filepath.Join(m.dir, filepath.Dir(own))) {
		own = filepath.Dir(own)
	}
	b := &v2{mount: m.dir, origin: own, hk: o.Housekeeping, memMax: o.WorkerMemoryMax}
	switch {
	case own != "/" && delegated(filepath.Join(m.dir, own)):
		b.group, b.delegated = own, true
	case strings.HasSuffix(own, ".service") && os.Getenv("INVOCATION_ID") != "":
		return nil, sup, fmt.Errorf("running in systemd unit cgroup %s without Delegate=yes: the groups under it are systemd's", own)
	default:
		b.group = "/" + o.Name
	}
	b.dir = filepath.Join(b.mount, b.group)
	if b.base, err = cgroup2.Load(b.group, cgroup2.WithMountpoint(b.mount)); err != nil {
		return nil, sup, err
	}
	if b.delegated {
		err = b.claimDelegated(cleaned)
	} else {
		err = b.claimOwn(cleaned)
	}
	if err != nil {
		return nil, sup, err // a claim that fails undoes itself
	}
	if b.mems, err = readString(filepath.Join(b.dir, "cpuset.mems.effective")); err != nil {
		return nil, sup, errors.Join(fmt.Errorf("read memory nodes: %w", err), b.close())
	}
	sup, _, err = b.prepare(Supervisor, o.Housekeeping)
	if err == nil && !b.delegated {
		err = moveSelf(sup.Path)
	}
	if err != nil {
		return nil, sup, errors.Join(err, b.close())
	}
	return b, sup, nil
}

// delegated reports whether systemd delegated the group at dir to this
// process: it marks such groups with the trusted.delegate (root) or
// user.delegate extended attribute (systemd 251+).
func delegated(dir string) bool {
	buf := make([]byte, 8)
	for _, attr := range []string{"trusted.delegate", "user.delegate"} {
		if n, err := unix.Getxattr(dir, attr, buf); err == nil && string(buf[:n]) == "1" {
			return true
		}
	}
	return false
}

// claimOwn prepares <mount>/<Name> when run by hand: a previous run's
// groups are removed (unless that run is still alive), then the base is
// made fresh with cpuset enabled for its children.
func (b *v2) claimOwn(cleaned *[]string) error {
	if b.origin == b.group || strings.HasPrefix(b.origin, b.group+"/") {
		// Still inside from an earlier Setup without Close: step out first,
		// or removing the stale groups would kill this process.
		if err := moveSelf(b.mount); err != nil {
			return err
		}
		b.origin = "/"
	}
	if err := claimStale(b.dir, cleaned); err != nil {
		return err
	}
	// The root cgroup has no internal-process rule; enabling cpuset there
	// is what a cgroup2-only boot without systemd lacks.
	if err := enable(b.mount); err != nil {
		return err
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", b.dir, unwrapPath(err))
	}
	if err := enable(b.dir); err != nil {
		return unmake(b.dir, err)
	}
	return nil
}

// claimDelegated prepares the delegated group systemd gave the service:
// the supervisor (and anything else directly in it) moves into the
// supervisor leaf first, since a group whose children use a controller may
// hold no process itself.
func (b *v2) claimDelegated(cleaned *[]string) error {
	self, _, _ := memberships(0)
	for _, name := range subgroups(b.dir) {
		if self == b.group+"/"+name {
			continue // the leaf this process is in already
		}
		d := filepath.Join(b.dir, name)
		if err := purge(d); err != nil {
			return fmt.Errorf("remove stale groups: %w", err)
		}
		*cleaned = append(*cleaned, d)
	}
	sup, err := b.base.NewChild(Supervisor, nil)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(b.dir, Supervisor), err)
	}
	if err := b.base.MoveTo(sup); err != nil {
		return errors.Join(fmt.Errorf("move the service's processes into %s: %w", Supervisor, err), b.release())
	}
	if err := enable(b.dir); err != nil {
		return errors.Join(err, b.release())
	}
	// A previous run's exclusive CPUs are not ours to keep.
	if f := filepath.Join(b.dir, "cpuset.cpus.exclusive"); exists(f) {
		writeString(f, "\n")
	}
	return nil
}

// enable turns the cpuset controller on for the children of dir.
func enable(dir string) error {
	f := filepath.Join(dir, "cgroup.subtree_control")
	if cur, err := readString(f); err == nil && slices.Contains(strings.Fields(cur), "cpuset") {
		return nil
	}
	if err := writeString(f, "+cpuset"); err != nil {
		return fmt.Errorf("enable cpuset: %w", err)
	}
	return nil
}

// prepare creates (or refreshes) group name with cpus, tries an isolated
// partition for a dedicated group, and opens the group for CLONE_INTO_CGROUP.
func (b *v2) prepare(name string, cpus []int) (Placement, *os.File, error) {
	p := Placement{Name: name, Mode: ModeCgroup2, Path: filepath.Join(b.dir, name), CPUs: FormatList(cpus),
		Mems: b.mems, Dedicated: disjoint(cpus, b.hk)}
	// A group made here and not finished is removed; one that was there
	// (a restart) is left as it was, with its processes.
	made := !exists(p.Path)
	fail := func(err error) (Placement, *os.File, error) {
		if made && exists(p.Path) {
			err = unmake(p.Path, err)
		}
		return p, nil, err
	}
	g, err := b.base.NewChild(name, nil)
	if err != nil {
		return fail(fmt.Errorf("create %s: %w", p.Path, err))
	}
	if err := g.Update(&cgroup2.Resources{CPU: &cgroup2.CPU{Cpus: p.CPUs, Mems: p.Mems}}); err != nil {
		return fail(fmt.Errorf("set cpuset of %s to %s: %w", p.Path, p.CPUs, unwrapPath(err)))
	}
	// Opened before the partition: past this point nothing fails, it is
	// only noted, so no partition has to be undone.
	dir, err := os.OpenFile(p.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", p.Path, unwrapPath(err)))
	}
	if p.Dedicated && name != Supervisor {
		b.partition(&p, cpus)
		if b.memMax > 0 {
			p.note(b.limitMemory(&p))
		}
	}
	return p, dir, nil
}

// partition makes the group an isolated partition where the kernel allows
// it. Since 6.7 a partition whose parent is not one ("remote") needs its
// CPUs in cpuset.cpus.exclusive of every ancestor below the root: the base
// is ours to grant them from; under delegation, its parent is systemd's and
// the kernel decides. Older kernels want the parent to be a partition root,
// which the base, sharing housekeeping CPUs with the root cgroup, cannot
// be. Whatever the kernel decides is read back, reason included.
func (b *v2) partition(p *Placement, cpus []int) {
	file := filepath.Join(p.Path, "cpuset.cpus.partition")
	if !exists(file) {
		p.note(errors.New("partition: this kernel has no cpuset.cpus.partition"))
		return
	}
	if baseX := filepath.Join(b.dir, "cpuset.cpus.exclusive"); exists(baseX) {
		cur, err := readList(baseX)
		if want := union(cur, cpus); err == nil && !slices.Equal(cur, want) {
			if err := writeString(baseX, FormatList(want)); err != nil {
				p.note(fmt.Errorf("grant exclusive cpus: %w", err))
			}
		}
		if err := writeString(filepath.Join(p.Path, "cpuset.cpus.exclusive"), p.CPUs); err != nil {
			p.note(fmt.Errorf("claim exclusive cpus: %w", err))
		}
	}
	if err := writeString(file, "isolated"); err != nil {
		p.note(fmt.Errorf("partition: %w", err))
	}
	p.Partition, _ = readString(file)
	if p.Partition != "isolated" {
		p.note(fmt.Errorf("partition: the kernel reports %q", p.Partition))
	}
}

// place checks that pid started inside its group (CgroupFD) and moves it
// there otherwise.
func (b *v2) place(p *Placement, pid int) error {
	want := strings.TrimPrefix(p.Path, b.mount)
	if got, _, err := memberships(pid); err == nil && got == want {
		return nil
	}
	g, err := cgroup2.Load(want, cgroup2.WithMountpoint(b.mount))
	if err == nil {
		err = g.AddProc(uint64(pid))
	}
	if err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, p.Path, unwrapPath(err))
	}
	return fmt.Errorf("pid %d was not started inside %s (no CgroupFD); moved after its start", pid, p.Path)
}

func (b *v2) inspect(p *Placement) {
	p.Effective, _ = readString(filepath.Join(p.Path, "cpuset.cpus.effective"))
	if p.Partition != "" {
		p.Partition, _ = readString(filepath.Join(p.Path, "cpuset.cpus.partition"))
	}
	if p.MemoryMax != "" {
		p.MemoryMax, _ = readString(filepath.Join(p.Path, "memory.max"))
	}
}

// close removes every child group and leaves the base as it was found:
// gone when run by hand, without controllers and with the supervisor back
// in it under delegation.
func (b *v2) close() error {
	err := purgeChildren(b.dir)
	if b.delegated {
		return errors.Join(err, b.release())
	}
	return errors.Join(err, leaveBase(b.mount, b.originDir(), b.dir))
}

// release gives the delegated group back as claimDelegated found it: no
// controllers for its children, and its processes back in it from the
// supervisor leaf, which is removed.
func (b *v2) release() error {
	var errs []error
	supDir := filepath.Join(b.dir, Supervisor)
	if f := filepath.Join(b.dir, "cpuset.cpus.exclusive"); exists(f) {
		writeString(f, "\n")
	}
	if err := writeString(filepath.Join(b.dir, "cgroup.subtree_control"), "-cpuset"); err != nil {
		errs = append(errs, err)
	}
	if b.memMax > 0 { // enabled by limitMemory; processes may not sit beside it
		if err := writeString(filepath.Join(b.dir, "cgroup.subtree_control"), "-memory"); err != nil {
			errs = append(errs, err)
		}
	}
	ps, _ := procs(supDir)
	for _, pid := range ps {
		if err := writeString(filepath.Join(b.dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, rmdir(supDir))
	return errors.Join(errs...)
}

// originDir is the group the supervisor came from.
func (b *v2) originDir() string { return filepath.Join(b.mount, b.origin) }

// limitMemory writes memory.max of a worker group, enabling the memory
// controller below the base first (delegated by systemd's Delegate=yes, or
// available at the root when run by hand).
func (b *v2) limitMemory(p *Placement) error {
	f := filepath.Join(b.dir, "cgroup.subtree_control")
	if cur, err := readString(f); err != nil || !slices.Contains(strings.Fields(cur), "memory") {
		if !b.delegated {
			writeString(filepath.Join(b.mount, "cgroup.subtree_control"), "+memory")
		}
		if err := writeString(f, "+memory"); err != nil {
			return fmt.Errorf("memory.max not set: enable the memory controller in %s: %w", b.dir, err)
		}
	}
	if err := writeString(filepath.Join(p.Path, "memory.max"), strconv.FormatInt(b.memMax, 10)); err != nil {
		return fmt.Errorf("memory.max not set: %w", unwrapPath(err))
	}
	p.MemoryMax, _ = readString(filepath.Join(p.Path, "memory.max"))
	return nil
}
