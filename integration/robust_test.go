package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runningLane waits until a lane of the daemon runs a call, and returns
// its name and pid.
func (d *daemon) runningLane() (string, int) {
	d.t.Helper()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(5 * time.Millisecond) {
		procs, _ := d.get("/status").body["processes"].([]any)
		for _, p := range procs {
			m := p.(map[string]any)
			if m["lane_state"] == "running" && m["pid"].(float64) > 0 {
				return m["name"].(string), int(m["pid"].(float64))
			}
		}
	}
	d.t.Fatalf("no lane runs a call after 30s; log:\n%s", d.logs())
	return "", 0
}

// proc returns the /status entry of process name.
func (d *daemon) proc(name string) map[string]any {
	procs, _ := d.get("/status").body["processes"].([]any)
	for _, p := range procs {
		if m := p.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// A call that crashes its lane is that call's failure: it is answered
// Error_Worker_lost with what the lane last wrote, and the lane comes
// back, however many times it happens and however soon after its start.
// Before, each crash within a second of the lane's start counted as a
// failed start, and the fifth made the worker FATAL until an operator
// ran hyper-schedctl start (a tenant's call could take a CPU away).
func TestCrashMidJobIsNotAFailedStart(t *testing.T) {
	d := start(t, t.TempDir(), "--cpus", "1", "--lanes", "1", "--best-effort-cap", "20s")
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	for round := range 8 {
		answer := make(chan answer, 1)
		go func() {
			answer <- d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["4000000000"]}`)
		}()
		name, pid := d.runningLane()
		// SIGABRT: the Go runtime writes its goroutine dump to stderr and
		// exits 2, as a crash would.
		if err := syscall.Kill(pid, syscall.SIGABRT); err != nil {
			t.Fatal(err)
		}
		a := <-answer
		if a.code != http.StatusServiceUnavailable || a.str("status") != "Error_Worker_lost" || !strings.Contains(a.str("error"), "exited while running this call") {
			t.Fatalf("round %d: the crashed call's answer: %d %s", round, a.code, a.raw)
		}
		d.waitHealthy()
		if p := d.proc(name); p["state"] != "RUNNING" {
			t.Fatalf("round %d: %s is %v after a crash mid-job, want RUNNING; log:\n%s", round, name, p["state"], d.logs())
		}
	}
	// The crash's last words were read to their end: the runtime's dump
	// is in the log, and the last exit says how it ended.
	p := d.proc("worker-1:0")
	// (The Go runtime, interrupted in the guest's compiled code, may end
	// by SIGSEGV rather than exit status 2.)
	if last, _ := p["last_exit"].(string); !strings.Contains(last, "last stderr line") || strings.Contains(last, "killed") {
		t.Errorf("last exit: %q, want how it ended and its last stderr line", last)
	}
	if n := strings.Count(d.logs(), "SIGABRT: abort"); n != 8 {
		t.Errorf("the crash dump's first line is logged %d times, want 8 (one per crash)", n)
	}
	if a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["10"],"expected_deadline":"5000"}`); a.code != 200 {
		t.Errorf("a call after the crashes: %d %s", a.code, a.raw)
	}
}

// lanePidsOf returns the pids of the daemon's children titled as worker
// lanes ("hyper-sched: worker-1 lane 0"), read from /proc: it needs no
// descriptor of the daemon's.
func lanePidsOf(t *testing.T, daemon int) map[string]int {
	t.Helper()
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(daemon) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if title := strings.TrimRight(string(cmd), "\x00"); strings.HasPrefix(title, "hyper-sched: worker-") {
			out[title] = pid
		}
	}
	return out
}

// openFDs counts pid's open descriptors.
func openFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// exhaustDescriptors lowers the daemon's RLIMIT_NOFILE to 40 above what it
// holds and opens idle connections until it holds them all; release closes
// them (more than once is fine). It skips when the limit cannot be lowered.
func exhaustDescriptors(t *testing.T, d *daemon) (release func()) {
	t.Helper()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux) to lower the daemon's descriptor limit")
	}
	pid := d.cmd.Process.Pid
	limit := openFDs(pid) + 40
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Skipf("cannot lower the daemon's descriptor limit (needs CAP_SYS_RESOURCE): %v %s", err, out)
	}
	addr := strings.TrimPrefix(d.url, "http://")
	var conns []net.Conn
	release = func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	for i := 0; openFDs(pid) < limit && i < 4*limit; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the accept loop takes what it can
	if n := openFDs(pid); n < limit {
		release()
		t.Fatalf("the daemon holds %d descriptors, want its limit %d", n, limit)
	}
	return release
}

