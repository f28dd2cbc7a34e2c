// Command guestcheck runs inside the QEMU guests of vm/run.sh and checks
// hyper-sched's isolation from the kernel's side: /proc/PID/cgroup,
// cpuset.cpus.effective, cpuset.cpus.partition, Cpus_allowed_list, the
// scheduling policy and nice value of every thread of every process, and
// the processes in each group. It prints "VMTEST PASS what was found" or
// "VMTEST FAIL name: got …, want …" lines, for the host to parse from the
// serial console, and exits 1 when any check failed.
//
//	guestcheck byhand    -workers L -housekeeping L -partition P -policy P
//	guestcheck placement -base G -pid N [-label L] [same expectations]
//	guestcheck gone      -base G [-label L]
//
// byhand starts /usr/local/bin/hyper-sched itself as root (no systemd),
// registers and calls testdata's fib.wasm, checks placement, kills the
// supervisor with SIGKILL to leave stale groups, starts it again (which
// must clean them), and stops it with SIGTERM (which must remove them).
// It is built static and runs on nothing but a kernel and busybox.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hyper-sched/hyper-sched/isolate"
)

const (
	cgroupRoot = "/sys/fs/cgroup"
	daemon     = "/usr/local/bin/hyper-sched"
	url        = "http://127.0.0.1:3001"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: guestcheck byhand|placement|gone [flags]")
		os.Exit(2)
	}
	var (
		r   report
		exp expect
	)
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	workers := fs.String("workers", "", "expected worker CPUs")
	hk := fs.String("housekeeping", "", "expected housekeeping CPUs")
	fs.StringVar(&exp.partition, "partition", "isolated", "expected worker partition: isolated, invalid or none")
	fs.StringVar(&exp.policy, "policy", "other", "expected worker policy: fifo or other")
	fs.IntVar(&exp.priority, "priority", 10, "expected SCHED_FIFO priority of worker lanes (docs/isolation.md)")
	fs.IntVar(&exp.lanes, "lanes", 3, "expected lanes per worker CPU (the default --lanes)")
	fs.StringVar(&exp.base, "base", "/hyper-sched", "expected base cgroup")
	label := fs.String("label", "", "prefix of every check's name (which step of a test)")
	pid := fs.Int("pid", 0, "supervisor pid (placement)")
	fs.Parse(os.Args[2:])
	if *label != "" {
		exp.label = *label + ": "
	}
	var err error
	if exp.workers, err = isolate.ParseList(*workers); err != nil {
		r.fail("flags", "%v", err)
	}
	if exp.hk, err = isolate.ParseList(*hk); err != nil {
		r.fail("flags", "%v", err)
	}
	switch os.Args[1] {
	case "byhand":
		exp.memory = true
		byHand(&r, exp)
	case "placement":
		placement(&r, exp, *pid)
	case "gone":
		gone(&r, exp.label, exp.base)
	default:
		r.fail("usage", "unknown mode %q", os.Args[1])
	}
	if r.failed {
		fmt.Println("VMTEST RESULT FAIL")
		os.Exit(1)
	}
	fmt.Println("VMTEST RESULT PASS")
}

// workerMemoryMax is the --worker-memory-max the guests run the daemon with
// by hand: 512 MiB, far above what the test modules use.
const workerMemoryMax = 512 << 20

type expect struct {
	workers, hk []int
	memory      bool // memory.max of workers is expected (started by hand)
	partition   string
	policy      string
	priority    int // SCHED_FIFO priority with policy fifo
	lanes       int
	base        string
	label       string // "step: ", prefixed to check names
}

type report struct{ failed bool }

func (r *report) pass(name string) { fmt.Printf("VMTEST PASS %s\n", name) }

