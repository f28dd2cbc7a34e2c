package ipc

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// Version is the protocol version carried in every Hello. A peer with another
// version is refused: supervisor and children are one binary, so a mismatch
// means a stale executable (replaced on disk while running).
//
// Version 2: benchd's answers echo their request's id (Load, Loaded,
// Calibrate, Calibrated, Progress), and the supervisor drops any answer
// whose id is not the waiting request's; a Result carries StartMono, when
// its lane began the job. The id fields alone would decode either way, but
// a version-1 benchd answers with id 0, every one of which a version-2
// supervisor would drop: refusing it at the hello says why.
//
// Version 3: a coreworker spins for Hello.SpinNs after each result, and
// takes Park frames, which an older one refuses.
const Version = 3

// Kind says what a frame's payload is.
type Kind uint8

// Frame kinds. Numbers are wire values: append, never renumber.
const (
	KindHello      Kind = 1  // both ways, first frame: Hello
	KindLoad       Kind = 2  // supervisor → child: Load (module bytes)
	KindLoaded     Kind = 3  // child → supervisor: Loaded
	KindUnload     Kind = 4  // supervisor → child: Unload
	KindJob        Kind = 5  // supervisor → coreworker: Job
	KindResult     Kind = 6  // coreworker → supervisor: Result
	KindCalibrate  Kind = 7  // supervisor → benchd: Calibrate
	KindCalibrated Kind = 8  // benchd → supervisor: Calibrated
	KindProgress   Kind = 9  // benchd → supervisor: Progress
	KindRequest    Kind = 10 // hyper-schedctl → supervisor: Request
	KindResponse   Kind = 11 // supervisor → hyper-schedctl: Response
	KindPark       Kind = 12 // supervisor → coreworker: Park (stop spinning)
)

var kindNames = [...]string{"", "hello", "load", "loaded", "unload", "job", "result",
	"calibrate", "calibrated", "progress", "request", "response", "park"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrVersion is returned by ReadHello for a peer speaking another Version.
var ErrVersion = errors.New("ipc: protocol version mismatch")

// EngineConfig is the engine configuration a child must use; it travels in
// the supervisor's Hello so that benchd and every worker compile identically.
type EngineConfig struct {
	CacheDir         string `msgpack:"cache_dir"`
	MemoryLimitPages uint32 `msgpack:"memory_limit_pages"`
}

// Hello is the first frame each way. The supervisor's carries the child's
// settings (STYLE.md: settings travel in the hello, not argv); the child's
// answer carries its pid.
type Hello struct {
	Version int          `msgpack:"version"`
	Role    string       `msgpack:"role"` // "supervisor", "coreworker", "benchd", "ctl"
	Proc    string       `msgpack:"proc"` // "worker-1", "benchd"
	Pid     int          `msgpack:"pid"`
	CPU     int          `msgpack:"cpu"` // worker CPU; -1 for benchd
	Engine  EngineConfig `msgpack:"engine"`
	// SpinNs is how long a coreworker polls its socket for the next job
	// after answering one before it blocks; 0: it blocks at once.
	SpinNs int64 `msgpack:"spin_ns"`
}

// Park tells a coreworker that spins after its last job to block now: it
// carries nothing, since reading any frame ends the spin.
type Park struct{}

// Load hands a module to a child, which compiles it (a cache hit when benchd
// compiled it first) and answers Loaded with the same ID. The supervisor
// numbers its requests to benchd from 1; loads pushed to coreworkers carry
// 0, which nobody waits on.
type Load struct {
	ID     uint64 `msgpack:"id"`
	Name   string `msgpack:"name"`
	SHA256 string `msgpack:"sha256"`
	Wasm   []byte `msgpack:"wasm"`
}

// Export is one exported function and its signature, as wasmval.Type values.
type Export struct {
	Name    string  `msgpack:"name"`
	Params  []uint8 `msgpack:"params"`
	Results []uint8 `msgpack:"results"`
}

// Loaded answers Load, with its ID. Err is empty on success.
type Loaded struct {
	ID        uint64   `msgpack:"id"`
	Name      string   `msgpack:"name"`
	SHA256    string   `msgpack:"sha256"`
	CompileNs int64    `msgpack:"compile_ns"`
	Exports   []Export `msgpack:"exports"`
	Err       string   `msgpack:"err"`
}

// Unload tells a child to drop a module.
type Unload struct {
	Name string `msgpack:"name"`
}

// ReadHello reads the peer's Hello from c and checks its version.
func ReadHello(c *Conn) (Hello, error) {
	var h Hello
	k, err := c.Read()
	if err != nil {
		return h, fmt.Errorf("ipc: read hello: %w", err)
	}
	if k != KindHello {
		return h, fmt.Errorf("ipc: read hello: got %v frame", k)
	}
	if err := c.Decode(&h); err != nil {
		return h, err
	}
	if h.Version != Version {
		return h, fmt.Errorf("%w: peer %d, mine %d", ErrVersion, h.Version, Version)
	}
	return h, nil
}

// Job is one call for a coreworker. Module and Export are byte slices so that
// decoding into a reused Job does not allocate; the worker looks them up with
// map[string(b)], which Go does without allocating either.
type Job struct {
	ID     uint64
	Module []byte
	Export []byte
	Params []uint64
}

// Result answers a Job. Trap is empty on success; Err is set for failures
// that are not traps (an unknown module, a wrong parameter count).
type Result struct {
	ID      uint64
	Results []uint64
	InstNs  int64
	ExecNs  int64
	Trap    string
	Err     string
	Stdout  []byte // the call's WASI stdout, bounded by the engine
	Stderr  []byte
	// StartMono is CLOCK_MONOTONIC (ns) when the lane began the job, before
	// instantiating: the supervisor derives dispatch and preemption latency
	// from it. 0 if unknown.
	StartMono int64
}

// EncodeMsgpack writes j as a fixed array, without reflection.
func (j *Job) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := enc.EncodeUint64(j.ID); err != nil {
		return err
	}
	if err := enc.EncodeBytes(j.Module); err != nil {
		return err
	}
	if err := enc.EncodeBytes(j.Export); err != nil {
		return err
	}
	return encodeUints(enc, j.Params)
}

