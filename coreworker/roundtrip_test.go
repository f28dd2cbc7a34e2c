package coreworker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/isolate"
)

// TestMain lets the test binary serve as a real coreworker process, on the
// socket passed as fd 3, when roundTripChild is set.
func TestMain(m *testing.M) {
	if os.Getenv(roundTripChild) == "1" {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		os.Exit(Run(context.Background(), os.NewFile(3, "supervisor"), log))
	}
	os.Exit(m.Run())
}

const roundTripChild = "HYPER_SCHED_TEST_COREWORKER"

// lane is a real coreworker process and the supervisor's end of its
// socket, read through the runtime's poller as the supervisor reads it.
type lane struct {
	cmd  *exec.Cmd
	nc   net.Conn
	conn *ipc.Conn
}

// startLane starts a coreworker on cpu (-1: unpinned) that spins for spin
// after each job, and loads testdata/fib.wasm into it. With poll > 0 the
// supervisor's end polls for each answer for up to poll before it blocks,
// as the supervisor's pollConn does once kicked.
func startLane(tb testing.TB, cpu int, spin, poll time.Duration) *lane {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "sup"), os.NewFile(uintptr(fds[1]), "lane")
	defer theirs.Close()
	nc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roundTripChild+"=1")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	l := &lane{cmd: cmd, nc: nc, conn: ipc.NewConn(nc, 0)}
	if poll > 0 {
		l.conn = ipc.NewConn(&pollingConn{Conn: nc, spin: poll}, 0)
	}
	tb.Cleanup(func() {
		nc.Close()
		cmd.Wait()
	})
	if err := l.conn.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "supervisor", Proc: "worker-test",
		CPU: cpu, Engine: ipc.EngineConfig{CacheDir: tb.TempDir(), MemoryLimitPages: 16}, SpinNs: spin.Nanoseconds()}); err != nil {
		tb.Fatal(err)
	}
	if _, err := ipc.ReadHello(l.conn); err != nil {
		tb.Fatal(err)
	}
	l.load(tb, "fib.wasm")
	return l
}

// load loads testdata/name into the lane.
func (l *lane) load(tb testing.TB, name string) {
	tb.Helper()
	wasm, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.conn.Write(ipc.KindLoad, &ipc.Load{Name: name, Wasm: wasm}); err != nil {
		tb.Fatal(err)
	}
	var ld ipc.Loaded
	if k, err := l.conn.Read(); err != nil || k != ipc.KindLoaded {
		tb.Fatalf("load: %v %v", k, err)
	}
	if err := l.conn.Decode(&ld); err != nil || ld.Err != "" {
		tb.Fatalf("load: %v %s", err, ld.Err)
	}
}

// pollingConn polls its socket for up to spin before each read blocks.
type pollingConn struct {
	net.Conn
	spin time.Duration
}

func (c *pollingConn) Read(p []byte) (int, error) {
	rc, err := c.Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var got bool
	if rerr := rc.Read(func(fd uintptr) bool {
		n, err, got = ipc.Poll(int(fd), p, c.spin, nil)
		return true
	}); rerr != nil {
		return 0, rerr
	}
	if got {
		return n, err
	}
	return c.Conn.Read(p)
}

// call sends job and reads its result into res.
func (l *lane) call(tb testing.TB, job *ipc.Job, res *ipc.Result) {
	if err := l.conn.Write(ipc.KindJob, job); err != nil {
		tb.Fatal(err)
	}
	k, err := l.conn.Read()
	if err != nil || k != ipc.KindResult {
		tb.Fatalf("result: %v %v", k, err)
	}
	if err := l.conn.Decode(res); err != nil {
		tb.Fatal(err)
	}
	if res.ID != job.ID || res.Err != "" || res.Trap != "" {
		tb.Fatalf("result %+v for job %d", res, job.ID)
	}
}

// workerCPUs returns the CPU the supervisor's side runs on and the lane's:
// the first and the last of this process's, or -1, -1 with one CPU.
func workerCPUs() (sup, wk int) {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil || set.Count() < 2 {
		return -1, -1
	}
	var cpus []int
	for c := range 1024 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus[0], cpus[len(cpus)-1]
}