func (r *report) fail(name, format string, args ...any) {
	r.failed = true
	fmt.Printf("VMTEST FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
}

func (r *report) check(name string, ok bool, format string, args ...any) bool {
	if ok {
		r.pass(name)
	} else {
		r.fail(name, format, args...)
	}
	return ok
}

func info(format string, args ...any) { fmt.Printf("VMTEST INFO "+format+"\n", args...) }

// byHand is the busybox guest's whole test.
func byHand(r *report, exp expect) {
	d, ok := startDaemon(r, "start")
	if !ok {
		return
	}
	defer d.Process.Kill()
	status := getJSON(url + "/status")
	r.check("worker cpus", status["worker_cpus"] == isolate.FormatList(exp.workers), "got %v, want %s", status["worker_cpus"], isolate.FormatList(exp.workers))
	r.check("housekeeping cpus", status["housekeeping_cpus"] == isolate.FormatList(exp.hk), "got %v, want %s", status["housekeeping_cpus"], isolate.FormatList(exp.hk))
	register(r)
	call(r, "call", exp.workers)
	placement(r, exp, d.Process.Pid)

	// A supervisor killed outright leaves its groups; its children die
	// with it (Pdeathsig).
	pids := processes()
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()
	r.check("children die with the supervisor", waitGone(pids, 10*time.Second), "still alive: %v", alive(pids))
	r.check("stale groups left by SIGKILL", exists(filepath.Join(cgroupRoot, exp.base)), "%s is gone already", exp.base)

	d, ok = startDaemon(r, "restart after SIGKILL")
	if !ok {
		return
	}
	defer d.Process.Kill()
	log, _ := os.ReadFile("/tmp/hyper-sched.log")
	r.check("stale groups removed at start", bytes.Contains(log, []byte("removed the cgroups of a previous run")), "no such line in the log")
	// Children are born in their groups (clone3 CLONE_INTO_CGROUP), not
	// moved there after a failed try.
	r.check("children started inside their cgroups", !bytes.Contains(log, []byte("CLONE_INTO_CGROUP) failed")),
		"the log says: %s", lineWith(log, "CLONE_INTO_CGROUP) failed"))
	resp, err := http.Get(url + "/modules/fib.wasm")
	if err == nil {
		resp.Body.Close()
	}
	r.check("module kept across restart", err == nil && resp.StatusCode == 200, "GET /modules/fib.wasm: %v %v", err, resp)
	call(r, "call after restart", exp.workers)
	placement(r, exp, d.Process.Pid)

	pids = processes()
	d.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case err := <-done:
		r.check("clean stop", err == nil, "exit: %v", err)
	case <-time.After(60 * time.Second):
		r.fail("clean stop", "still running 60s after SIGTERM")
	}
	r.check("no process left", waitGone(pids, 10*time.Second), "still alive: %v", alive(pids))
	gone(r, "", exp.base)
	if iso, err := readString(filepath.Join(cgroupRoot, "cpuset.cpus.isolated")); err == nil {
		r.check("partitions released", iso == "", "cpuset.cpus.isolated is %q after stop", iso)
	}
}

func startDaemon(r *report, name string) (*exec.Cmd, bool) {
	logf, err := os.OpenFile("/tmp/hyper-sched.log", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		r.fail(name, "%v", err)
		return nil, false
	}
	defer logf.Close()
	cmd := exec.Command(daemon, "--listen", "127.0.0.1:3001", "--worker-memory-max", strconv.Itoa(workerMemoryMax))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.fail(name, "%v", err)
		return nil, false
	}
	for time.Since(start) < 3*time.Minute {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				info("%s: healthy after %v", name, time.Since(start).Round(time.Millisecond))
				r.pass(name)
				return cmd, true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile("/tmp/hyper-sched.log")
	r.fail(name, "not healthy after 3 minutes; log:\n%s", log)
	cmd.Process.Kill()
	cmd.Wait()
	return nil, false
}

