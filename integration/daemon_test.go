package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/internal/race"
	"github.com/hyper-sched/hyper-sched/internal/syncbuf"
)

var binary string // the hyper-sched binary built by TestMain

// raceFlags builds the daemon with the race detector when the tests run
// with it, so that `go test -race` also checks the supervisor's goroutines.
var raceFlags = func() []string {
	if race.Enabled {
		return []string{"-race"}
	}
	return nil
}()

// client bounds every request: an answer that never comes fails the test
// with the daemon's state instead of hanging it.
var client = &http.Client{Timeout: 30 * time.Second}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hyper-sched-it")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hyper-sched")
	args := append(append([]string{"build"}, raceFlags...), "-o", binary, "../cmd/hyper-sched")
	build := exec.Command("go", args...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hyper-sched:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running hyper-sched. Its stderr is kept; a data race the
// race-enabled binary reports there fails the test.
type daemon struct {
	t        testing.TB
	cmd      *exec.Cmd
	url      string
	dir      string
	log      *syncbuf.Buffer
	flags    []string
	done     chan struct{} // closed when the process has exited
	waitErr  error         // cmd.Wait's result, once done is closed
	stopOnce sync.Once
}

// start runs hyper-sched on a free port with its state under dir, and
// waits until /healthz says every worker is up.
func start(t testing.TB, dir string, flags ...string) *daemon {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := &daemon{t: t, url: "http://" + addr, dir: dir, log: &syncbuf.Buffer{}, flags: flags}
	args := append([]string{"--listen", addr, "--state-dir", filepath.Join(dir, "state"),
		"--cache-dir", filepath.Join(dir, "cache"), "--runtime-dir", filepath.Join(dir, "run")}, flags...)
	d.cmd = exec.Command(binary, args...)
	// A race-built daemon sleeps 1 s at exit by default; not needed here.
	d.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	d.cmd.Stderr = d.log
	// A test binary killed by its timeout takes the daemon with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.waitErr = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hyper-sched not healthy after 60s; log:\n%s", d.logs())
		}
		select {
		case <-d.done:
			t.Fatalf("hyper-sched exited during start (%v); log:\n%s", d.waitErr, d.logs())
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) logs() string {
	return d.log.String()
}

// stop sends SIGTERM and waits for a clean exit; later calls do nothing.
func (d *daemon) stop() {
	d.stopOnce.Do(d.stopNow)
}

func (d *daemon) stopNow() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		err := d.waitErr
		if strings.Contains(d.logs(), "WARNING: DATA RACE") {
			d.t.Errorf("the daemon reported a data race; log:\n%s", d.logs())
		}
		if err != nil {
			d.t.Errorf("hyper-sched exited with %v; log:\n%s", err, d.logs())
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("hyper-sched did not stop within 30s of SIGTERM; log:\n%s", d.logs())
	}
}

// answer is a decoded JSON answer with its HTTP status.
type answer struct {
	code int
	body map[string]any
	raw  string
}

func (a answer) str(key string) string {
	s, _ := a.body[key].(string)
	return s
}

func (d *daemon) do(req *http.Request) answer {
	d.t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		st, _ := http.Get(d.url + "/status")
		var status []byte
		if st != nil {
			status, _ = io.ReadAll(st.Body)
			st.Body.Close()
		}
		d.t.Fatalf("%s %s: %v\nstatus: %s\nlog:\n%s", req.Method, req.URL, err, status, d.logs())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		d.t.Fatalf("%s %s: answer is not JSON: %q", req.Method, req.URL, raw)
	}
	if _, ok := a.body["status"].(string); !ok {
		d.t.Fatalf("%s %s: answer has no status field: %s", req.Method, req.URL, raw)
	}
	return a
}

func (d *daemon) get(path string) answer {
	req, _ := http.NewRequest(http.MethodGet, d.url+path, nil)
	return d.do(req)
}

func (d *daemon) post(path, body string) answer {
	req, _ := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return d.do(req)
}

