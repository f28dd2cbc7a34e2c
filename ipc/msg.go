package ipc

import (
	"bytes"
	"errors"
	"fmt"
	"time"

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
// Version 3: a Job carries the call's stdin, argv and environment, a
// Result the bytes of output produced (kept or not) and the guest's exit
// code, and the supervisor's Hello the Limits of both. Job and Result are
// positional arrays, so their new fields change their length. A
// coreworker spins for Hello.SpinNs after each result, and takes Park
// frames.
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
	// Limits bound a call's input and output; the child applies them to
	// its connection (Conn.SetLimits) and to the output it keeps.
	Limits Limits `msgpack:"limits"`
}

// Limits bound the bytes of one call on the wire: the supervisor's
// --max-input and --max-output. A decoder refuses a longer field before
// allocating it. Zero fields mean DefaultMaxIO.
type Limits struct {
	MaxInput  int `msgpack:"max_input"`  // Job.Stdin, bytes
	MaxOutput int `msgpack:"max_output"` // Result.Stdout and Result.Stderr, bytes each
}

// DefaultMaxIO is the default of both Limits: 1 MiB.
const DefaultMaxIO = 1 << 20

// MaxIO is the largest limit SetLimits takes: a Result holding two
// streams of it stays within DefaultMaxFrame.
const MaxIO = 30 << 20

// maxList bounds a Job's encoded argv and environment, each: far beyond
// any command line (Linux allows 128 KiB per string, 2 MiB in all).
const maxList = 64 << 10

func (l Limits) Input() int {
	if l.MaxInput > 0 {
		return l.MaxInput
	}
	return DefaultMaxIO
}

func (l Limits) Output() int {
	if l.MaxOutput > 0 {
		return l.MaxOutput
	}
	return DefaultMaxIO
}

// Check returns an error naming the first limit out of (0, MaxIO].
func (l Limits) Check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"max input", l.MaxInput}, {"max output", l.MaxOutput}} {
		if f.v < 0 || f.v > MaxIO {
			return fmt.Errorf("ipc: %s %d not in [0, %d]", f.name, f.v, MaxIO)
		}
	}
	return nil
}

// frame returns the largest Job or Result frame under l, with room for
// names, values and headers.
func (l Limits) frame() int {
	return max(l.Input()+2*maxList, 2*l.Output()) + 2*maxName + 64<<10
}

