package isolate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain doubles as the helper process: with HYPER_SCHED_TEST_HELPER set
// the test binary just waits to be killed, standing in for a child.
func TestMain(m *testing.M) {
	switch os.Getenv("HYPER_SCHED_TEST_HELPER") {
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	case "churn":
		churnThreads()
	}
	removeDeadTestGroups()
	os.Exit(m.Run())
}

// churnThreads creates and ends OS threads for a minute: a goroutine that
// exits while locked to its thread takes the thread with it, and the
// runtime starts new ones, from whichever thread it is on.
func churnThreads() {
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				time.Sleep(100 * time.Microsecond)
			}()
		}
		wg.Wait()
	}
	os.Exit(0)
}

// removeDeadTestGroups removes the groups of test binaries that were killed
// before their Close, so they do not pile up on a shared machine.
func removeDeadTestGroups() {
	if os.Geteuid() != 0 {
		return
	}
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		ents, _ := os.ReadDir(m.dir)
		for _, e := range ents {
			// hyper-sched-test-PID, or hyper-sched-test-PID-what
			rest, ok := strings.CutPrefix(e.Name(), "hyper-sched-test-")
			pid, _, _ := strings.Cut(rest, "-")
			if n, err := strconv.Atoi(pid); ok && err == nil && syscall.Kill(n, 0) != nil {
				purge(filepath.Join(m.dir, e.Name()))
			}
		}
	}
}

// keepAffinity restores this test process's affinity, which Setup changes.
func keepAffinity(t *testing.T) {
	a, err := Affinity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { SetAffinity(os.Getpid(), a) })
}

func helper(t *testing.T, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	return helperDoing(t, "sleep", attr)
}

// helperDoing starts the test binary as a helper in mode sleep or churn.
func helperDoing(t *testing.T, mode string, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HYPER_SCHED_TEST_HELPER="+mode)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// needCgroups skips unless a cgroup rung can work here: root, and a cpuset
// controller on cgroup v2 or v1.
func needCgroups(t *testing.T) Mode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to create cgroups")
	}
	mounts, err := cgroupMounts()
	if err != nil {
		t.Skipf("needs /proc/self/mountinfo: %v", err)
	}
	for _, m := range mounts {
		if c, _ := readString(filepath.Join(m.dir, "cgroup.controllers")); m.v2 && strings.Contains(c, "cpuset") {
			return ModeCgroup2
		}
	}
	for _, m := range mounts {
		if !m.v2 && len(m.supers) > 0 && strings.Contains(","+strings.Join(m.supers, ",")+",", ",cpuset,") {
			return ModeCgroup1
		}
	}
	t.Skip("needs a cpuset controller on cgroup v2 or v1")
	return ""
}

// testName is a base group name of this test process alone, so that a
// daemon running beside the tests is never disturbed.
func testName() string { return fmt.Sprintf("hyper-sched-test-%d", os.Getpid()) }

