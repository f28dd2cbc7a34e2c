package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pipe is an in-memory stream: what is written can be read back.
type pipe struct{ bytes.Buffer }

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		in   any
		out  any
	}{
		{"hello", KindHello, &Hello{Version: Version, Role: "coreworker", Proc: "worker-1", CPU: 1,
			Engine: EngineConfig{CacheDir: "/var/cache/hyper-sched", MemoryLimitPages: 16}}, &Hello{}},
		{"load", KindLoad, &Load{Name: "fib.wasm", SHA256: "ab", Wasm: []byte{0, 'a', 's', 'm'}}, &Load{}},
		{"loaded", KindLoaded, &Loaded{Name: "fib.wasm", CompileNs: 5, Exports: []Export{{Name: "fib", Params: []uint8{1}, Results: []uint8{1}}}}, &Loaded{}},
		{"job", KindJob, &Job{ID: 7, Module: []byte("fib.wasm"), Export: []byte("fib_r"), Params: []uint64{30, 1 << 63}}, &Job{}},
		{"job without params", KindJob, &Job{ID: 1, Module: []byte("m"), Export: []byte("noop")}, &Job{}},
		{"job with input", KindJob, &Job{ID: 2, Module: []byte("m"), Export: []byte("_start"), Stdin: []byte{0, 1, 255},
			Args: []byte("a\x00b c\x00"), Env: []byte("K=v\x00")}, &Job{}},
		{"result of a command", KindResult, &Result{ID: 9, Stdout: []byte{0, 255}, StdoutBytes: 5000, StderrBytes: 1,
			Stderr: []byte("x"), Exited: true, ExitCode: 1<<32 - 1, StartMono: 12}, &Result{}},
		{"hello with limits", KindHello, &Hello{Version: Version, Role: "supervisor", Limits: Limits{MaxInput: 5, MaxOutput: 6}}, &Hello{}},
		{"calibrate with input", KindCalibrate, &Calibrate{ID: 5, Module: "m", Export: "_start", Stdin: []byte{1}, Args: []byte("x\x00")}, &Calibrate{}},
		{"result", KindResult, &Result{ID: 7, Results: []uint64{832040}, InstNs: 10, ExecNs: -1, Trap: "unreachable"}, &Result{}},
		{"result with output", KindResult, &Result{ID: 8, Stdout: []byte("hello\n"), Stderr: []byte("oops")}, &Result{}},
		{"load with id", KindLoad, &Load{ID: 3, Name: "fib.wasm", Wasm: []byte{0}}, &Load{}},
		{"loaded with id", KindLoaded, &Loaded{ID: 3, Name: "fib.wasm", Err: "bad"}, &Loaded{}},
		{"calibrate", KindCalibrate, &Calibrate{ID: 4, Module: "fib.wasm", Export: "fib_r", Params: []uint64{30}, BudgetNs: 2e9, MinRuns: 20, MaxRuns: 2000}, &Calibrate{}},
		{"progress", KindProgress, &Progress{ID: 4, Runs: 40, ElapsedNs: 250e6, MedianNs: 6e6}, &Progress{}},
		{"calibrated", KindCalibrated, &Calibrated{ID: 4, Module: "fib.wasm", Export: "fib_r", Runs: 40, Warmup: 3,
			MinNs: 5e6, MedianNs: 6e6, P99Ns: 7e6, MaxNs: 8e6, InstantiateNs: 1e4, TotalNs: 3e8, Stable: true,
			Results: []uint64{832040}, Clock: ClockWallMinusRunDelay}, &Calibrated{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p pipe
			c := NewConn(&p, 0)
			if err := c.Write(tt.kind, tt.in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			k, err := c.Read()
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if k != tt.kind {
				t.Fatalf("got kind %v, want %v", k, tt.kind)
			}
			if err := c.Decode(tt.out); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(tt.out, tt.in) {
				t.Errorf("got %+v, want %+v", tt.out, tt.in)
			}
			if _, err := c.Read(); err != io.EOF {
				t.Errorf("after last frame: got %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameCap(t *testing.T) {
	var p pipe
	c := NewConn(&p, 16)
	err := c.Write(KindLoad, &Load{Wasm: make([]byte, 32)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("write over cap: got %v, want ErrFrameTooLarge", err)
	}
	if p.Len() != 0 {
		t.Errorf("write over cap wrote %d bytes, want 0", p.Len())
	}
	// A length prefix claiming 4 GiB is refused before any allocation.
	binary.Write(&p, binary.BigEndian, uint32(0xFFFFFFFF))
	if _, err := c.Read(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("read over cap: got %v, want ErrFrameTooLarge", err)
	}
}

func TestBadFrames(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", []byte{0, 0, 0, 0}, ErrEmptyFrame},
		{"not an array", []byte{0, 0, 0, 1, 0x01}, ErrBadEnvelope},
		{"array of 3", []byte{0, 0, 0, 4, 0x93, 1, 2, 3}, ErrBadEnvelope},
		{"truncated body", []byte{0, 0, 0, 9, 0x92, 1}, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(&pipe{*bytes.NewBuffer(tt.raw)}, 0)
			if _, err := c.Read(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHostileLengths(t *testing.T) {
	// A job whose module name claims 4 GiB, inside a small frame.
	body := []byte{0x92, byte(KindJob), 0x97, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff}
	raw := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	c := NewConn(&pipe{*bytes.NewBuffer(append(raw, body...))}, 0)
	if _, err := c.Read(); err != nil {
		t.Fatalf("Read: %v", err)
	}
	var j Job
	if err := c.Decode(&j); err == nil {
		t.Fatalf("got nil error decoding a 4 GiB name, want one")
	}
}

// TestLimits checks that a connection's Limits bound Job.Stdin and
// Result.Stdout and Stderr, and that SetLimits raises the frame cap to
// hold them.
func TestLimits(t *testing.T) {
	lim := Limits{MaxInput: 100, MaxOutput: 50}
	for _, tt := range []struct {
		name string
		kind Kind
		in   any
		out  any
		ok   bool
	}{
		{"stdin at the limit", KindJob, &Job{Stdin: make([]byte, 100)}, &Job{}, true},
		{"stdin over", KindJob, &Job{Stdin: make([]byte, 101)}, &Job{}, false},
		{"stdout at the limit", KindResult, &Result{Stdout: make([]byte, 50), Stderr: make([]byte, 50)}, &Result{}, true},
		{"stdout over", KindResult, &Result{Stdout: make([]byte, 51)}, &Result{}, false},
		{"stderr over", KindResult, &Result{Stderr: make([]byte, 51)}, &Result{}, false},
		{"args over", KindJob, &Job{Args: make([]byte, maxList+1)}, &Job{}, false},
		{"env over", KindJob, &Job{Env: make([]byte, maxList+1)}, &Job{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p pipe
			c := NewConn(&p, 0)
			c.SetLimits(lim)
			if err := c.Write(tt.kind, tt.in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if _, err := c.Read(); err != nil {
				t.Fatalf("Read: %v", err)
			}
			err := c.Decode(tt.out)
			if (err == nil) != tt.ok {
				t.Errorf("Decode: got %v, want ok %v", err, tt.ok)
			}
		})
	}
	// Limits above the default frame cap raise it, both ways.
	var p pipe
	c := NewConn(&p, 0)
	c.SetLimits(Limits{MaxInput: MaxIO, MaxOutput: MaxIO})
	big := &Result{Stdout: make([]byte, MaxIO), Stderr: make([]byte, MaxIO)}
	if err := c.Write(KindResult, big); err != nil {
		t.Fatalf("Write of two %d-byte streams: %v", MaxIO, err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatalf("Read: %v", err)
	}
	var r Result
	if err := c.Decode(&r); err != nil || len(r.Stdout) != MaxIO {
		t.Errorf("Decode: got %v, %d bytes, want nil, %d", err, len(r.Stdout), MaxIO)
	}
	for _, l := range []Limits{{}, {MaxInput: MaxIO}, {MaxInput: -1}, {MaxOutput: MaxIO + 1}} {
		ok := l.MaxInput >= 0 && l.MaxInput <= MaxIO && l.MaxOutput >= 0 && l.MaxOutput <= MaxIO
		if err := l.Check(); (err == nil) != ok {
			t.Errorf("%+v.Check(): got %v, want ok %v", l, err, ok)
		}
	}
}

func TestReadHello(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go NewConn(a, 0).Write(KindHello, &Hello{Version: Version + 1})
	if _, err := ReadHello(NewConn(b, 0)); !errors.Is(err, ErrVersion) {
		t.Errorf("got %v, want ErrVersion", err)
	}
	go NewConn(a, 0).Write(KindJob, &Job{})
	if _, err := ReadHello(NewConn(b, 0)); err == nil {
		t.Errorf("a job as first frame: got nil error, want one")
	}
}

// TestNoAllocs checks the hot path: a steady stream of jobs and results is
// encoded and decoded without allocating.
func TestNoAllocs(t *testing.T) {
	var p pipe
	c := NewConn(&p, 0)
	job := &Job{ID: 1, Module: []byte("fib.wasm"), Export: []byte("fib_r"), Params: []uint64{30}}
	res := &Result{ID: 1, Results: []uint64{832040}, InstNs: 1000, ExecNs: 5000}
	var j Job
	var r Result
	roundTrip := func() {
		c.Write(KindJob, job)
		c.Read()
		c.Decode(&j)
		c.Write(KindResult, res)
		c.Read()
		c.Decode(&r)
	}
	roundTrip() // warm the buffers
	if n := testing.AllocsPerRun(100, roundTrip); n != 0 {
		t.Errorf("got %v allocs per job+result, want 0", n)
	}
	// With input and output, once the reused slices have grown.
	job.Stdin, job.Args, job.Env = make([]byte, 4096), []byte("a\x00"), []byte("K=v\x00")
	res.Stdout, res.Stderr, res.StdoutBytes, res.Exited = make([]byte, 4096), []byte("e"), 4096, true
	roundTrip()
	if n := testing.AllocsPerRun(100, roundTrip); n != 0 {
		t.Errorf("with input and output: got %v allocs per job+result, want 0", n)
	}
}

// Polling a socket allocates nothing, however many times it finds it
// empty: a lane polls thousands of times between jobs.
func TestPollAllocs(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 16)
	if n := testing.AllocsPerRun(20, func() {
		if _, _, ok := Poll(fds[0], buf, 10*time.Microsecond, nil); ok {
			t.Fatal("Poll found data in an empty socket")
		}
	}); n != 0 {
		t.Errorf("Poll of an empty socket: %v allocations, want 0", n)
	}
	if _, err := unix.Write(fds[1], []byte("frame")); err != nil {
		t.Fatal(err)
	}
	n, err, ok := Poll(fds[0], buf, time.Second, nil)
	if !ok || err != nil || string(buf[:n]) != "frame" {
		t.Fatalf("Poll: %q, %v, %v", buf[:n], err, ok)
	}
	unix.Close(fds[1])
	if _, err, ok := Poll(fds[0], buf, time.Second, nil); !ok || err != io.EOF {
		t.Fatalf("Poll after the peer closed: %v, %v; want io.EOF", err, ok)
	}
}
