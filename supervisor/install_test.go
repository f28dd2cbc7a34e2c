package supervisor

import (
	"context"
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// laneSupervisor is testSupervisor with lanes worker lanes on one core.
// The lanes are not up; fakeLaneUp brings one up.
func laneSupervisor(t *testing.T, lanes int) *Supervisor {
	s := testSupervisor(t)
	s.cfg.Lanes = lanes
	disp, err := dispatch.New(dispatch.Config{Cores: 1, Sched: sched.Config{Lanes: lanes}})
	if err != nil {
		t.Fatal(err)
	}
	s.disp = disp
	s.workers = nil
	for li := range lanes {
		s.workers = append(s.workers, &child{name: "worker-1:" + string(rune('0'+li)), group: "worker-1", role: RoleWorker,
			cpu: 1, cpus: []int{1}, core: 0, lane: li, log: s.log, wanted: true})
	}
	return s
}

// fakeLaneUp brings lane c up as serve does, on one end of a socketpair
// (buffered, as a lane's is: job frames are written by the dispatcher's
// caller) whose other end, returned, stands for the lane process: it reads the frames
// the supervisor sends. Its answers go to the supervisor as serveChild
// would hand them over. There is no process: policies are not touched.
func fakeLaneUp(t testing.TB, s *Supervisor, c *child) *ipc.Conn {
	sup, lane := socketPair(t)
	t.Cleanup(func() { sup.Close(); lane.Close() })
	out := newOutbox(ipc.NewConn(sup, 0), func() { sup.Close() })
	go out.run()
	t.Cleanup(out.close)
	lp := &laneProc{c: c, out: out, nc: sup}
	s.mu.Lock()
	c.lp, c.out, c.state, c.loaded = lp, out, Running, map[string]string{}
	s.mu.Unlock()
	s.disp.LaneUp(c.core, c.lane, lp)
	conn := ipc.NewConn(lane, 0)
	return conn
}

// autoLoad answers every load lane c receives on conn as loaded, and
// returns how many it answered so far.
func autoLoad(t *testing.T, s *Supervisor, c *child, conn *ipc.Conn) (loads func() int) {
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			k, err := conn.Read()
			if err != nil {
				return
			}
			if k != ipc.KindLoad {
				continue
			}
			var l ipc.Load
			if conn.Decode(&l) != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			s.loadedReply(c, &ipc.Loaded{ID: l.ID, Name: l.Name, SHA256: l.SHA256})
		}
	}()
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// fakeModules is a fake lane that answers every load as loaded and keeps
// what it holds.
type fakeModules struct {
	s       *Supervisor
	c       *child
	mu      sync.Mutex
	mods    map[string]string // name → sha256
	barrier chan struct{}
}

// barrierName is an Unload that fakeModules takes as "all read so far".
const barrierName = "\x00barrier"

// serveFakeModules brings lane c up as a fakeModules.
func serveFakeModules(t *testing.T, s *Supervisor, c *child) *fakeModules {
	f := &fakeModules{s: s, c: c, mods: map[string]string{}, barrier: make(chan struct{}, 1)}
	conn := fakeLaneUp(t, s, c)
	go func() {
		for {
			k, err := conn.Read()
			if err != nil {
				return
			}
			switch k {
			case ipc.KindLoad:
				var l ipc.Load
				if conn.Decode(&l) != nil {
					return
				}
				f.mu.Lock()
				f.mods[l.Name] = l.SHA256
				f.mu.Unlock()
				s.loadedReply(c, &ipc.Loaded{ID: l.ID, Name: l.Name, SHA256: l.SHA256})
			case ipc.KindUnload:
				var u ipc.Unload
				if conn.Decode(&u) != nil {
					return
				}
				if u.Name == barrierName {
					f.barrier <- struct{}{}
					continue
				}
				f.mu.Lock()
				delete(f.mods, u.Name)
				f.mu.Unlock()
			}
		}
	}()
	return f
}

// held returns what the lane holds once it has read every frame sent
// before the call.
func (f *fakeModules) held() map[string]string {
	f.s.mu.Lock()
	f.c.out.push(ipc.KindUnload, &ipc.Unload{Name: barrierName})
	f.s.mu.Unlock()
	<-f.barrier
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.mods)
}

// socketPair returns both ends of a Unix stream socketpair.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ends [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		ends[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return ends[0], ends[1]
}