// DecodeMsgpack reads j, reusing its slices.
func (j *Job) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := expectArray(dec, 4); err != nil {
		return err
	}
	var err error
	if j.ID, err = dec.DecodeUint64(); err != nil {
		return err
	}
	if j.Module, err = decodeBytesInto(dec, j.Module, maxName); err != nil {
		return err
	}
	if j.Export, err = decodeBytesInto(dec, j.Export, maxName); err != nil {
		return err
	}
	j.Params, err = decodeUints(dec, j.Params)
	return err
}

// EncodeMsgpack writes r as a fixed array, without reflection.
func (r *Result) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(9); err != nil {
		return err
	}
	if err := enc.EncodeUint64(r.ID); err != nil {
		return err
	}
	if err := encodeUints(enc, r.Results); err != nil {
		return err
	}
	if err := enc.EncodeInt(r.InstNs); err != nil {
		return err
	}
	if err := enc.EncodeInt(r.ExecNs); err != nil {
		return err
	}
	if err := enc.EncodeString(r.Trap); err != nil {
		return err
	}
	if err := enc.EncodeString(r.Err); err != nil {
		return err
	}
	if err := enc.EncodeBytes(r.Stdout); err != nil {
		return err
	}
	if err := enc.EncodeBytes(r.Stderr); err != nil {
		return err
	}
	return enc.EncodeInt(r.StartMono)
}

// DecodeMsgpack reads r, reusing its Results slice.
func (r *Result) DecodeMsgpack(dec *msgpack.Decoder) error {
	if err := expectArray(dec, 9); err != nil {
		return err
	}
	var err error
	if r.ID, err = dec.DecodeUint64(); err != nil {
		return err
	}
	if r.Results, err = decodeUints(dec, r.Results); err != nil {
		return err
	}
	if r.InstNs, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if r.ExecNs, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if r.Trap, err = dec.DecodeString(); err != nil {
		return err
	}
	if r.Err, err = dec.DecodeString(); err != nil {
		return err
	}
	if r.Stdout, err = decodeBytesInto(dec, r.Stdout, maxOutput); err != nil {
		return err
	}
	if r.Stderr, err = decodeBytesInto(dec, r.Stderr, maxOutput); err != nil {
		return err
	}
	r.StartMono, err = dec.DecodeInt64()
	return err
}

// Monotonic returns CLOCK_MONOTONIC in ns, the clock every process of the
// machine shares (Result.StartMono).
func Monotonic() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