// SetLimits makes c's Job and Result decoders apply l, and raises c's
// frame cap, if it must, to hold the largest Job or Result under l.
// Call it before c is used from more than one goroutine.
func (c *Conn) SetLimits(l Limits) {
	c.lim = l
	c.max = max(c.max, l.frame())
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
// map[string(b)], which Go does without allocating either. For the same
// reason argv and environment travel as one byte slice each, entries ended
// by NUL (as in /proc/<pid>/cmdline), which no C string can hold.
type Job struct {
	ID     uint64
	Module []byte
	Export []byte
	Params []uint64
	Stdin  []byte // the call's WASI stdin; at most Limits.MaxInput bytes
	Args   []byte // argv after the program name, each entry NUL-ended
	Env    []byte // "KEY=VALUE" entries, each NUL-ended
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
	// StdoutBytes and StderrBytes count what the call wrote, kept or not:
	// more than len(Stdout) means the limit cut it.
	StdoutBytes, StderrBytes int64
	// Exited is set when the guest called WASI proc_exit, ExitCode its
	// code. A non-zero code is an answer, not an Err.
	Exited   bool
	ExitCode uint32
}

// jobFields and resultFields are the lengths of the Job and Result arrays.
const (
	jobFields    = 7
	resultFields = 13
)

// EncodeMsgpack writes j as a fixed array, without reflection.
func (j *Job) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(jobFields); err != nil {
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
	if err := encodeUints(enc, j.Params); err != nil {
		return err
	}
	if err := enc.EncodeBytes(j.Stdin); err != nil {
		return err
	}
	if err := enc.EncodeBytes(j.Args); err != nil {
		return err
	}
	return enc.EncodeBytes(j.Env)
}

// DecodeMsgpack reads j under the default Limits, reusing its slices.
func (j *Job) DecodeMsgpack(dec *msgpack.Decoder) error { return j.decode(dec, Limits{}) }

func (j *Job) decode(dec *msgpack.Decoder, l Limits) error {
	if err := expectArray(dec, jobFields); err != nil {
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
	if j.Params, err = decodeUints(dec, j.Params); err != nil {
		return err
	}
	if j.Stdin, err = decodeBytesInto(dec, j.Stdin, l.Input()); err != nil {
		return err
	}
	if j.Args, err = decodeBytesInto(dec, j.Args, maxList); err != nil {
		return err
	}
	j.Env, err = decodeBytesInto(dec, j.Env, maxList)
	return err
}

// EncodeMsgpack writes r as a fixed array, without reflection.
func (r *Result) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(resultFields); err != nil {
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
	if err := enc.EncodeInt(r.StartMono); err != nil {
		return err
	}
	if err := enc.EncodeInt(r.StdoutBytes); err != nil {
		return err
	}
	if err := enc.EncodeInt(r.StderrBytes); err != nil {
		return err
	}
	if err := enc.EncodeBool(r.Exited); err != nil {
		return err
	}
	return enc.EncodeUint32(r.ExitCode)
}

// DecodeMsgpack reads r under the default Limits, reusing its slices.
func (r *Result) DecodeMsgpack(dec *msgpack.Decoder) error { return r.decode(dec, Limits{}) }

func (r *Result) decode(dec *msgpack.Decoder, l Limits) error {
	if err := expectArray(dec, resultFields); err != nil {
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
	if r.Stdout, err = decodeBytesInto(dec, r.Stdout, l.Output()); err != nil {
		return err
	}
	if r.Stderr, err = decodeBytesInto(dec, r.Stderr, l.Output()); err != nil {
		return err
	}
	if r.StartMono, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if r.StdoutBytes, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if r.StderrBytes, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if r.Exited, err = dec.DecodeBool(); err != nil {
		return err
	}
	r.ExitCode, err = dec.DecodeUint32()
	return err
}

// Monotonic returns CLOCK_MONOTONIC in ns, the clock every process of the
// machine shares (Result.StartMono). It is one clock_gettime at start
// plus the runtime's monotonic clock since, which is CLOCK_MONOTONIC read
// through the vDSO: unix.ClockGettime is a system call, the runtime is
// told of it, and on a polling lane every job's call woke its sysmon.
func Monotonic() int64 { return monoBase + int64(time.Since(monoAt)) }

// monoBase is CLOCK_MONOTONIC at monoAt.
var monoBase, monoAt = func() (int64, time.Time) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano(), time.Now()
}()

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

// maxName bounds a module or export name on the wire, so a hostile length
// prefix cannot make the reader allocate more than this. A call's input and
// output are bounded by the connection's Limits.
const maxName = 4096

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

	// Stdin, Args and Env are the representative input the call is
	// measured with, in Job's form (Args and Env NUL-ended entries).
	Stdin []byte `msgpack:"stdin,omitempty"`
	Args  []byte `msgpack:"args,omitempty"`
	Env   []byte `msgpack:"env,omitempty"`
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

// AppendList appends each of list to b ended by a NUL byte: the form of
// Job.Args and Job.Env. Entries must not hold NUL.
func AppendList(b []byte, list []string) []byte {
	for _, x := range list {
		b = append(b, x...)
		b = append(b, 0)
	}
	return b
}

// SplitList returns the entries of a list in AppendList's form; a last
// entry without its NUL counts too. nil for an empty list.
func SplitList(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	out := make([]string, 0, bytes.Count(b, []byte{0})+1)
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		out = append(out, string(b[:i]))
		b = b[min(i+1, len(b)):]
	}
	return out
}
