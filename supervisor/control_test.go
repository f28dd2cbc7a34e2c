package supervisor

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

func TestPeerAllowed(t *testing.T) {
	tests := []struct {
		name    string
		peer    peerCred
		self    uint32
		gid     int
		wantErr string // "" = allowed
	}{
		{"root", peerCred{uid: 0}, 1000, -1, ""},
		{"the daemon's user", peerCred{uid: 1000, gid: 1000}, 1000, -1, ""},
		{"another user", peerCred{uid: 65534, gid: 65534}, 0, -1,
			"permission denied: uid 65534 may not use the control socket; only root may (start hyper-sched with --control-group to admit a group)"},
		{"another user, daemon not root", peerCred{uid: 65534}, 1000, -1,
			"only root and the daemon's user (uid 1000) may"},
		{"primary group", peerCred{uid: 1001, gid: 50}, 0, 50, ""},
		{"supplementary group", peerCred{uid: 1001, gid: 1001, groups: []uint32{27, 50}}, 0, 50, ""},
		{"not in the group", peerCred{uid: 1001, gid: 1001, groups: []uint32{27}}, 0, 50,
			"permission denied: uid 1001 may not use the control socket; root and members of the control group (gid 50) may"},
		{"group 0 is a group too", peerCred{uid: 1001, gid: 0}, 0, 0, ""},
		{"no group: gid 0 is not enough", peerCred{uid: 1001, gid: 0}, 0, -1, "uid 1001 may not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := peerAllowed(tt.peer, tt.self, tt.gid)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want allowed", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseGroups(t *testing.T) {
	status := "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t256\nGroups:\t4 27 1000 \nNStgid:\t1\n"
	if got := parseGroups(status); len(got) != 3 || got[0] != 4 || got[1] != 27 || got[2] != 1000 {
		t.Errorf("got %v, want [4 27 1000]", got)
	}
	if got := parseGroups("Groups:\t\n"); len(got) != 0 {
		t.Errorf("no groups: got %v", got)
	}
	if got := parseGroups("Name:\tx\n"); got != nil {
		t.Errorf("no Groups line: got %v", got)
	}
	if want, _ := os.Getgroups(); len(want) > 0 && len(procGroups(int32(os.Getpid()))) != len(want) {
		t.Errorf("own groups: got %v, want %v", procGroups(int32(os.Getpid())), want)
	}
}

func TestLookupGroup(t *testing.T) {
	if g, err := lookupGroup(""); g != -1 || err != nil {
		t.Errorf(`"": got %d %v, want -1`, g, err)
	}
	if g, err := lookupGroup("4242"); g != 4242 || err != nil {
		t.Errorf(`"4242": got %d %v, want 4242`, g, err)
	}
	if g, err := lookupGroup("root"); g != 0 || err != nil {
		t.Errorf(`"root": got %d %v, want 0`, g, err)
	}
	if _, err := lookupGroup("no-such-group-hyper-sched"); err == nil || !strings.Contains(err.Error(), `control group "no-such-group-hyper-sched"`) {
		t.Errorf("unknown group: got %v", err)
	}
}

func TestLogRing(t *testing.T) {
	var lr LogRing
	var out bytes.Buffer
	log := slog.New(lr.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log.Debug("hidden")
	log.Info("starting", "workers", "1-3")
	log.With("proc", "worker-1").WithGroup("g").Warn("exited", "why", "multi\nline")
	got := lr.Last(10)
	if len(got) != 2 {
		t.Fatalf("got %d lines %q, want 2 (debug is below the level)", len(got), got)
	}
	if !strings.Contains(got[0], "msg=starting workers=1-3") {
		t.Errorf("line 1: got %q", got[0])
	}
	if !strings.Contains(got[1], `proc=worker-1 g.why="multi\nline"`) || strings.Contains(got[1], "\n") {
		t.Errorf("line 2: got %q, want the attrs and the newline escaped", got[1])
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("the wrapped handler wrote %d lines, want 2:\n%s", n, out.String())
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	if err := removeStale(filepath.Join(dir, "none.sock")); err != nil {
		t.Errorf("missing: got %v, want nil", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := removeStale(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: got %v, want not a socket", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if err := removeStale(stale); err != nil {
		t.Errorf("stale: got %v, want removed", err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket still there: %v", err)
	}
	live := filepath.Join(dir, "live.sock")
	ln2, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if err := removeStale(live); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Errorf("live: got %v, want served by another process", err)
	}
}

// testSupervisor is a Supervisor with one worker (core 0) and benchd, none
// of them started, and a module store in a temporary state dir.
func testSupervisor(t testing.TB) *Supervisor {
	t.Helper()
	dir := t.TempDir()
	cfg, err := Config{StateDir: dir, CacheDir: dir, RuntimeDir: dir, LogRing: &LogRing{}, Version: "v-test"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = slog.New(cfg.LogRing.Handler(slog.NewTextHandler(io.Discard, nil)))
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg.Lanes = 1
	disp, err := dispatch.New(dispatch.Config{Cores: 1, Sched: sched.Config{Lanes: 1}})
	if err != nil {
		t.Fatal(err)
	}
	est, err := sched.NewEstimator(sched.EstimatorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Log, epoch: time.Now(), store: st, disp: disp, est: est,
		tasks: map[uint64]*task{}, names: map[string]*task{}, wake: make(chan struct{})}
	s.recent.init(16)
	s.choice.Workers = []int{1}
	s.workers = []*child{{name: "worker-1:0", group: "worker-1", role: RoleWorker, cpu: 1, cpus: []int{1}, core: 0, log: cfg.Log, wanted: true}}
	s.benchd = &child{name: "benchd", group: "benchd", role: RoleBenchd, cpu: -1, cpus: []int{0}, core: -1, log: cfg.Log, wanted: true}
	s.met = newMetrics(s)
	return s
}

// ask runs one control command against cs and returns its responses.
func ask(t *testing.T, path string, req ipc.Request, n int) []*ipc.Response {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := ipc.NewConn(nc, ipc.ControlMaxFrame)
	c.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "ctl"})
	c.Write(ipc.KindRequest, &req)
	if h, err := ipc.ReadHello(c); err != nil || h.Pid != os.Getpid() {
		t.Fatalf("hello: got %+v %v", h, err)
	}
	var out []*ipc.Response
	for range n {
		k, err := c.Read()
		if err != nil || k != ipc.KindResponse {
			t.Fatalf("%s: read response %d: kind %v, %v", req.Verb, len(out)+1, k, err)
		}
		var r ipc.Response
		if err := c.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, &r)
	}
	return out
}

func TestControlServer(t *testing.T) {
	s := testSupervisor(t)
	stopped := make(chan struct{})
	cs, err := s.listenControl(func() { close(stopped) })
	if err != nil {
		t.Fatal(err)
	}
	go cs.serve()
	defer cs.close()
	fi, err := os.Stat(cs.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: got %v %v, want mode 0600", fi.Mode(), err)
	}

	r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbStatus}, 1)[0]
	if len(r.Procs) != 2 || r.Procs[0].Name != "benchd" || r.Procs[1].Name != "worker-1:0" || !r.Procs[1].Worker || r.Procs[0].Worker {
		t.Errorf("status: got %+v", r.Procs)
	}
	if p := r.Procs[1]; p.State != "STOPPED" || p.Spawned || p.CPU != 1 {
		t.Errorf("status worker-1: got %+v, want STOPPED, never spawned, cpu 1", p)
	}
	r = ask(t, cs.path, ipc.Request{Verb: ipc.VerbStatus, Names: []string{"worker-1", "worker-9", "worker-1"}}, 1)[0]
	if len(r.Procs) != 1 || len(r.Results) != 1 || r.Results[0].Name != "worker-9" || r.Results[0].Fault != ipc.FaultBadName {
		t.Errorf("status worker-1 worker-9: got %+v %+v", r.Procs, r.Results)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbPid}, 1)[0]; r.Pid != os.Getpid() {
		t.Errorf("pid: got %d, want %d", r.Pid, os.Getpid())
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbVersion}, 1)[0]; r.Version != "v-test" {
		t.Errorf("version: got %q", r.Version)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: "frobnicate"}, 1)[0]; !strings.Contains(r.Err, `unknown command "frobnicate"`) {
		t.Errorf("unknown verb: got %+v", r)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbStop}, 1)[0]; !strings.Contains(r.Err, "needs a process name") {
		t.Errorf("stop without a name: got %+v", r)
	}

	// tail: the last lines, then new ones as they come.
	for i := range 30 {
		s.benchd.errs.add("line " + string(rune('a'+i%26)))
	}
	r = ask(t, cs.path, ipc.Request{Verb: ipc.VerbTail, Names: []string{"benchd"}, Lines: 3}, 1)[0]
	if strings.Join(r.Lines, ",") != "line b,line c,line d" {
		t.Errorf("tail -3 benchd: got %q", r.Lines)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbTail, Names: []string{"benchd"}}, 1)[0]; len(r.Lines) != tailDefault {
		t.Errorf("tail benchd: got %d lines, want %d", len(r.Lines), tailDefault)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbTail, Names: []string{"worker-1"}, Stream: "stdout"}, 1)[0]; !strings.Contains(r.Err, "stdout is /dev/null") {
		t.Errorf("tail stdout: got %+v", r)
	}
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbTail, Names: []string{"nope"}}, 1)[0]; len(r.Results) != 1 || r.Results[0].Fault != ipc.FaultBadName {
		t.Errorf("tail nope: got %+v", r)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.benchd.errs.add("fresh 1")
		s.benchd.errs.add("fresh 2")
	}()
	rs := ask(t, cs.path, ipc.Request{Verb: ipc.VerbTail, Names: []string{"benchd"}, Lines: 1, Follow: true}, 2)
	if got := append(rs[0].Lines, rs[1].Lines...); strings.Join(got, ",") != "line d,fresh 1,fresh 2" {
		t.Errorf("tail -f: got %q, want the last line then the two new ones", got)
	}

	// maintail reads the supervisor's own log.
	s.log.Info("hello from the supervisor")
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbMainTail, Lines: 1}, 1)[0]; len(r.Lines) != 1 || !strings.Contains(r.Lines[0], "hello from the supervisor") {
		t.Errorf("maintail: got %q", r.Lines)
	}

	// stop of a process never started; stop again: not running.
	r = ask(t, cs.path, ipc.Request{Verb: ipc.VerbStop, Names: []string{"worker-1"}}, 1)[0]
	if len(r.Results) != 1 || r.Results[0].Action != "stopped" || r.Results[0].Op != ipc.VerbStop {
		t.Errorf("stop worker-1: got %+v", r.Results)
	}
	s.mu.Lock()
	_, cores, _ := s.disp.Stats()
	wanted, avail := s.workers[0].wanted, cores[0].Available
	s.mu.Unlock()
	if wanted || avail {
		t.Errorf("after stop: wanted %v, available %v; want both false", wanted, avail)
	}
	r = ask(t, cs.path, ipc.Request{Verb: ipc.VerbStop, Names: []string{"all"}}, 1)[0]
	if len(r.Results) != 2 || r.Results[0].Action != "stopped" || r.Results[1].Fault != ipc.FaultNotRunning {
		t.Errorf("stop all: got %+v, want benchd stopped, worker-1 not running", r.Results)
	}

	// shutdown calls the shutdown function and answers.
	if r := ask(t, cs.path, ipc.Request{Verb: ipc.VerbShutdown}, 1)[0]; r.Err != "" || r.Pid != os.Getpid() {
		t.Errorf("shutdown: got %+v", r)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not call the shutdown function")
	}
}

