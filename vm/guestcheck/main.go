// Command guestcheck runs inside the QEMU guests of vm/run.sh and checks
// hyper-sched's isolation from the kernel's side: /proc/PID/cgroup,
// cpuset.cpus.effective, cpuset.cpus.partition, Cpus_allowed_list and the
// scheduling policy of every process. It prints one "VMTEST PASS name" or
// "VMTEST FAIL name: why" line per check, for the host to parse from the
// serial console, and exits 1 when any check failed.
//
//	guestcheck byhand    -workers L -housekeeping L -partition P -policy P
//	guestcheck placement -base G -pid N [same expectations]
//	guestcheck gone      -base G
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
	fs.StringVar(&exp.base, "base", "/hyper-sched", "expected base cgroup")
	pid := fs.Int("pid", 0, "supervisor pid (placement)")
	fs.Parse(os.Args[2:])
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
		gone(&r, exp.base)
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
	base        string
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
	gone(r, exp.base)
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
// run.
func placement(r *report, exp expect, supPid int) {
	// benchd may still be starting: /healthz waits for the workers only.
	var procs []any
	lanes := 0
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st := getJSON(url + "/status")
		procs, _ = st["processes"].([]any)
		n, _ := st["lanes_per_cpu"].(float64)
		lanes = int(n)
		if allRunning(procs) || time.Now().After(deadline) {
			break
		}
	}
	seen := 0
	for _, p := range procs {
		m, _ := p.(map[string]any)
		name, _ := m["name"].(string)
		fpid, _ := m["pid"].(float64)
		pid := int(fpid)
		if m["state"] != "RUNNING" || pid == 0 {
			r.fail(name, "state %v, pid %d", m["state"], pid)
			continue
		}
		lane, isWorker := strings.CutPrefix(name, "worker-")
		if !isWorker {
			checkProc(r, name, pid, exp.base+"/"+name, exp.hk)
			continue
		}
		// worker-<cpu>:<lane>: every lane of a CPU shares its group.
		seen++
		cpu, _, _ := strings.Cut(lane, ":")
		n, _ := strconv.Atoi(cpu)
		group := exp.base + "/worker-" + cpu
		checkProc(r, name, pid, group, []int{n})
		dir := filepath.Join(cgroupRoot, group)
		eff, _ := readString(filepath.Join(dir, "cpuset.cpus.effective"))
		r.check(name+" cpuset.cpus.effective", eff == cpu, "got %q, want %q", eff, cpu)
		if mem, err := readString(filepath.Join(dir, "memory.max")); exp.memory {
			r.check(name+" memory.max", mem == strconv.Itoa(workerMemoryMax), "got %q (%v), want %d", mem, err, workerMemoryMax)
		}
		part, err := readString(filepath.Join(dir, "cpuset.cpus.partition"))
		info("%s cpuset.cpus.partition: %q", name, part)
		switch exp.partition {
		case "isolated":
			r.check(name+" partition", part == "isolated", "got %q (%v), want isolated", part, err)
		case "invalid":
			r.check(name+" partition reported invalid", strings.Contains(part, "invalid ("), "got %q (%v), want an invalid partition with its reason", part, err)
		}
		pol, err := isolate.Policy(pid)
		info("%s policy: %s", name, pol)
		want := map[string]string{"fifo": "SCHED_FIFO/", "other": "SCHED_OTHER"}[exp.policy]
		r.check(name+" policy", err == nil && strings.HasPrefix(pol, want), "got %q (%v), want %s on every thread", pol, err, want)
	}
	r.check("worker lanes running", lanes > 0 && seen == len(exp.workers)*lanes, "got %d, want %d CPUs x %d lanes", seen, len(exp.workers), lanes)
	if supPid > 0 {
		checkProc(r, "supervisor", supPid, exp.base+"/supervisor", exp.hk)
	}
	if exp.partition == "isolated" {
		iso, _ := readString(filepath.Join(cgroupRoot, "cpuset.cpus.isolated"))
		got, _ := isolate.ParseList(iso)
		r.check("root cpuset.cpus.isolated", slices.Equal(got, exp.workers), "got %q, want %s", iso, isolate.FormatList(exp.workers))
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

// checkProc checks one process's cgroup and affinity.
func checkProc(r *report, name string, pid int, group string, cpus []int) {
	got := cgroupOf(pid)
	r.check(name+" cgroup", got == group, "pid %d is in %q, want %q", pid, got, group)
	allowed := cpusAllowed(pid)
	r.check(name+" Cpus_allowed_list", allowed == isolate.FormatList(cpus), "pid %d got %q, want %q", pid, allowed, isolate.FormatList(cpus))
}

// gone checks that no hyper-sched process and no group is left.
func gone(r *report, base string) {
	left := processes()
	r.check("no hyper-sched process", len(left) == 0, "left: %v", left)
	dir := filepath.Join(cgroupRoot, base)
	if base == "/hyper-sched" {
		r.check("groups removed", !exists(dir), "%s still exists: %v", dir, subdirs(dir))
		return
	}
	// A delegated base is systemd's: it goes with the unit.
	r.check("groups removed", len(subdirs(dir)) == 0, "%s still has %v", dir, subdirs(dir))
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