// A lane killed while idle connections hold every descriptor the daemon
// may open is respawned all the same, from the descriptors the daemon
// keeps for it; a second kill, with the reserve spent, waits (BACKOFF,
// never FATAL) until descriptors free up. Before, the respawn's
// socketpair failed with EMFILE five times in a row, the worker went
// FATAL and stayed FATAL after the connections closed.
func TestRespawnWithoutDescriptors(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux) to lower the daemon's descriptor limit")
	}
	d := start(t, t.TempDir(), "--cpus", "1", "--lanes", "2")
	pid := d.cmd.Process.Pid
	release := exhaustDescriptors(t, d)
	defer release()
	kill := func(title string) int {
		lanes := lanePidsOf(t, pid)
		old := lanes[title]
		if old == 0 {
			t.Fatalf("no lane %q among %v", title, lanes)
		}
		syscall.Kill(old, syscall.SIGKILL)
		return old
	}
	old := kill("hyper-sched: worker-1 lane 0")
	var back int
	for start := time.Now(); time.Since(start) < 30*time.Second && back == 0; time.Sleep(20 * time.Millisecond) {
		if p := lanePidsOf(t, pid)["hyper-sched: worker-1 lane 0"]; p != 0 && p != old {
			back = p
		}
	}
	if back == 0 {
		t.Fatalf("lane 0 was not respawned while descriptors were exhausted; log:\n%s", d.logs())
	}
	// The reserve is spent: this one waits for descriptors.
	kill("hyper-sched: worker-1 lane 1")
	time.Sleep(2 * time.Second) // several retries' worth
	release()
	d.waitHealthy()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		l1 := d.proc("worker-1:1")
		if l1["state"] == "RUNNING" {
			break
		}
		if l1["state"] == "FATAL" || time.Since(start) > 30*time.Second {
			t.Fatalf("lane 1 is %v once descriptors are free again; log:\n%s", l1["state"], d.logs())
		}
	}
	if a := d.post("/call", `{"wasm_name":"none.wasm","export_func":"f"}`); a.code != http.StatusNotFound {
		t.Errorf("the API after the connections closed: %d %s", a.code, a.raw)
	}
}

// Children are titled as nginx does; a SIGHUP storm costs one error line;
// a deadline kill is logged; a clean stop logs no warning.
func TestTitlesAndLogs(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir, "--cpus", "1", "--lanes", "2")
	pid := d.cmd.Process.Pid
	lanes := lanePidsOf(t, pid)
	for _, title := range []string{"hyper-sched: worker-1 lane 0", "hyper-sched: worker-1 lane 1"} {
		if lanes[title] == 0 {
			t.Errorf("no child titled %q: %v", title, lanes)
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", lanes[title]))
		want := "hs worker-1:" + title[len(title)-1:]
		if got := strings.TrimSpace(string(comm)); got != want {
			t.Errorf("%s: comm %q, want %q", title, got, want)
		}
	}

	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"}, map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	addByHand(t, dir, "broken.wasm", []byte("\x00asm\x01\x00\x00\x00\x01\xff"))
	for range 500 {
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	time.Sleep(2 * time.Second)
	if n := strings.Count(d.logs(), "level=ERROR msg=reload"); n != 1 {
		t.Errorf("500 SIGHUPs with one broken module: %d reload error lines, want 1", n)
	}

	a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"forever","expected_execution_time":"10","expected_deadline":"200"}`)
	if a.code != http.StatusGatewayTimeout {
		t.Errorf("a call past its deadline: %d %s", a.code, a.raw)
	}
	// The answer may come before the daemon's stderr is copied here.
	for start := time.Now(); time.Since(start) < 5*time.Second && !strings.Contains(d.logs(), `msg="killed a call's lane"`); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(d.logs(), `msg="killed a call's lane"`) {
		t.Errorf("the deadline kill is not logged (answer %s); log:\n%s", a.raw, d.logs())
	}
	d.waitHealthy()
	d.stop()
	for _, line := range strings.Split(d.logs(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "msg=exited") {
			t.Errorf("a clean stop logged a warning: %s", line)
		}
	}
}