// register uploads testdata files: field name → file, plus plain fields.
func (d *daemon) register(files map[string]string, fields map[string]string) answer {
	d.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, file := range files {
		data, err := os.ReadFile(filepath.Join("..", "testdata", file))
		if err != nil {
			d.t.Fatal(err)
		}
		fw, _ := mw.CreateFormFile(name, file)
		fw.Write(data)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, d.url+"/register", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return d.do(req)
}

// procs returns the pid of every RUNNING process in /status, by name:
// benchd and each worker lane, worker-<cpu>:<lane>.
func (d *daemon) procs() map[string]float64 {
	st := d.get("/status")
	out := map[string]float64{}
	procs, _ := st.body["processes"].([]any)
	for _, p := range procs {
		m := p.(map[string]any)
		if m["state"] == "RUNNING" {
			out[m["name"].(string)] = m["pid"].(float64)
		}
	}
	return out
}

// laneOf splits a worker lane's name, worker-<cpu>:<lane>.
func laneOf(name string) (cpu, lane int, ok bool) {
	rest, ok := strings.CutPrefix(name, "worker-")
	if !ok {
		return 0, 0, false
	}
	c, l, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, 0, false
	}
	cpu, err1 := strconv.Atoi(c)
	lane, err2 := strconv.Atoi(l)
	return cpu, lane, err1 == nil && err2 == nil
}

// workerCPUs returns the CPUs that have a RUNNING lane, in order.
func (d *daemon) workerCPUs() []int {
	var cpus []int
	for name := range d.procs() {
		if cpu, _, ok := laneOf(name); ok && !slices.Contains(cpus, cpu) {
			cpus = append(cpus, cpu)
		}
	}
	slices.Sort(cpus)
	return cpus
}

// lanePids returns the pids of the RUNNING lanes of worker-<cpu>, by lane
// name.
func (d *daemon) lanePids(group string) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range d.procs() {
		if strings.HasPrefix(name, group+":") {
			out[name] = pid
		}
	}
	return out
}

// coreQueue is one worker core's scheduling state in /status, repeated on
// each of its lanes.
type coreQueue struct {
	Available   bool   `json:"available"`
	Queued      int    `json:"queued"`
	Running     uint64 `json:"running_task"`
	Stopped     int    `json:"stopped"`
	Lanes       int    `json:"lanes"`
	Preemptions uint64 `json:"preemptions"`
	Rotations   uint64 `json:"quantum_rotations"`
}

// statusDoc is the part of GET /status the tests read.
type statusDoc struct {
	Procs []struct {
		Name      string     `json:"name"`
		State     string     `json:"state"`
		Pid       int        `json:"pid"`
		CPU       int        `json:"cpu"`
		Lane      int        `json:"lane"`
		LaneState string     `json:"lane_state"`
		Task      uint64     `json:"task"`
		Queue     *coreQueue `json:"queue"`
	} `json:"processes"`
	InFlight int `json:"in_flight"`
	// Dispatch has the dispatcher's counters (json matches the names
	// case-insensitively: Kills or kills).
	Dispatch struct {
		Admitted    uint64 `json:"admitted"`
		Preemptions uint64 `json:"preemptions"`
		Resumes     uint64 `json:"resumes"`
		Rotations   uint64 `json:"rotations"`
		Kills       uint64 `json:"kills"`
		Expired     uint64 `json:"expired"`
		Lost        uint64 `json:"lost"`
		LanesLost   uint64 `json:"laneslost"`
	} `json:"dispatch"`
	Lanes              int     `json:"lanes_per_cpu"`
	RestartCostMs      float64 `json:"restart_cost_ms"`
	PreemptCostMs      float64 `json:"preempt_cost_ms"`
	DispatchOverheadUs float64 `json:"dispatch_overhead_us"`
	WakeCostUs         float64 `json:"wake_cost_us"`
	TailCostUs         float64 `json:"tail_cost_us"`
	OverheadSource     string  `json:"dispatch_overhead_source"`
}

func (d *daemon) status() statusDoc {
	d.t.Helper()
	a := d.get("/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		d.t.Fatalf("status: %v in %s", err, a.raw)
	}
	return st
}

// core returns the queue of the worker core on cpu, nil if none.
func (st statusDoc) core(cpu int) *coreQueue {
	for _, p := range st.Procs {
		if c, _, ok := laneOf(p.Name); ok && c == cpu && p.Queue != nil {
			return p.Queue
		}
	}
	return nil
}

// waitHealthy waits until /healthz answers 200.
func (d *daemon) waitHealthy() {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for d.get("/healthz").code != http.StatusOK {
		if time.Now().After(deadline) {
			d.t.Fatalf("not healthy again after 30s; log:\n%s", d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRestarted waits until every worker in before runs with a new pid.
func (d *daemon) waitRestarted(before map[string]float64) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := d.procs()
		done := true
		for name, pid := range before {
			if strings.HasPrefix(name, "worker-") && (now[name] == 0 || now[name] == pid) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("workers not restarted after 30s; log:\n%s", d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