func register(r *report) {
	wasm, err := os.ReadFile("/testdata/fib.wasm")
	if err != nil {
		r.fail("register", "%v", err)
		return
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("fib.wasm", "fib.wasm")
	fw.Write(wasm)
	mw.Close()
	start := time.Now()
	resp, err := http.Post(url+"/register", mw.FormDataContentType(), &body)
	if err != nil {
		r.fail("register", "%v", err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	info("register took %v", time.Since(start).Round(time.Millisecond))
	r.check("register", resp.StatusCode == 200, "got %d %s", resp.StatusCode, raw)
}

func call(r *report, name string, workers []int) {
	resp, err := http.Post(url+"/call", "application/json", strings.NewReader(
		`{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"60000"}`))
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	defer resp.Body.Close()
	var a map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &a)
	cpu, _ := a["cpu"].(float64)
	r.check(name, resp.StatusCode == 200 && a["result"] == "[I32(6765)]" && slices.Contains(workers, int(cpu)),
		"got %d %s, want [I32(6765)] from a worker CPU", resp.StatusCode, raw)
}

// placement checks where the supervisor pid and the children /status lists
// run, and how they are scheduled, as the kernel reports it: each process's
// cgroup, Cpus_allowed_list and policy on every thread (lanes SCHED_FIFO at
// exp.priority on valid isolated partitions, else SCHED_OTHER; benchd
// SCHED_IDLE; the supervisor SCHED_OTHER at nice -5 or 0), each worker group's
// cpuset and partition, and that the base holds exactly the groups of this
// run with exactly their processes. One PASS line per process and group
// says what was found; each FAIL line, what was found and what was wanted.
func placement(r *report, exp expect, supPid int) {
	// benchd may still be starting: /healthz waits for the workers only.
	var (
		procs []any
		st    map[string]any
	)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st = getJSON(url + "/status")
		procs, _ = st["processes"].([]any)
		if allRunning(procs) || time.Now().After(deadline) {
			break
		}
	}
	l := exp.label
	if n, _ := st["lanes_per_cpu"].(float64); int(n) != exp.lanes {
		r.fail(l+"lanes per cpu", "GET /status lanes_per_cpu %v, want %d", st["lanes_per_cpu"], exp.lanes)
	}
	lanePolicy := "SCHED_OTHER"
	if exp.policy == "fifo" {
		lanePolicy = "SCHED_FIFO/" + strconv.Itoa(exp.priority)
	}
	members := map[string][]int{} // group → the pids status puts there
	lanes := map[string]int{}     // worker CPU → lanes RUNNING
	for _, p := range procs {
		m, _ := p.(map[string]any)
		name, _ := m["name"].(string)
		fpid, _ := m["pid"].(float64)
		pid := int(fpid)
		if m["state"] != "RUNNING" || pid == 0 {
			r.fail(l+name, "state %v, pid %d, want RUNNING after a minute", m["state"], pid)
			continue
		}
		lane, isWorker := strings.CutPrefix(name, "worker-")
		if !isWorker {
			members[name] = append(members[name], pid)
			checkProc(r, l+name, pid, exp.base+"/"+name, exp.hk, "SCHED_IDLE")
			continue
		}
		// worker-<cpu>:<lane>: every lane of a CPU shares its group.
		cpu, _, _ := strings.Cut(lane, ":")
		n, _ := strconv.Atoi(cpu)
		group := "worker-" + cpu
		members[group] = append(members[group], pid)
		lanes[cpu]++
		// SCHED_OTHER lanes run at nice -5, first started or respawned
		// (supervisor.laneNice).
		var nice []int
		if lanePolicy == "SCHED_OTHER" {
			nice = []int{-5}
		}
		checkProc(r, l+name, pid, exp.base+"/"+group, []int{n}, lanePolicy, nice...)
	}
	for _, cpu := range exp.workers {
		c := strconv.Itoa(cpu)
		checkGroup(r, exp, "worker-"+c, c, lanes[c])
	}
	if supPid > 0 {
		members["supervisor"] = append(members["supervisor"], supPid)
		// -5 with calls queueing or a deadline call in hand, 0 serving
		// best-effort calls one at a time (supervisor's nice.go).
		checkProc(r, l+"supervisor", supPid, exp.base+"/supervisor", exp.hk, "SCHED_OTHER", -5, 0)
	}
	checkMembers(r, exp, members, supPid > 0)
	if exp.partition == "isolated" {
		iso, _ := readString(filepath.Join(cgroupRoot, "cpuset.cpus.isolated"))
		got, _ := isolate.ParseList(iso)
		r.check(l+"root cpuset.cpus.isolated", slices.Equal(got, exp.workers), "got %q, want %s", iso, isolate.FormatList(exp.workers))
	}
}

func allRunning(procs []any) bool {
	for _, p := range procs {
		if m, _ := p.(map[string]any); m["state"] != "RUNNING" {
			return false
		}
	}
	return len(procs) > 0
}

// checkProc checks one process's cgroup, affinity and the policy of every
// thread (and their nice value, one of nices on every thread, when nices
// are given): one PASS line that says what was found, or one FAIL line per
// difference.
func checkProc(r *report, name string, pid int, group string, cpus []int, policy string, nices ...int) {
	ok := true
	fail := func(what, format string, args ...any) {
		ok = false
		r.fail(name+" "+what, format, args...)
	}
	if got := cgroupOf(pid); got != group {
		fail("cgroup", "pid %d is in %q, want %q", pid, got, group)
	}
	allowed := cpusAllowed(pid)
	if allowed != isolate.FormatList(cpus) {
		fail("Cpus_allowed_list", "pid %d got %q, want %q", pid, allowed, isolate.FormatList(cpus))
	}
	pol, err := isolate.Policy(pid)
	if err != nil || pol != policy {
		fail("policy", "pid %d got %q%s, want %s on every thread", pid, pol, because(err), policy)
	}
	nice := niceOf(pid)
	// A process whose nice changes (the supervisor's, with its load) is
	// seen mixed while it is walked: look again.
	for i := 0; i < 20 && len(nices) > 1 && strings.HasPrefix(nice, "mixed"); i++ {
		time.Sleep(100 * time.Millisecond)
		nice = niceOf(pid)
	}
	if len(nices) > 0 && !slices.ContainsFunc(nices, func(n int) bool { return nice == strconv.Itoa(n) }) {
		fail("nice", "pid %d got %s, want one of %v on every thread", pid, nice, nices)
	}
	if ok {
		r.pass(fmt.Sprintf("%s: pid %d in %s, cpus %s, %s nice %s on every thread", name, pid, group, allowed, pol, nice))
	}
}

// checkGroup checks a worker group's lanes RUNNING, its cpuset,
// memory.max and partition.
func checkGroup(r *report, exp expect, group, cpu string, lanes int) {
	name := exp.label + group
	dir := filepath.Join(cgroupRoot, exp.base, group)
	ok := true
	if lanes != exp.lanes {
		ok = r.check(name+" lanes", false, "got %d RUNNING, want %d", lanes, exp.lanes)
	}
	eff, _ := readString(filepath.Join(dir, "cpuset.cpus.effective"))
	if eff != cpu {
		ok = r.check(name+" cpuset.cpus.effective", false, "got %q, want %q", eff, cpu)
	}
	mem, err := readString(filepath.Join(dir, "memory.max"))
	if exp.memory && mem != strconv.Itoa(workerMemoryMax) {
		ok = r.check(name+" memory.max", false, "got %q%s, want %d", mem, because(err), workerMemoryMax)
	}
	part, err := readString(filepath.Join(dir, "cpuset.cpus.partition"))
	switch exp.partition {
	case "isolated":
		if part != "isolated" {
			ok = r.check(name+" partition", false, "got %q%s, want isolated", part, because(err))
		}
	case "invalid":
		if !strings.Contains(part, "invalid (") {
			ok = r.check(name+" partition reported invalid", false, "got %q%s, want an invalid partition with its reason", part, because(err))
		}
	}
	if ok && exp.memory {
		r.pass(fmt.Sprintf("%s: %d lanes RUNNING, cpuset.cpus.effective %s, memory.max %s, cpuset.cpus.partition %q", name, lanes, eff, mem, part))
	} else if ok {
		r.pass(fmt.Sprintf("%s: %d lanes RUNNING, cpuset.cpus.effective %s, cpuset.cpus.partition %q", name, lanes, eff, part))
	}
}

// checkMembers checks that the base holds exactly the groups of this run
// (a previous run's were removed) and each exactly its processes: no
// process left from a previous run, none of ours outside its group.
// Without the supervisor's pid its group is not checked.
func checkMembers(r *report, exp expect, members map[string][]int, withSup bool) {
	name := exp.label + "groups"
	want := []string{"benchd", "supervisor"}
	for _, cpu := range exp.workers {
		want = append(want, "worker-"+strconv.Itoa(cpu))
	}
	slices.Sort(want)
	got := subdirs(filepath.Join(cgroupRoot, exp.base))
	slices.Sort(got)
	ok := true
	if !slices.Equal(got, want) {
		ok = r.check(name, false, "%s has %v, want %v", exp.base, got, want)
	}
	for _, g := range want {
		if g == "supervisor" && !withSup {
			continue
		}
		procs := procsOf(filepath.Join(cgroupRoot, exp.base, g))
		pids := slices.Clone(members[g])
		slices.Sort(pids)
		if !slices.Equal(procs, pids) {
			ok = r.check(name+" "+g+" cgroup.procs", false, "got %v, want %v (what /status lists there)", procs, pids)
		}
	}
	if ok {
		r.pass(fmt.Sprintf("%s: %s holds %v, each with exactly its processes", name, exp.base, want))
	}
}

// procsOf lists a group's cgroup.procs, sorted.
func procsOf(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// niceOf is the nice value of every thread of pid ("-5"), or the values
// with their counts when threads differ ("mixed: -5 x3, 0 x1").
func niceOf(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	count := map[string]int{}
	var order []string
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the command's closing parenthesis start at
		// field 3 (state); nice is field 19.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 17 {
			continue
		}
		if count[f[16]] == 0 {
			order = append(order, f[16])
		}
		count[f[16]]++
	}
	switch len(order) {
	case 0:
		return "unknown"
	case 1:
		return order[0]
	}
	parts := make([]string, len(order))
	for i, n := range order {
		parts[i] = fmt.Sprintf("%s x%d", n, count[n])
	}
	return "mixed: " + strings.Join(parts, ", ")
}