func TestControlSocketGroup(t *testing.T) {
	s := testSupervisor(t)
	s.cfg.ControlGroup = "root"
	cs, err := s.listenControl(func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	if fi, err := os.Stat(cs.path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket with a control group: got %v %v, want mode 0660", fi.Mode(), err)
	}
	// A second daemon on the same runtime dir is refused.
	if _, err := s.listenControl(func() {}); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Errorf("second listener: got %v, want refused", err)
	}
	go cs.serve()
	cs.close()
	if _, err := os.Lstat(cs.path); !os.IsNotExist(err) {
		t.Errorf("socket after close: %v, want removed", err)
	}
}

func TestReload(t *testing.T) {
	s := laneSupervisor(t, 1)
	wasm, err := os.ReadFile("../testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	loads := autoLoad(t, s, s.workers[0], fakeLaneUp(t, s, s.workers[0]))
	// Another process (an operator's cp, a restore) puts two modules on disk.
	other, _ := openStore(s.cfg.StateDir)
	for _, name := range []string{"a.wasm", "b.wasm"} {
		m := &Module{Name: name, SHA256: Sum(wasm), Size: len(wasm), Registered: time.Now(), wasm: wasm,
			Exports: []ExportInfo{{Name: "fib", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{wasmval.I32}}}}
		if err := other.put(m); err != nil {
			t.Fatal(err)
		}
	}
	// And a broken one: meta.json that does not match module.wasm.
	bad := filepath.Join(s.cfg.StateDir, "modules", "bad.wasm")
	os.MkdirAll(bad, 0o750)
	meta, _ := json.Marshal(Module{Name: "bad.wasm", SHA256: "00"})
	os.WriteFile(filepath.Join(bad, "meta.json"), meta, 0o600)
	os.WriteFile(filepath.Join(bad, "module.wasm"), wasm, 0o600)

	added, err := s.Reload()
	if strings.Join(added, ",") != "a.wasm,b.wasm" {
		t.Errorf("added: got %v, want a.wasm b.wasm", added)
	}
	if err == nil || !strings.Contains(err.Error(), "load module bad.wasm") {
		t.Errorf("err: got %v, want bad.wasm reported", err)
	}
	if _, ok := s.store.get("a.wasm"); !ok {
		t.Error("a.wasm not in the store after reload")
	}
	if n := loads(); n != 2 {
		t.Errorf("loads on the running worker: got %d, want 2", n)
	}
	if added, _ := s.Reload(); len(added) != 0 {
		t.Errorf("second reload: got %v, want nothing new", added)
	}
}

// TestStopLaneWithCall checks a worker lane's stop: its call is answered
// Error_Worker_lost at once (the lane is killed, not waited for), and the
// core leaves admission once all its lanes are stopped.
func TestStopLaneWithCall(t *testing.T) {
	s := testSupervisor(t)
	w := s.workers[0]
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skipf("no sleep(1) to stand in for a lane process: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	mine, theirs := net.Pipe()
	defer theirs.Close()
	out := newOutbox(ipc.NewConn(mine, 0), func() { mine.Close() })
	frames := make(chan ipc.Kind, 1)
	go func() { // the lane's end: it takes the job frame, then whatever comes
		k, err := ipc.NewConn(theirs, 0).Read()
		if err == nil {
			frames <- k
		}
		io.Copy(io.Discard, theirs)
	}()
	s.mu.Lock()
	w.state, w.nc, w.pid, w.gen, w.proc, w.out = Running, mine, sleeper.Process.Pid, 1, sleeper.Process, out
	w.lp = &laneProc{c: w, proc: sleeper.Process, out: out, nc: mine}
	s.disp.LaneUp(0, 0, w.lp)
	s.mu.Unlock()
	tk := &task{id: 7, name: "t7", module: &Module{Name: "m"}, export: "f"}
	dt := dispatch.NewTask(7)
	dt.Payload, dt.Deadline, dt.Estimate = tk, time.Now().Add(time.Hour), time.Millisecond
	if _, err := s.disp.Admit(dt); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-frames:
		if k != ipc.KindJob {
			t.Fatalf("the lane got a %v frame, want a job", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no job frame reached the lane")
	}

	done := make(chan struct{})
	defer close(done)
	res := make(chan ipc.ProcResult, 1)
	go func() { res <- s.stopProc(done, w) }()
	select {
	case o := <-dt.Done:
		if o.Kind != dispatch.Lost || !strings.Contains(o.Why, "stopped by hyper-schedctl") {
			t.Errorf("the call on a stopped lane: got %+v, want lost, stopped by hyper-schedctl", o)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call on a stopped lane was not answered")
	}
	select {
	case <-waited: // killed
	case <-time.After(5 * time.Second):
		t.Fatal("the lane holding a call was not killed")
	}
	_, cores, _ := s.disp.Stats()
	if cores[0].Available {
		t.Error("a core whose only lane is stopped is still in admission")
	}
	s.mu.Lock()
	s.transition(w, EvExit)
	s.mu.Unlock()
	select {
	case r := <-res:
		if r.Action != "stopped" {
			t.Errorf("got %+v, want stopped", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return after the lane exited")
	}
}