// BenchmarkRoundTrip is the IPC hop of every call: a job frame to a real
// coreworker process on another CPU and its result back, for a no-op
// export (an instantiate and an empty call included), with the lane
// blocking between jobs (nospin) or polling for the next one (spin), the
// supervisor's end blocking or polling for the answer (poll), and back to
// back or with a gap between jobs longer than the spin (gap).
// The supervisor's side is pinned to one CPU and the lane to another, as
// in the daemon. Reports the round trip's p50 and p99 and the lane's own
// instantiate + call time.
//
//	go test -run XXX -bench RoundTrip -benchtime 20000x ./coreworker/
func BenchmarkRoundTrip(b *testing.B) {
	sup, wk := workerCPUs()
	for _, bc := range []struct {
		name string
		spin time.Duration
		poll time.Duration
		gap  time.Duration
	}{
		{"nospin", 0, 0, 0},
		{"spin", 300 * time.Microsecond, 0, 0},
		{"spin+poll", 300 * time.Microsecond, 100 * time.Microsecond, 0},
		{"nospin-gap", 0, 0, time.Millisecond},
		{"spin-gap", 300 * time.Microsecond, 0, time.Millisecond},
		{"spin+poll-gap100", 300 * time.Microsecond, 100 * time.Microsecond, -100 * time.Microsecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if sup >= 0 {
				if err := isolate.SetAffinity(unix.Gettid(), []int{sup}); err != nil {
					b.Skipf("cannot pin the benchmark's thread (affinity): %v", err)
				}
			}
			l := startLane(b, wk, bc.spin, bc.poll)
			job := &ipc.Job{Module: []byte("fib.wasm"), Export: []byte("noop")}
			var res ipc.Result
			for i := range 200 { // warm up
				job.ID = uint64(i + 1)
				l.call(b, job, &res)
			}
			rtt := make([]time.Duration, 0, b.N)
			var work time.Duration
			b.ResetTimer()
			for i := range b.N {
				if bc.gap > 0 {
					time.Sleep(bc.gap)
				} else if bc.gap < 0 { // busy: a client's own work between calls
					for t := time.Now(); time.Since(t) < -bc.gap; {
					}
				}
				job.ID = uint64(1000 + i)
				t0 := time.Now()
				l.call(b, job, &res)
				rtt = append(rtt, time.Since(t0))
				work += time.Duration(res.InstNs + res.ExecNs)
			}
			b.StopTimer()
			slices.Sort(rtt)
			b.ReportMetric(float64(rtt[len(rtt)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(rtt[len(rtt)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(float64(work.Nanoseconds())/float64(b.N)/1e3, "lane-work-µs")
		})
	}
}

// runnable is how long pid's threads have run or waited to run: a lane
// that spins is runnable all along, one that blocks is not, however
// loaded the CPU is.
func runnable(t *testing.T, pid int) time.Duration {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, e := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, e.Name()))
		if err != nil {
			continue // exited
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err != nil {
			t.Fatalf("schedstat %q: %v", b, err)
		}
		sum += time.Duration(run + wait)
	}
	return sum
}

// A lane spins for its budget after a job, not after a Park frame, and
// not at all with no budget; it answers jobs in every case.
func TestSpinAndPark(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skipf("needs schedstat (CONFIG_SCHEDSTATS): %v", err)
	}
	_, wk := workerCPUs()
	const spin, window = 150 * time.Millisecond, 100 * time.Millisecond
	// spun reports how long the lane was runnable in the window after
	// job id, Parked first if park.
	spun := func(l *lane, id uint64, park bool) time.Duration {
		job := &ipc.Job{ID: id, Module: []byte("fib.wasm"), Export: []byte("noop")}
		var res ipc.Result
		l.call(t, job, &res)
		if park {
			if err := l.conn.Write(ipc.KindPark, &ipc.Park{}); err != nil {
				t.Fatal(err)
			}
		}
		r0 := runnable(t, l.cmd.Process.Pid)
		time.Sleep(window)
		return runnable(t, l.cmd.Process.Pid) - r0
	}
	l := startLane(t, wk, spin, 0)
	if d := spun(l, 1, false); d < window/2 {
		t.Errorf("after a job, the lane was runnable %v of %v: it does not spin", d, window)
	}
	time.Sleep(spin) // its spin is over
	if d := spun(l, 2, true); d > window/4 {
		t.Errorf("after a Park, the lane was runnable %v of %v: it spins on", d, window)
	}
	idle := startLane(t, wk, 0, 0)
	if d := spun(idle, 1, false); d > window/4 {
		t.Errorf("with no spin budget, the lane was runnable %v of %v after a job", d, window)
	}
	// Both still answer.
	spun(l, 3, false)
	spun(idle, 2, true)
}

// A spinning lane prepares the next instance of a module it ran (engine
// Prepare); every call still runs in a fresh one: a counter's state never
// survives, whether calls come back to back, after the spin, between
// calls of another module, or with input.
func TestPreparedCalls(t *testing.T) {
	l := startLane(t, -1, 300*time.Microsecond, 0)
	l.load(t, "counter.wasm")
	var res ipc.Result
	id := uint64(0)
	call := func(module, export string, stdin []byte) {
		t.Helper()
		id++
		l.call(t, &ipc.Job{ID: id, Module: []byte(module), Export: []byte(export), Stdin: stdin}, &res)
	}
	for i := range 40 {
		export := []string{"incr", "incr_mem"}[i%2]
		switch i % 5 {
		case 1:
			time.Sleep(time.Millisecond) // past the spin: prepared before it
		case 2:
			call("fib.wasm", "noop", nil)
		case 3:
			call("counter.wasm", export, []byte("input"))
			if !slices.Equal(res.Results, []uint64{1}) {
				t.Fatalf("call %d with input: %v, want [1]", i, res.Results)
			}
		}
		call("counter.wasm", export, nil)
		if !slices.Equal(res.Results, []uint64{1}) {
			t.Fatalf("call %d (%s): %v, want [1] (a fresh instance)", i, export, res.Results)
		}
		if res.InstNs <= 0 {
			t.Fatalf("call %d: instantiation %d ns reported, want the prepared instance's", i, res.InstNs)
		}
	}
}
