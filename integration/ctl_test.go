package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/internal/race"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// The hyper-schedctl binary, built once beside the daemon's.
var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

func ctlBinary(t testing.TB) string {
	t.Helper()
	ctlOnce.Do(func() {
		dir := filepath.Dir(binary)
		// TestCtlPeerRefused runs it as nobody.
		if err := os.Chmod(dir, 0o755); err != nil {
			ctlErr = err
			return
		}
		ctlPath = filepath.Join(dir, "hyper-schedctl")
		args := append(append([]string{"build"}, raceFlags...), "-o", ctlPath, "../cmd/hyper-schedctl")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			ctlErr = fmt.Errorf("build hyper-schedctl: %v\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// ctlRun is one run of hyper-schedctl.
type ctlRun struct {
	code           int
	stdout, stderr string
}

func (r ctlRun) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// ctlCmd runs hyper-schedctl with args; cmd, when not nil, is adjusted
// first (environment, credentials, stdin).
func ctlCmd(t testing.TB, adjust func(*exec.Cmd), args ...string) ctlRun {
	t.Helper()
	cmd := exec.Command(ctlBinary(t), args...)
	// No HYPER_SCHED_SOCKET from the environment; and no second-long sleep
	// of the race runtime at exit, which would only slow the test.
	cmd.Env = []string{"GORACE=atexit_sleep_ms=0"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if adjust != nil {
		adjust(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hyper-schedctl %q did not finish in 90s; stdout %q stderr %q", args, stdout.String(), stderr.String())
	}
	r := ctlRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("hyper-schedctl %q reported a data race:\n%s", args, r.stderr)
	}
	return r
}

func (d *daemon) sock() string { return "unix://" + filepath.Join(d.dir, "run", "control.sock") }

// ctl runs hyper-schedctl -s <this daemon's socket> args.
func (d *daemon) ctl(args ...string) ctlRun {
	d.t.Helper()
	return ctlCmd(d.t, nil, append([]string{"-s", d.sock()}, args...)...)
}

// want checks an exit status and that stdout contains every string of has.
func (r ctlRun) want(t testing.TB, what string, code int, has ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: got %s\nwant exit %d", what, r, code)
		return
	}
	for _, h := range has {
		if !strings.Contains(r.stdout, h) {
			t.Errorf("%s: got %s\nwant stdout containing %q", what, r, h)
		}
	}
}

// firstWorker is the name of the lowest-numbered worker CPU,
// worker-<cpu>: the group of its lanes, worker-<cpu>:<lane>.
func (d *daemon) firstWorker() string {
	d.t.Helper()
	cpus := d.workerCPUs()
	if len(cpus) == 0 {
		d.t.Fatalf("no worker running; log:\n%s", d.logs())
	}
	return fmt.Sprintf("worker-%d", cpus[0])
}

var statusLine = regexp.MustCompile(`(?m)^(\S+) +(RUNNING|STOPPED|STARTING|BACKOFF|STOPPING|EXITED|FATAL) +(.*)$`)

// statusOf parses hyper-schedctl status output: name → state, description.
func statusOf(out string) map[string][2]string {
	m := map[string][2]string{}
	for _, s := range statusLine.FindAllStringSubmatch(out, -1) {
		m[s[1]] = [2]string{s[2], s[3]}
	}
	return m
}

func TestCtlCommands(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	// w names a CPU's lanes; w0 and w1 are two of them.
	w := d.firstWorker()
	w0, w1 := w+":0", w+":1"
	cpu, _, _ := laneOf(w0)
	pids := d.lanePids(w)
	lanes := sortedKeys(pids)
	cores := len(d.workerCPUs())
	if n := d.status().Lanes; n < 2 || len(lanes) != n {
		t.Fatalf("%s: got lanes %v with lanes_per_cpu %d, want the default of several lanes, all RUNNING", w, lanes, n)
	}
	// each returns what a verb prints for every lane of w.
	each := func(format string) []string {
		var out []string
		for _, l := range lanes {
			out = append(out, fmt.Sprintf(format, l))
		}
		return out
	}

	d.ctl("version").want(t, "version", 0, fmt.Sprintf("hyper-sched dev (hyper-schedctl dev, protocol %d)", ipc.Version))
	st := d.ctl("status")
	st.want(t, "status", 0, "benchd ")
	for _, l := range lanes {
		if got := statusOf(st.stdout)[l]; got[0] != "RUNNING" || !regexp.MustCompile(`^pid \d+, uptime \d+:\d\d:\d\d, cpu \d+, isolation \S+`).MatchString(got[1]) {
			t.Errorf("status %s: got %q in\n%s", l, got, st.stdout)
		}
	}
	if line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w0) + ` .*$`).FindString(st.stdout); strings.Index(line, "RUNNING") != 33 {
		t.Errorf("status line %q: want the state at column 33, as supervisorctl", line)
	}
	// A CPU's name stands for all its lanes.
	if r := d.ctl("status", w); r.code != 0 || len(statusOf(r.stdout)) != len(lanes) || strings.Contains(r.stdout, "benchd") {
		t.Errorf("status %s: got %s\nwant exit 0 and its %d lanes", w, r, len(lanes))
	}
	d.ctl("pid").want(t, "pid", 0, strconv.Itoa(d.cmd.Process.Pid)+"\n")
	d.ctl("pid", w0).want(t, "pid "+w0, 0, strconv.Itoa(int(pids[w0]))+"\n")
	if r := d.ctl("pid", w); r.code != 0 || !sameLines(r.stdout, pidLines(pids)) {
		t.Errorf("pid %s: got %s\nwant the pids of its lanes %v", w, r, pids)
	}
	d.ctl("pid", "worker-999").want(t, "pid worker-999", 1, "No such process worker-999")
	d.ctl("pid", w+":99").want(t, "pid "+w+":99", 1, "No such process "+w+":99")
	d.ctl("modules").want(t, "modules", 0, "fib.wasm", "fib_r(i32) i32")
	d.ctl("tail", w).want(t, "tail", 0)
	d.ctl("tail", w1).want(t, "tail "+w1, 0)
	d.ctl("tail", "-5", "benchd", "stderr").want(t, "tail -5 benchd stderr", 0)
	if r := d.ctl("tail", w, "stdout"); r.code != 1 || !strings.Contains(r.stderr, "stdout is /dev/null") {
		t.Errorf("tail stdout: got %s\nwant exit 1 explaining that stdout is /dev/null", r)
	}
	d.ctl("tail", "nope").want(t, "tail nope", 1, "nope: ERROR (no such process)")
	d.ctl("maintail").want(t, "maintail", 0)
	d.ctl("maintail", "-500").want(t, "maintail -500", 0, "msg=starting")
	if r := d.ctl("maintail", "-3"); r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("maintail -3: got %s\nwant 3 lines", r)
	}
	d.ctl("status", "nope").want(t, "status nope", 4, "nope: ERROR (no such process)")
	d.ctl("frobnicate").want(t, "unknown command", 2)
	d.ctl("stop").want(t, "stop without a name", 2)
	d.ctl("tail", "-x", w).want(t, "tail -x", 2)

	// stop of a CPU stops every lane: STOPPED after a clean exit (no call
	// was running); status says 3.
	d.ctl("stop", w).want(t, "stop", 0, each("%s: stopped\n")...)
	st = d.ctl("status")
	st.want(t, "status after stop", 3)
	for _, l := range lanes {
		if got := statusOf(st.stdout)[l]; got[0] != "STOPPED" || !strings.HasPrefix(got[1], "exit status 0, ") {
			t.Errorf("status %s after stop: got %q, want STOPPED after exit status 0", l, got)
		}
	}
	d.ctl("status", w).want(t, "status "+w+" after stop", 3)
	d.ctl("status", w0).want(t, "status "+w0+" after stop", 3)
	d.ctl("status", "benchd").want(t, "status benchd", 0)
	for l, pid := range pids {
		if syscall.Kill(int(pid), 0) == nil {
			t.Errorf("%s (pid %v) still exists after stop", l, pid)
		}
	}
	if r := d.ctl("pid", w); r.code != 0 || r.stdout != strings.Repeat("0\n", len(lanes)) {
		t.Errorf("pid of a stopped worker: got %s\nwant 0 for each of its %d lanes", r, len(lanes))
	}
	d.ctl("stop", w).want(t, "stop again", 0, each("%s: ERROR (not running)")...)
	if cores == 1 {
		if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"]}`); a.code != 503 {
			t.Errorf("call with the only worker stopped: got %d %s, want 503", a.code, a.raw)
		}
	}

	// start brings every lane back, in admission.
	d.ctl("start", w).want(t, "start", 0, each("%s: started\n")...)
	d.ctl("status").want(t, "status after start", 0)
	d.ctl("start", w).want(t, "start again", 0, each("%s: ERROR (already started)")...)
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"],"expected_deadline":"5000"}`); a.code != 200 {
		t.Errorf("call after start: got %d %s", a.code, a.raw)
	}

	// One lane stopped: the core stays in admission on the others.
	d.ctl("stop", w1).want(t, "stop "+w1, 0, w1+": stopped\n")
	if r := d.ctl("status", w); r.code != 3 || statusOf(r.stdout)[w1][0] != "STOPPED" || statusOf(r.stdout)[w0][0] != "RUNNING" {
		t.Errorf("status %s with %s stopped: got %s\nwant exit 3, %s STOPPED, %s RUNNING", w, w1, r, w1, w0)
	}
	if q := d.status().core(cpu); q == nil || !q.Available || q.Lanes != len(lanes)-1 {
		t.Errorf("core of %s with %s stopped: got %+v, want available with %d lanes", w, w1, q, len(lanes)-1)
	}
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"],"expected_deadline":"5000"}`); a.code != 200 || a.str("worker") == w1 {
		t.Errorf("call with %s stopped: got %d %s, want 200 from another lane", w1, a.code, a.raw)
	}
	d.ctl("start", w1).want(t, "start "+w1, 0, w1+": started\n")

	// restart: a new process for every lane.
	pids = d.lanePids(w)
	d.ctl("restart", w).want(t, "restart", 0, each("%s: stopped\n%[1]s: started\n")...)
	now := d.lanePids(w)
	for l, pid := range pids {
		if now[l] == 0 || now[l] == pid {
			t.Errorf("pid of %s after restart: got %v, was %v", l, now[l], pid)
		}
	}
	d.ctl("restart", "benchd").want(t, "restart benchd", 0, "benchd: started")
	if a := d.post("/test", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["15"]}`); a.code != 200 {
		t.Errorf("test after restarting benchd: got %d %s", a.code, a.raw)
	}
	d.ctl("restart", "all").want(t, "restart all", 0, append(each("%s: started"), "benchd: started")...)
	d.ctl("status").want(t, "status after restart all", 0)

	// The prompt.
	r := ctlCmd(t, func(c *exec.Cmd) { c.Stdin = strings.NewReader("pid\nstatus " + w0 + "\nbogus\nquit\n") }, "-s", d.sock())
	r.want(t, "interactive", 2, "hyper-sched> ", strconv.Itoa(d.cmd.Process.Pid)+"\nhyper-sched> "+w0+" ")
	if !strings.Contains(r.stderr, `unknown command "bogus"`) {
		t.Errorf("interactive: got %s\nwant the unknown command reported", r)
	}
}

func sortedKeys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pidLines is what pid prints for the processes of pids, in any order.
func pidLines(pids map[string]float64) []string {
	var out []string
	for _, p := range pids {
		out = append(out, strconv.Itoa(int(p)))
	}
	return out
}

// sameLines reports whether out's lines are want's, in any order.
func sameLines(out string, want []string) bool {
	got := strings.Fields(out)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// TestCtlStopLaneLosesItsCall stops the lane running a long call: a stop
// does not wait for the call (it could run until its cap); the call is
// answered Error_Worker_lost and the lane killed, while the core goes on
// serving on its other lanes. start brings the lane back.
func TestCtlStopLaneLosesItsCall(t *testing.T) {
	d := start(t, t.TempDir(), "--best-effort-cap", "60s")
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	// Far longer than the test: it only ends by the stop.
	long := d.goPost(`{"wasm_name":"loop.wasm","task_unique_name":"long","export_func":"forever"}`)
	d.waitStarted("long")
	id := d.timeline("long").ID
	w := ""
	for _, p := range d.status().Procs {
		if p.Task == id && p.LaneState == "running" {
			w = p.Name
		}
	}
	if _, _, ok := laneOf(w); !ok {
		t.Fatalf("no lane runs task %d: %+v", id, d.status())
	}
	pid := d.procs()[w]
	d.ctl("stop", w).want(t, "stop "+w, 0, w+": stopped\n")
	select {
	case a := <-long:
		if a.code != http.StatusServiceUnavailable || a.str("status") != "Error_Worker_lost" || !strings.Contains(a.str("error"), "hyper-schedctl") {
			t.Errorf("the call on the stopped lane: got %d %s, want 503 Error_Worker_lost naming the stop", a.code, a.raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the call on %s still unanswered 10s after its lane stopped", w)
	}
	if syscall.Kill(int(pid), 0) == nil {
		t.Errorf("%s (pid %v) still exists after stop", w, pid)
	}
	st := d.ctl("status", w)
	if got := statusOf(st.stdout)[w]; st.code != 3 || got[0] != "STOPPED" {
		t.Errorf("status after stop: got %s\nwant exit 3, %s STOPPED", st, w)
	}
	// The other lanes serve meanwhile.
	if a := d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["1000"],"expected_deadline":"5000"}`); a.code != 200 || a.str("worker") == w {
		t.Errorf("a call with %s stopped: got %d %s, want 200 from another lane", w, a.code, a.raw)
	}
	d.ctl("start", w).want(t, "start", 0, w+": started")
	if now := d.procs()[w]; now == 0 || now == pid {
		t.Errorf("pid of %s after start: got %v, was %v", w, now, pid)
	}
}