// gone checks that no hyper-sched process and no group is left.
func gone(r *report, label, base string) {
	left := processes()
	r.check(label+"no hyper-sched process", len(left) == 0, "left: %v", left)
	dir := filepath.Join(cgroupRoot, base)
	if base == "/hyper-sched" {
		r.check(label+"groups removed", !exists(dir), "%s still exists: %v", dir, subdirs(dir))
		return
	}
	// A delegated base is systemd's: it goes with the unit.
	r.check(label+"groups removed", len(subdirs(dir)) == 0, "%s still has %v", dir, subdirs(dir))
}

// because is " (err)", or nothing without an error.
func because(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// lineWith is the first line of log containing s.
func lineWith(log []byte, s string) string {
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func subdirs(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// processes lists the pids whose executable is hyper-sched.
func processes() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && strings.HasPrefix(filepath.Base(exe), "hyper-sched") {
			out = append(out, pid)
		}
	}
	return out
}

func alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(b), ") Z ") {
				out = append(out, p)
			}
		}
	}
	return out
}

func waitGone(pids []int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for len(alive(pids)) > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func cgroupOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if g, ok := strings.CutPrefix(line, "0::"); ok {
			return g
		}
	}
	return ""
}

var allowedRE = regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`)

func cpusAllowed(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if m := allowedRE.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func getJSON(u string) map[string]any {
	out := map[string]any{}
	resp, err := http.Get(u)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}