// maxUints bounds Params and Results; wasm functions have few of either and
// the cap keeps a hostile length prefix from costing memory.
const maxUints = 1024

var errTooMany = errors.New("ipc: value too long")

func expectArray(dec *msgpack.Decoder, want int) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("ipc: got %d fields, want %d", n, want)
	}
	return nil
}

func encodeUints(enc *msgpack.Encoder, v []uint64) error {
	if err := enc.EncodeArrayLen(len(v)); err != nil {
		return err
	}
	for _, x := range v {
		if err := enc.EncodeUint64(x); err != nil {
			return err
		}
	}
	return nil
}

func decodeUints(dec *msgpack.Decoder, buf []uint64) ([]uint64, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return buf[:0], err
	}
	if n > maxUints {
		return buf[:0], errTooMany
	}
	buf = buf[:0]
	for i := 0; i < n; i++ {
		x, err := dec.DecodeUint64()
		if err != nil {
			return buf, err
		}
		buf = append(buf, x)
	}
	return buf, nil
}

// maxName bounds a module or export name on the wire, and maxOutput a
// call's captured stdout or stderr, so a hostile length prefix cannot make
// the reader allocate more than this.
const (
	maxName   = 4096
	maxOutput = 1 << 20
)

// decodeBytesInto reads a msgpack bin or str of at most limit bytes into
// buf's storage.
func decodeBytesInto(dec *msgpack.Decoder, buf []byte, limit int) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return buf[:0], err
	}
	if n < 0 { // nil
		return buf[:0], nil
	}
	if n > limit {
		return buf[:0], errTooMany
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	return buf, dec.ReadFull(buf)
}

// Calibrate asks benchd to measure one call of a module it has loaded:
// warm-up, then runs until the median is stable or a budget is spent.
// Its Progress frames and its Calibrated answer carry its ID.
type Calibrate struct {
	ID       uint64   `msgpack:"id"`
	Module   string   `msgpack:"module"`
	Export   string   `msgpack:"export"`
	Params   []uint64 `msgpack:"params"`
	BudgetNs int64    `msgpack:"budget_ns"` // stop measuring after this long
	MinRuns  int      `msgpack:"min_runs"`
	MaxRuns  int      `msgpack:"max_runs"`
}

// Progress is sent by benchd while a calibration runs.
type Progress struct {
	ID        uint64 `msgpack:"id"` // the Calibrate's
	Runs      int    `msgpack:"runs"`
	ElapsedNs int64  `msgpack:"elapsed_ns"`
	MedianNs  int64  `msgpack:"median_ns"`
}

// Calibrated answers Calibrate, with its ID. Run times are per job as a
// worker sees them: instantiate plus call, on the clock Clock names. Err (or
// Trap) is set when the call failed.
type Calibrated struct {
	ID            uint64   `msgpack:"id"`
	Module        string   `msgpack:"module"`
	Export        string   `msgpack:"export"`
	Runs          int      `msgpack:"runs"`
	Warmup        int      `msgpack:"warmup"`
	MinNs         int64    `msgpack:"min_ns"`
	MedianNs      int64    `msgpack:"median_ns"`
	P99Ns         int64    `msgpack:"p99_ns"`
	MaxNs         int64    `msgpack:"max_ns"`
	InstantiateNs int64    `msgpack:"instantiate_ns"` // median instantiate (warm start)
	TotalNs       int64    `msgpack:"total_ns"`       // wall time of the calibration
	Stable        bool     `msgpack:"stable"`
	Results       []uint64 `msgpack:"results"`
	Trap          string   `msgpack:"trap"`
	Err           string   `msgpack:"err"`
	Missing       bool     `msgpack:"missing"` // the module is not loaded: send Load first
	Clock         string   `msgpack:"clock"`   // ClockWallMinusRunDelay or ClockWall; empty when nothing ran
}

// Clocks a calibration's runs are timed on (Calibrated.Clock).
const (
	// ClockWallMinusRunDelay is wall time less the time the thread waited,
	// runnable, for a CPU (run_delay in /proc/thread-self/schedstat): what a
	// call takes on a core of its own, its on-CPU time plus the time it
	// blocks in its own sleeps and I/O.
	ClockWallMinusRunDelay = "wall-minus-run-delay"
	// ClockWall is plain wall time, used when the kernel keeps no run_delay;
	// it also counts the time other threads held benchd's CPU.
	ClockWall = "wall"
)