// setupCgroups runs Setup for a test that needs rung want. It skips the
// test when another owner holds the cpuset (skipIfHeld), and fails it when
// Setup did not reach want for any other reason.
func setupCgroups(t *testing.T, opts Options, want Mode) *Cgroups {
	t.Helper()
	c, err := Setup(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Mode(); got != want {
		c.Close()
		skipIfHeld(t, c.Skipped()...)
		t.Fatalf("mode: got %s, want %s (skipped: %v)", got, want, c.Skipped())
	}
	return c
}

// prepareGroup runs Prepare for a test, like setupCgroups.
func prepareGroup(t *testing.T, c *Cgroups, name string, cpus []int) Placement {
	t.Helper()
	p, err := c.Prepare(name, cpus)
	if err != nil {
		skipIfHeld(t, err)
		t.Fatalf("prepare %s: %v", name, err)
	}
	return p
}

// skipIfHeld skips a test that needs the cpuset when one of errs says that
// another owner holds it, and names that owner: a cpuset group holding
// CPUs exclusively (HeldError: another hyper-sched from before issue 13,
// or any other cpuset user) or a live hyper-sched in the base (BusyError).
// The owner is taken from the error, found when the kernel refused, not
// looked for again afterwards, when it may have gone.
func skipIfHeld(t *testing.T, errs ...error) {
	t.Helper()
	if why := heldReason(errs...); why != "" {
		t.Skip(why)
	}
}

// heldReason is skipIfHeld's reason, or "" when no other owner holds the
// cpuset.
func heldReason(errs ...error) string {
	for _, err := range errs {
		var held *HeldError
		var busy *BusyError
		switch {
		case errors.As(err, &held):
			return fmt.Sprintf("needs CPUs %s, which cpuset group %s holds exclusively (cpuset.cpu_exclusive: another hyper-sched or cpuset user on this machine)",
				held.CPUs, held.Group)
		case errors.As(err, &busy):
			return fmt.Sprintf("needs %s, which pid %d, another hyper-sched on this machine, owns", busy.Path, busy.Pid)
		}
	}
	return ""
}

func TestSetupPlaceClose(t *testing.T) {
	want := needCgroups(t)
	online, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	hk, workerCPU := []int{online[0]}, online[len(online)-1]
	// Threads of this test binary move with it; keep this goroutine's
	// thread from being reused by other tests meanwhile.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	keepAffinity(t)

	c := setupCgroups(t, Options{Name: testName(), Housekeeping: hk}, want)
	defer c.Close()
	sup := c.Inspect(Supervisor, os.Getpid())
	if !strings.HasSuffix(sup.Cgroup, "/"+testName()+"/"+Supervisor) {
		t.Errorf("supervisor cgroup: got %q, want …/%s/%s", sup.Cgroup, testName(), Supervisor)
	}
	if got, want := sup.Affinity, FormatList(hk); got != want {
		t.Errorf("supervisor affinity: got %q, want %q", got, want)
	}

	p := prepareGroup(t, c, "worker-x", []int{workerCPU})
	if (p.Dir != nil) != (want == ModeCgroup2) {
		t.Errorf("prepare: got Dir %v in mode %s", p.Dir, want)
	}
	// A housekeeping group made after a worker holds its CPU exclusively
	// (a v2 partition) must not be refused.
	hkp := prepareGroup(t, c, "benchd-x", hk)
	hkp.Release()
	if hkp.Mode != want {
		t.Errorf("prepare beside an exclusive worker: got %+v", hkp)
	}
	attr := &syscall.SysProcAttr{}
	p.StartInside(attr)
	cmd := helper(t, attr)
	p.Release()
	if err := c.Place("worker-x", cmd.Process.Pid); err != nil {
		t.Errorf("place: %v", err)
	}
	got := c.Inspect("worker-x", cmd.Process.Pid)
	if !strings.HasSuffix(got.Cgroup, "/"+testName()+"/worker-x") {
		t.Errorf("worker cgroup: got %q, want …/%s/worker-x", got.Cgroup, testName())
	}
	if want := FormatList([]int{workerCPU}); got.Affinity != want || got.Effective != want {
		t.Errorf("worker cpus: got affinity %q effective %q, want %q", got.Affinity, got.Effective, want)
	}
	if got.Policy != "SCHED_OTHER" && !got.RealTime {
		t.Errorf("worker policy: got %q, want SCHED_OTHER", got.Policy)
	}
	t.Logf("worker placement: %+v", got)

	base := filepath.Dir(p.Path)
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("helper left in its group at Close: got %v, want killed", err)
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after close: got %v for %s, want it gone", err, base)
	}
	if again := c.Inspect(Supervisor, os.Getpid()); strings.Contains(again.Cgroup, testName()) {
		t.Errorf("after close the test is still in %s", again.Cgroup)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// A previous run killed with SIGKILL leaves its groups, maybe with a
// process in them; the next Setup kills it and starts afresh. A live
// supervisor in them means another instance: its groups are left alone.
func TestStaleAndBusy(t *testing.T) {
	want := needCgroups(t)
	online, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	keepAffinity(t)
	opts := Options{Name: testName(), Housekeeping: online[:1]}

	first := setupCgroups(t, opts, want)
	// Only for a test that ends early: later, first's groups are the stale
	// ones, already gone.
	t.Cleanup(func() { first.Close() })
	p := prepareGroup(t, first, "worker-x", online[len(online)-1:])
	attr := &syscall.SysProcAttr{}
	p.StartInside(attr)
	orphan := helper(t, attr)
	p.Release()
	if err := first.Place("worker-x", orphan.Process.Pid); err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(p.Path)
	// Make it look like a run that died: the supervisor leaves its group
	// without Close.
	origin := first.b.(interface{ originDir() string }).originDir()
	if err := moveSelf(origin); err != nil {
		t.Fatal(err)
	}

	// Another instance: a live process in the supervisor group.
	other := helper(t, nil)
	if err := writeString(filepath.Join(base, Supervisor, "cgroup.procs"), fmt.Sprint(other.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	busy, err := Setup(opts)
	if err != nil {
		t.Fatal(err)
	}
	var be *BusyError
	if busy.Mode() != ModeAffinity || len(busy.Skipped()) == 0 || !errors.As(busy.Skipped()[len(busy.Skipped())-1], &be) {
		t.Fatalf("setup beside a live instance: got mode %s, skipped %v; want affinity and a BusyError", busy.Mode(), busy.Skipped())
	}
	if err := syscall.Kill(orphan.Process.Pid, 0); err != nil {
		t.Fatalf("setup beside a live instance killed its worker: %v", err)
	}
	other.Process.Kill()
	other.Wait()

	stale := setupCgroups(t, opts, want)
	defer stale.Close()
	if got := stale.Cleaned(); len(got) != 1 || got[0] != base {
		t.Errorf("cleaned: got %v, want [%s]", got, base)
	}
	if err := orphan.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("orphan worker: got %v, want killed", err)
	}
	if exists(filepath.Join(base, "worker-x")) {
		t.Errorf("stale group %s/worker-x survived Setup", base)
	}
}

func TestNilCgroups(t *testing.T) {
	var c *Cgroups
	p, err := c.Prepare("worker-1", []int{1})
	if err != nil || p.Mode != ModeAffinity || p.Dir != nil {
		t.Errorf("nil prepare: got %+v, %v; want affinity", p, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("nil close: got %v", err)
	}
	if got := c.Mode(); got != ModeAffinity {
		t.Errorf("nil mode: got %s", got)
	}
}

func TestPrepareRejects(t *testing.T) {
	var c *Cgroups
	for _, name := range []string{"", "..", "a/b", Supervisor} {
		if _, err := c.Prepare(name, []int{0}); err == nil {
			t.Errorf("prepare %q: got no error", name)
		}
	}
	if _, err := c.Prepare("worker-1", nil); err == nil {
		t.Error("prepare without cpus: got no error")
	}
}

func TestPolicy(t *testing.T) {
	got, err := Policy(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "SCHED_") && !strings.HasPrefix(got, "mixed: ") {
		t.Errorf("policy: got %q", got)
	}
}

func TestRealTime(t *testing.T) {
	cmd := helper(t, nil)
	err := SetRealTime(cmd.Process.Pid, 10)
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("needs the right to use SCHED_FIFO: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Policy(cmd.Process.Pid); err != nil || got != "SCHED_FIFO/10" {
		t.Errorf("policy: got %q, %v; want SCHED_FIFO/10 on every thread", got, err)
	}
}

// TestPerThreadWhileThreadsAppear changes the policy and the affinity of a
// process that keeps creating threads: afterwards no thread, old or new,
// may have escaped. A single walk of /proc/PID/task fails this now and
// then (a thread cloned by one not yet changed).
func TestPerThreadWhileThreadsAppear(t *testing.T) {
	cmd := helperDoing(t, "churn", nil)
	pid := cmd.Process.Pid
	cpus, err := Affinity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // past the runtime's start
	rt := true
	for round := range 200 {
		time.Sleep(time.Millisecond) // let threads come and go
		cpu := cpus[round%len(cpus)]
		if err := SetAffinity(pid, []int{cpu}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		tids, _ := tasks(pid)
		for _, tid := range tids {
			if got, err := Affinity(tid); err == nil && (len(got) != 1 || got[0] != cpu) {
				t.Fatalf("round %d: thread %d has affinity %v, want [%d]", round, tid, got, cpu)
			}
		}
		if !rt {
			continue
		}
		prio := 10 + round%2
		err := SetRealTime(pid, prio)
		if errors.Is(err, syscall.EPERM) {
			t.Logf("SCHED_FIFO part skipped: needs the right to use SCHED_FIFO: %v", err)
			rt = false
			continue
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		want := "SCHED_FIFO/" + strconv.Itoa(prio)
		if got, err := Policy(pid); err != nil || got != want {
			t.Fatalf("round %d: policy %q, %v; want %s on every thread", round, got, err, want)
		}
	}
}

// TestStartFrom starts children from a lent thread and never touches them
// afterwards: every thread a child has must have inherited the affinity
// and SCHED_FIFO, this process must have none of them left, and the child
// must outlive the start (Pdeathsig is tied to the forking thread, which
// must not end). Three children, because a goroutine that ends locked on
// the main thread wedges it instead of ending it.
func TestStartFrom(t *testing.T) {
	mine, err := Affinity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cpu := mine[len(mine)-1]
	// Whether this process may use SCHED_FIFO, tried on a locked thread
	// (the runtime clones no thread from one) that ends with its
	// goroutine. Tried on whichever thread the test runs on, the
	// goroutine could move between the two calls and leave that thread
	// SCHED_FIFO, and the threads it clones ("this process kept
	// SCHED_FIFO: mixed: SCHED_FIFO/10 x1, SCHED_OTHER x4", 1 run in 200).
	may := make(chan bool)
	go func() {
		runtime.LockOSThread()
		ok := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 10}, 0) == nil
		if ok {
			unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0)
		}
		may <- ok
	}()
	want := "SCHED_OTHER" // no right to SCHED_FIFO: started without it
	if <-may {
		want = "SCHED_FIFO/10"
	}
	for range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HYPER_SCHED_TEST_HELPER=churn")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := startFrom(cmd, []int{cpu}, 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the child's runtime makes its threads
		pid := cmd.Process.Pid
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(stat), ") Z ") {
			t.Errorf("the child died: its forking thread ended (Pdeathsig): %s %v", stat, err)
		}
		if got, err := Policy(pid); err != nil || got != want {
			t.Errorf("child policy %q, %v; want %s on every thread", got, err, want)
		}
		tids, _ := tasks(pid)
		for _, tid := range tids {
			if got, err := Affinity(tid); err == nil && !slices.Equal(got, []int{cpu}) {
				t.Errorf("child thread %d has affinity %v, want [%d]", tid, got, cpu)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	if got, _ := Policy(os.Getpid()); strings.Contains(got, "FIFO") {
		t.Errorf("this process kept SCHED_FIFO: %s", got)
	}
	tids, _ := tasks(os.Getpid())
	for _, tid := range tids {
		if got, err := Affinity(tid); err == nil && !slices.Equal(got, mine) {
			t.Errorf("thread %d of this process kept affinity %v, want %v", tid, got, mine)
		}
	}
}

// TestAffinityNarrowed asks for CPUs of which the kernel allows only some
// (CPU 1000 does not exist here): every thread gets the allowed ones, as a
// cpuset narrower than the request would leave them.
func TestAffinityNarrowed(t *testing.T) {
	cmd := helperDoing(t, "churn", nil)
	mine, err := Affinity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := SetAffinity(cmd.Process.Pid, append(slices.Clone(mine), 1000)); err != nil {
		t.Fatal(err)
	}
	tids, _ := tasks(cmd.Process.Pid)
	for _, tid := range tids {
		if got, err := Affinity(tid); err == nil && !slices.Equal(got, mine) {
			t.Errorf("thread %d has affinity %v, want %v", tid, got, mine)
		}
	}
}

// TestPrepareFailureRemovesGroup checks that a group Prepare made but
// could not finish (here: on a CPU this machine does not have) is removed,
// and that a group which was there before (a restart's refresh) is left
// as it was, with its process.
func TestPrepareFailureRemovesGroup(t *testing.T) {
	want := needCgroups(t)
	online, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	keepAffinity(t)
	c := setupCgroups(t, Options{Name: testName(), Housekeeping: online[:1]}, want)
	defer c.Close()
	base := filepath.Dir(c.Inspect(Supervisor, 0).Path)
	const noSuchCPU = 1000

	p, err := c.Prepare("worker-x", []int{noSuchCPU})
	p.Release()
	if err == nil || p.Mode != ModeAffinity {
		t.Fatalf("prepare on CPU %d: got %+v, %v; want affinity and an error", noSuchCPU, p, err)
	}
	if _, err := os.Stat(filepath.Join(base, "worker-x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a failed prepare: got %v for %s/worker-x, want it removed", err, base)
	}

	p = prepareGroup(t, c, "worker-y", online[len(online)-1:])
	attr := &syscall.SysProcAttr{}
	p.StartInside(attr)
	cmd := helper(t, attr)
	p.Release()
	if err := c.Place("worker-y", cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	again, err := c.Prepare("worker-y", []int{noSuchCPU})
	again.Release()
	if err == nil {
		t.Fatalf("refresh on CPU %d: got no error", noSuchCPU)
	}
	if ps, err := procs(p.Path); err != nil || !slices.Contains(ps, cmd.Process.Pid) {
		t.Errorf("after a failed refresh: got pids %v (%v) in %s, want %d still there", ps, err, p.Path, cmd.Process.Pid)
	}
	if subs := subgroups(base); !slices.Equal(subs, []string{Supervisor, "worker-y"}) {
		t.Errorf("groups in %s: got %v, want [%s worker-y]", base, subs, Supervisor)
	}
}

// TestSetupRefusedLeavesNothing checks that when the kernel refuses the v1
// base its CPUs, because a group beside it holds one of them exclusively
// (as a hyper-sched did before issue 13), Setup falls back to affinity,
// names the holder, and leaves no group behind; and that the tests that
// need the cpuset then skip, naming it too, instead of failing.
func TestSetupRefusedLeavesNothing(t *testing.T) {
	if needCgroups(t) != ModeCgroup1 {
		t.Skip("tests the cgroup v1 cpuset hierarchy; this machine has cpuset on cgroup v2")
	}
	online, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(online) < 2 {
		t.Skip("needs two CPUs: one to hold exclusively, one left to everyone else")
	}
	keepAffinity(t)
	parent := ownV1Cpuset(t)
	holder := holdExclusively(t, parent, online[len(online)-1:])
	c, err := Setup(Options{Name: testName(), Housekeeping: online[:1], Best: ModeCgroup1})
	if err != nil {
		rmdir(holder)
		t.Fatal(err)
	}
	defer c.Close()
	// Two tests that need the cpuset, beside the holder (the others use the
	// same setupCgroups and prepareGroup).
	skipped := map[string]bool{}
	for name, test := range map[string]func(*testing.T){
		"TestSetupPlaceClose": TestSetupPlaceClose, "TestStaleAndBusy": TestStaleAndBusy,
	} {
		t.Run(name, func(t *testing.T) {
			defer func() { skipped[name] = t.Skipped() }()
			test(t)
		})
	}
	rmdir(holder) // soon: while it exists no cpuset beside it can have its CPU

	if c.Mode() != ModeAffinity {
		t.Fatalf("setup beside %s holding CPU %d: got %s, want affinity", holder, online[len(online)-1], c.Mode())
	}
	why := heldReason(c.Skipped()...)
	if !strings.Contains(why, holder) {
		t.Errorf("setup beside %s: got skipped %v, want a HeldError naming it", holder, c.Skipped())
	}
	t.Logf("a test beside it skips with: %s", why)
	if base := filepath.Join(parent, testName()); exists(base) {
		t.Errorf("after a refused setup: %s is left behind", base)
	}
	for name, ok := range skipped {
		if !ok {
			t.Errorf("%s beside %s: got run, want skipped", name, holder)
		}
	}
}

// TestSetupSupervisorRefusedLeavesNothing checks that a Setup whose
// supervisor group cannot be made (a housekeeping CPU this machine does
// not have) removes the base it made.
func TestSetupSupervisorRefusedLeavesNothing(t *testing.T) {
	want := needCgroups(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	keepAffinity(t)
	c, err := Setup(Options{Name: testName(), Housekeeping: []int{1000}, Best: want})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Mode() != ModeAffinity {
		t.Fatalf("setup with housekeeping CPU 1000: got %s, want affinity", c.Mode())
	}
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		if base := filepath.Join(m.dir, testName()); exists(base) {
			t.Errorf("after a refused setup: %s is left behind (skipped: %v)", base, c.Skipped())
		}
	}
}

// ownV1Cpuset returns the directory of this process's v1 cpuset group.
func ownV1Cpuset(t *testing.T) string {
	t.Helper()
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	_, own, err := memberships(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if !m.v2 && slices.Contains(m.supers, "cpuset") {
			return filepath.Join(m.dir, strings.TrimPrefix(own["cpuset"], m.root))
		}
	}
	t.Fatal("no v1 cpuset hierarchy")
	return ""
}

// holdExclusively makes a v1 cpuset group in parent that holds cpus with
// cpuset.cpu_exclusive and returns its directory; it skips t when the
// kernel refuses, which it does when a group beside it already has one of
// cpus (another cpuset user is active on this machine) or parent is not
// exclusive itself. Remove it as soon as possible: while it exists, no
// new group beside it can have those CPUs.
func holdExclusively(t *testing.T, parent string, cpus []int) string {
	t.Helper()
	dir := filepath.Join(parent, testName()+"-holder")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmdir(dir) })
	mems, _ := readString(filepath.Join(parent, "cpuset.mems"))
	for _, w := range [][2]string{{"cpuset.cpus", FormatList(cpus)}, {"cpuset.mems", mems}, {"cpuset.cpu_exclusive", "1"}} {
		if err := writeString(filepath.Join(dir, w[0]), w[1]); err != nil {
			rmdir(dir)
			t.Skipf("needs CPUs %s held exclusively in %s, which the kernel refuses (another cpuset there has them, or %s is not exclusive): %v",
				FormatList(cpus), parent, parent, err)
		}
	}
	return dir
}