func TestCtlUnreachable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "none", "control.sock")
	r := ctlCmd(t, nil, "-s", "unix://"+path, "status")
	if want := "unix://" + path + ": connect: no such file or directory (is hyper-sched running? the path came from -s)"; r.code != 4 || !strings.Contains(r.stderr, want) {
		t.Errorf("got %s\nwant exit 4 with %q", r, want)
	}
	r = ctlCmd(t, func(c *exec.Cmd) { c.Env = append(c.Env, "HYPER_SCHED_SOCKET=unix://"+path) }, "pid")
	if r.code != 4 || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "HYPER_SCHED_SOCKET") {
		t.Errorf("from the environment: got %s\nwant exit 4 naming the path and HYPER_SCHED_SOCKET", r)
	}
	// A socket nobody serves: a daemon that died without removing it.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	r = ctlCmd(t, nil, "-s", "unix://"+stale, "stop", "all")
	if r.code != 4 || !strings.Contains(r.stderr, stale+": connect: connection refused") {
		t.Errorf("stale socket: got %s\nwant exit 4, connection refused", r)
	}
	if r := ctlCmd(t, nil, "-s", "http://127.0.0.1:9001", "status"); r.code != 2 {
		t.Errorf("-s http://: got %s\nwant exit 2", r)
	}
	// The default path, when nothing runs there.
	if _, err := os.Stat("/run/hyper-sched/control.sock"); os.IsNotExist(err) {
		r := ctlCmd(t, nil, "status")
		want := "unix:///run/hyper-sched/control.sock: connect: no such file or directory (is hyper-sched running? set -s or HYPER_SCHED_SOCKET)"
		if r.code != 4 || !strings.Contains(r.stderr, want) {
			t.Errorf("default socket: got %s\nwant exit 4 with %q", r, want)
		}
	}
}