// nextFrame reads the next frame a fake lane receives, past the Park
// frames a lane ignores once it is not spinning.
func nextFrame(t *testing.T, c *ipc.Conn, want ipc.Kind, v any) {
	t.Helper()
	k, err := c.Read()
	for err == nil && k == ipc.KindPark && want != ipc.KindPark {
		k, err = c.Read()
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if k != want {
		t.Fatalf("frame: got %v, want %v", k, want)
	}
	if err := c.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func fibModule(t testing.TB) *Module {
	wasm, err := os.ReadFile("../testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return &Module{Name: "fib.wasm", SHA256: Sum(wasm), Size: len(wasm), Registered: time.Now(), wasm: wasm,
		Exports: []ExportInfo{{Name: "fib", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{wasmval.I32}}}}
}

// An install holds the idle lane first and the busy one only once its
// job has ended; while a lane loads it takes no job, and the core stays in
// admission on its other lane. A failed load is the install's error.
func TestInstallHoldsEachLane(t *testing.T) {
	s := laneSupervisor(t, 2)
	l0 := fakeLaneUp(t, s, s.workers[0])
	l1 := fakeLaneUp(t, s, s.workers[1])

	// Lane 0 runs a job.
	job := dispatch.NewTask(1)
	job.Deadline, job.Estimate = time.Now().Add(2*time.Hour), time.Hour
	job.Payload = &task{id: 1, module: fibModule(t), export: "fib"}
	if _, err := s.disp.Admit(job); err != nil {
		t.Fatal(err)
	}
	var j ipc.Job
	nextFrame(t, l0, ipc.KindJob, &j)

	m := fibModule(t)
	type result struct {
		done func()
		err  error
	}
	res := make(chan result, 1)
	go func() {
		done, err := s.installOnWorkers(context.Background(), m)
		res <- result{done, err}
	}()
	// The idle lane is held and gets the load; the busy one is not held yet.
	var ld ipc.Load
	nextFrame(t, l1, ipc.KindLoad, &ld)
	if ld.Name != m.Name || ld.ID == 0 {
		t.Fatalf("load frame: %+v", ld)
	}
	_, cores, _ := s.disp.Stats()
	if got := cores[0].Lanes[0].State + " " + cores[0].Lanes[1].State; got != "running held" {
		t.Fatalf("lanes while lane 1 loads: %s", got)
	}
	if s.missingFor(t, m) {
		t.Log("the module is being installed: a lane starting now loads it")
	} else {
		t.Fatal("a lane starting during the install would not load the module")
	}
	s.loadedReply(s.workers[1], &ipc.Loaded{ID: ld.ID, Name: m.Name, SHA256: m.SHA256})
	waitLane(t, s, 1, "idle")
	// Released, lane 1 takes a more urgent job, preempting lane 0's.
	second := dispatch.NewTask(2)
	second.Deadline, second.Estimate = time.Now().Add(90*time.Minute), time.Millisecond
	second.Payload = &task{id: 2, module: m, export: "fib"}
	if _, err := s.disp.Admit(second); err != nil {
		t.Fatal(err)
	}
	nextFrame(t, l1, ipc.KindJob, &j)
	if j.ID != 2 {
		t.Fatalf("lane 1 ran job %d, want 2", j.ID)
	}
	s.disp.Result(0, 1, s.workers[1].lp, 2, &ipc.Result{ID: 2})
	// Lane 0's job ends: only now is it held and loaded; it fails.
	s.disp.Result(0, 0, s.workers[0].lp, 1, &ipc.Result{ID: 1})
	nextFrame(t, l0, ipc.KindLoad, &ld)
	s.loadedReply(s.workers[0], &ipc.Loaded{ID: ld.ID, Name: m.Name, Err: "out of memory"})
	r := <-res
	if r.err == nil || !strings.Contains(r.err.Error(), "worker-1:0: load fib.wasm: out of memory") {
		t.Fatalf("install: got %v, want lane 0's failure", r.err)
	}
	if s.missingFor(t, m) {
		t.Fatal("a failed install is still offered to starting lanes")
	}
	s.mu.Lock()
	got := s.workers[1].loaded[m.Name]
	s.mu.Unlock()
	if got != m.SHA256 {
		t.Errorf("lane 1's loaded set: got %q, want the module", got)
	}
	_, cores, n := s.disp.Stats()
	if got := cores[0].Lanes[0].State; got != "idle" {
		t.Errorf("lane 0 after its failed load: %s, want idle (released)", got)
	}
	if n.Holds != 2 {
		t.Errorf("holds: %d, want 2", n.Holds)
	}
}

// A lane that goes away during its load ends the install's wait for it
// without an error: its next generation loads the module as it starts.
func TestInstallLaneGone(t *testing.T) {
	s := laneSupervisor(t, 1)
	l0 := fakeLaneUp(t, s, s.workers[0])
	m := fibModule(t)
	res := make(chan error, 1)
	go func() {
		done, err := s.installOnWorkers(context.Background(), m)
		done()
		res <- err
	}()
	var ld ipc.Load
	nextFrame(t, l0, ipc.KindLoad, &ld)
	c := s.workers[0]
	s.mu.Lock()
	c.gen++
	s.mu.Unlock()
	s.exited(c, c.gen, "signal: killed", exitKilled)
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("install: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the install still waits for a lane that is gone")
	}
}

// waitLane waits until lane li of core 0 is in state.
func waitLane(t *testing.T, s *Supervisor, li int, state string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(time.Millisecond) {
		if _, cores, _ := s.disp.Stats(); cores[0].Lanes[li].State == state {
			return
		}
	}
	t.Fatalf("lane %d never %s", li, state)
}

// missingFor reports whether a lane starting now would load m.
func (s *Supervisor) missingFor(t *testing.T, m *Module) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.missing(map[string]string{}) {
		if x.Name == m.Name && x.SHA256 == m.SHA256 {
			return true
		}
	}
	return false
}