// asNobody runs hyper-schedctl as nobody, which needs root (CAP_SETUID).
func asNobody(t *testing.T) func(*exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running hyper-schedctl as another user needs root (CAP_SETUID, CAP_SETGID)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	}
}

// openPath makes dir and its parents up to the temp dir searchable, so
// that nobody can reach the socket inside.
func openPath(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCtlPeerRefused(t *testing.T) {
	nobody := asNobody(t)
	dir := t.TempDir()
	d := start(t, dir)
	openPath(t, filepath.Join(dir, "run"))
	sock := filepath.Join(dir, "run", "control.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: got %v %v, want mode 0600", fi.Mode(), err)
	}
	// The kernel refuses first: the socket is 0600.
	r := ctlCmd(t, nobody, "-s", d.sock(), "status")
	if r.code != 4 || !strings.Contains(r.stderr, sock+": connect: permission denied") {
		t.Errorf("nobody on a 0600 socket: got %s\nwant exit 4, permission denied", r)
	}
	// With the mode loosened by hand, the daemon refuses (SO_PEERCRED).
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	r = ctlCmd(t, nobody, "-s", d.sock(), "stop", "all")
	if want := "refused by hyper-sched: permission denied: uid 65534 may not use the control socket"; r.code != 4 || !strings.Contains(r.stderr, want) {
		t.Errorf("nobody on a 0666 socket: got %s\nwant exit 4 with %q", r, want)
	}
	if !strings.Contains(d.logs(), "refused a peer") {
		t.Errorf("the daemon did not log the refusal; log:\n%s", d.logs())
	}
	d.ctl("status").want(t, "status as root after the refusal", 0)
}

func TestCtlControlGroup(t *testing.T) {
	nobody := asNobody(t)
	g, err := user.LookupGroupId("65534")
	if err != nil {
		t.Skipf("no group 65534: %v", err)
	}
	dir := t.TempDir()
	d := start(t, dir, "--control-group", g.Name)
	openPath(t, filepath.Join(dir, "run"))
	sock := filepath.Join(dir, "run", "control.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("control socket: got %v %v, want mode 0660 group 65534", fi.Mode(), err)
	}
	r := ctlCmd(t, nobody, "-s", d.sock(), "status")
	r.want(t, "status by a member of the control group", 0, "benchd")
}

// TestCtlKillDuringLoad kills workers and benchd, found with hyper-schedctl
// pid, while clients call and calibrate: every call gets exactly one
// answer, of an allowed kind, and hyper-schedctl status sees everything
// RUNNING again.
func TestCtlKillDuringLoad(t *testing.T) {
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	if a := d.post("/test", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"]}`); a.code != 200 {
		t.Fatalf("test: %d %s", a.code, a.raw)
	}
	var workers []string
	for name := range d.procs() {
		if strings.HasPrefix(name, "worker-") {
			workers = append(workers, name)
		}
	}
	run := 4 * time.Second
	if testing.Short() {
		run = 1500 * time.Millisecond
	}
	stop := time.Now().Add(run)
	var mu sync.Mutex
	byStatus, examples := map[string]int{}, map[string]string{}
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			for time.Now().Before(stop) {
				path, body := "/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"300"}`
				switch rng.Intn(4) {
				case 0:
					body = `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["18"]}`
				case 1:
					path, body = "/test", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["`+strconv.Itoa(10+rng.Intn(8))+`"]}`
				}
				a := d.post(path, body)
				k := fmt.Sprintf("%s %d %s", path, a.code, a.str("status"))
				mu.Lock()
				if byStatus[k] == 0 {
					examples[k] = a.raw
				}
				byStatus[k]++
				mu.Unlock()
			}
		}()
	}
	kills := map[string]int{}
	for i := 0; time.Now().Before(stop); i++ {
		time.Sleep(time.Duration(150+rand.Intn(150)) * time.Millisecond)
		name := "benchd"
		if i%3 != 0 {
			name = workers[rand.Intn(len(workers))]
		}
		r := d.ctl("pid", name)
		pid, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil {
			t.Fatalf("pid %s: %s", name, r)
		}
		if pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
			kills[name]++
		}
	}
	wg.Wait()
	allowed := regexp.MustCompile(`^(/call (200 Success|503 Error_Worker_lost|503 Error_Unschedulable|504 Error_Deadline_exceeded|422 Error_Invalid_deadline)|` +
		`/test (200 Success|503 Error_Worker_lost|504 Error_Deadline_exceeded))$`)
	for k, n := range byStatus {
		if !allowed.MatchString(k) {
			t.Errorf("%d answers %q, which is not an outcome of a killed child, e.g. %s", n, k, examples[k])
		}
	}
	t.Logf("answers %v; kills %v", byStatus, kills)
	st := d.get("/status")
	if inFlight := st.body["in_flight"].(float64); inFlight != 0 {
		t.Errorf("in flight after every client returned: got %v, want 0", inFlight)
	}
	counters := st.body["counters"].(map[string]any)
	if counters["admitted"] != counters["answered"] {
		t.Errorf("admitted %v, answered %v: want equal", counters["admitted"], counters["answered"])
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := d.ctl("status")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after the kills: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCtlShutdown: shutdown over the socket answers the call in flight,
// returns once the daemon is done, and the socket is gone.
func TestCtlShutdown(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir, "--best-effort-cap", "20s")
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	call := make(chan answer, 1)
	go func() {
		call <- d.post("/call", `{"wasm_name":"loop.wasm","export_func":"spin","params":["500000000"]}`)
	}()
	time.Sleep(100 * time.Millisecond)
	d.ctl("shutdown").want(t, "shutdown", 0, "Shut down")
	if a := <-call; a.code != 200 && a.str("status") != "Error_Shutting_down" {
		t.Errorf("call in flight: got %d %s, want 200 or Error_Shutting_down", a.code, a.raw)
	}
	select {
	case <-d.done:
		if d.waitErr != nil {
			t.Errorf("hyper-sched after shutdown: %v; log:\n%s", d.waitErr, d.logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hyper-sched still running 30s after shutdown; log:\n%s", d.logs())
	}
	if strings.Contains(d.logs(), "WARNING: DATA RACE") {
		t.Errorf("the daemon reported a data race; log:\n%s", d.logs())
	}
	if _, err := os.Lstat(filepath.Join(dir, "run", "control.sock")); !os.IsNotExist(err) {
		t.Errorf("control socket after shutdown: %v, want removed", err)
	}
	d.ctl("status").want(t, "status after shutdown", 4)
}

// TestCtlSecondSignal: a second SIGTERM ends a shutdown that waits for a
// long call.
func TestCtlSecondSignal(t *testing.T) {
	d := start(t, t.TempDir(), "--best-effort-cap", "60s")
	if a := d.register(map[string]string{"loop.wasm": "loop.wasm"},
		map[string]string{"export_func": "spin", "params": "1000"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, d.url+"/call", strings.NewReader(`{"wasm_name":"loop.wasm","export_func":"forever"}`))
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		t.Fatalf("exited on the first SIGTERM (%v) with a call running; log:\n%s", d.waitErr, d.logs())
	case <-time.After(time.Second):
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		var ee *exec.ExitError
		if !errors.As(d.waitErr, &ee) || ee.ExitCode() != 1 {
			t.Errorf("after the second SIGTERM: got %v, want exit status 1", d.waitErr)
		}
		d.stopOnce.Do(func() {}) // it exited with 1 on purpose
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		t.Fatalf("still running 10s after the second SIGTERM; log:\n%s", d.logs())
	}
	if !strings.Contains(d.logs(), "second signal") {
		t.Errorf("log does not explain the forced exit:\n%s", d.logs())
	}
}

// addByHand writes a module into the state dir as an operator restoring a
// backup would: fib.wasm's meta.json under another name, and wasm bytes.
func addByHand(t *testing.T, dir, name string, wasm []byte) {
	t.Helper()
	meta, err := os.ReadFile(filepath.Join(dir, "state", "modules", "fib.wasm", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(meta, &m)
	m["name"] = name
	sum := sha256sum(wasm)
	m["sha256"] = sum
	m["size"] = len(wasm)
	delete(m, "calibrations")
	meta, _ = json.Marshal(m)
	d := filepath.Join(dir, "state", "modules", name)
	os.MkdirAll(d, 0o750)
	if err := os.WriteFile(filepath.Join(d, "module.wasm"), wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "meta.json"), meta, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCtlReloadAndTailFollow: SIGHUP loads modules added by hand, without
// a restart; a module the workers cannot compile shows up in tail -f of a
// worker's stderr.
func TestCtlReloadAndTailFollow(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir)
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	w := d.firstWorker()
	pids := d.lanePids(w)

	follow := exec.Command(ctlBinary(t), "-s", d.sock(), "tail", "-f", w)
	follow.Env = []string{"GORACE=atexit_sleep_ms=0"}
	out, _ := follow.StdoutPipe()
	follow.Stderr = io.Discard
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(200 * time.Millisecond)

	fib, _ := os.ReadFile("../testdata/fib.wasm")
	addByHand(t, dir, "fib2.wasm", fib)
	addByHand(t, dir, "broken.wasm", []byte("\x00asm\x01\x00\x00\x00\x01\xff"))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("tail -f ended early")
			}
			found = strings.Contains(l, "broken.wasm")
		case <-deadline:
			t.Fatalf("tail -f %s did not show the compile error of broken.wasm; log:\n%s", w, d.logs())
		}
	}
	follow.Process.Signal(os.Interrupt)
	if err := follow.Wait(); err != nil {
		t.Errorf("tail -f after Ctrl-C: got %v, want exit 0", err)
	}
	// SIGHUP reloads in the background: fib2.wasm is served once every
	// lane has it; broken.wasm, which no lane can compile, is not.
	var mods ctlRun
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		if mods = d.ctl("modules"); strings.Contains(mods.stdout, "fib2.wasm") {
			break
		}
	}
	mods.want(t, "modules after SIGHUP", 0, "fib2.wasm")
	if strings.Contains(mods.stdout, "broken.wasm") {
		t.Errorf("a module no lane could load is served after SIGHUP:\n%s", mods.stdout)
	}
	if !strings.Contains(d.logs(), "reload module broken.wasm") {
		t.Errorf("the daemon's log does not say why broken.wasm was not reloaded:\n%s", d.logs())
	}
	if a := d.post("/call", `{"wasm_name":"fib2.wasm","export_func":"fib_r","params":["20"],"expected_deadline":"5000"}`); a.str("result") != "[I32(6765)]" {
		t.Errorf("call of a reloaded module: got %d %s", a.code, a.raw)
	}
	if now := d.lanePids(w); len(now) == 0 || !maps.Equal(now, pids) {
		t.Errorf("%s restarted by SIGHUP: lanes %v → %v", w, pids, now)
	}
	d.ctl("maintail", "-50").want(t, "maintail after SIGHUP", 0, "reloaded module", "fib2.wasm")
}

func sha256sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// withCustomSection returns wasm with a custom section named name
// appended: a different module (another sha256, another compilation cache
// entry) that behaves the same.
func withCustomSection(wasm []byte, name string) []byte {
	if len(name) > 100 {
		panic("withCustomSection: name too long for a one-byte size") // test helper misuse
	}
	out := append([]byte(nil), wasm...)
	out = append(append(out, 0, byte(1+len(name)+1), byte(len(name))), name...)
	return append(out, 1) // a payload byte: wazero refuses an empty one
}

// TestCtlFigures measures what docs/bench-ctl.md reports: how long a
// worker takes from kill -9 to RUNNING and back in admission, with 1 and
// with 100 modules loaded, and hyper-schedctl restart. It only runs with
// HYPER_SCHED_FIGURES=1, without -race:
//
//	HYPER_SCHED_FIGURES=1 go test -count=1 -run TestCtlFigures -v ./integration/
func TestCtlFigures(t *testing.T) {
	if os.Getenv("HYPER_SCHED_FIGURES") == "" {
		t.Skip("set HYPER_SCHED_FIGURES=1 to measure (numbers, not assertions)")
	}
	if race.Enabled {
		t.Skip("figures are measured without -race")
	}
	fib, err := os.ReadFile("../testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		t.Run(fmt.Sprintf("%d modules", n), func(t *testing.T) {
			d := start(t, t.TempDir())
			for i := range n {
				name := fmt.Sprintf("fib%03d.wasm", i)
				if a := d.registerBytes(name, withCustomSection(fib, name)); a.code != 200 {
					t.Fatalf("register %s: %d %s", name, a.code, a.raw)
				}
			}
			w := d.firstWorker() + ":0" // one lane
			const runs = 20
			var kill, restart []time.Duration
			for range runs {
				pid := d.procs()[w]
				t0 := time.Now()
				syscall.Kill(int(pid), syscall.SIGKILL)
				d.waitAdmitting(w, pid)
				kill = append(kill, time.Since(t0))

				pid = d.procs()[w]
				t0 = time.Now()
				d.ctl("restart", w).want(t, "restart", 0, "started")
				restart = append(restart, time.Since(t0))
				d.waitAdmitting(w, pid)
			}
			t.Logf("%d modules: kill -9 → RUNNING and admitting: %s", n, summary(kill))
			t.Logf("%d modules: hyper-schedctl restart %s (stop + start, wall): %s", n, w, summary(restart))
		})
	}
}

// registerBytes registers wasm under name.
func (d *daemon) registerBytes(name string, wasm []byte) answer {
	d.t.Helper()
	var buf bytes.Buffer
	body := "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + name + "\"\r\n" +
		"Content-Type: application/wasm\r\n\r\n"
	buf.WriteString(body)
	buf.Write(wasm)
	buf.WriteString("\r\n--b--\r\n")
	req, _ := http.NewRequest(http.MethodPost, d.url+"/register", &buf)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	return d.do(req)
}

// waitAdmitting polls /status until worker w runs with a pid other than
// old and its core is in admission.
func (d *daemon) waitAdmitting(w string, old float64) {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(d.url + "/status")
		if err != nil {
			continue
		}
		var st struct {
			Procs []struct {
				Name  string  `json:"name"`
				State string  `json:"state"`
				Pid   float64 `json:"pid"`
				Queue *struct {
					Available bool `json:"available"`
				} `json:"queue"`
			} `json:"processes"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		for _, p := range st.Procs {
			if p.Name == w && p.State == "RUNNING" && p.Pid != old && p.Queue != nil && p.Queue.Available {
				return
			}
		}
	}
	d.t.Fatalf("%s not back in admission after 60s; log:\n%s", w, d.logs())
}

func summary(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("n=%d min %s, median %s, p90 %s, max %s", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)*9/10]), r(s[len(s)-1]))
}
