// Package httpapi is hyper-sched's HTTP interface (DESIGN.md §5): it
// decodes requests, including the seed prototype's string-typed JSON, calls
// the Backend (the supervisor), and writes JSON answers whose status field
// and HTTP status always agree (errors.go).
//
// It holds no state and makes no scheduling decision.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Backend is what the handlers need from the supervisor.
type Backend interface {
	Register(ctx context.Context, spec RegisterSpec) ([]Registered, error)
	Call(ctx context.Context, spec CallSpec) (*CallResult, error)
	Test(ctx context.Context, spec CallSpec) (*Tested, error)
	DeleteModule(name string) error
	Module(name string) (any, error)
	Modules() any
	Status() any
	Timeline(name string) (any, error)
	WarmStart() string
	Healthy() (ok bool, detail string)
}

// Options configures the handler. Zero values mean defaults.
type Options struct {
	MaxUpload int64 // bytes of one module; default 64 MiB
	// MaxInput bounds a call's input (stdin), bytes; default 1 MiB
	// (ipc.DefaultMaxIO). Over it is a 413.
	MaxInput int
	// MaxBody bounds a JSON body (/call, /test); default DefaultMaxBody
	// plus twice MaxInput, room for the input as base64 (4/3 of it) or as
	// a JSON string with some escapes.
	MaxBody int64
	// MaxInputInFlight bounds the bytes of call bodies held at once, read
	// or waiting for their answer (budget.go); default
	// DefaultInputInFlight(MaxInput).
	MaxInputInFlight int64
	URL              string // this server's base URL, for the register answer
	// Token, when set, is required as a bearer token by the endpoints that
	// change what the daemon runs: /register, /test, DELETE /modules/…
	Token string
	// Metrics, if not nil, serves GET /metrics (Prometheus text format).
	Metrics http.Handler
	// Uploads spools register forms and bounds them (register.go);
	// default: os.TempDir(), one full form (FormCap) at a time.
	Uploads *Uploads
	// InitDir, when set, is the directory under which GET /init registers
	// server-local files (init.go); default: /init is off.
	InitDir string
	Log     *slog.Logger // default: discard
}

// DefaultMaxBody bounds a JSON body (/call, /test): many times what the
// limits of its fields (call.go) allow, and small enough that every
// connection the server takes may hold one in memory.
const DefaultMaxBody = 64 << 10

// CallSpec is a decoded /call or /test body.
type CallSpec struct {
	Arrived       time.Time // when the request arrived: the deadline clock's zero
	Module        string
	Export        string
	TaskName      string
	ParamTypes    json.RawMessage // absent: the export's signature
	Params        json.RawMessage
	ResultsLength int           // -1: not given
	Declared      time.Duration // expected_execution_time; 0: none
	Deadline      time.Duration // expected_deadline; 0: best effort
	CaptureOutput bool          // answer with the call's stdout and stderr
	AllowLate     bool          // finish late (deadline_met false) rather than be killed
	// Input is the call's WASI stdin (input or input_base64); nil: empty.
	Input []byte
	// Args is argv after the program name; Env "KEY=VALUE" entries, sorted.
	Args, Env []string
	// Then, if not empty, makes the call the first stage of a chain: each
	// stage of Then runs after the one before it, on its output, all under
	// the one end-to-end Deadline (required), admitted whole or refused
	// whole. At most MaxThen stages.
	Then []StageSpec
}

// StageSpec is one stage of a chain after the first ("then").
type StageSpec struct {
	Module        string // the previous stage's if not given
	Export        string
	ParamTypes    json.RawMessage // absent: the export's signature
	Params        json.RawMessage
	ResultsLength int           // -1: not given
	Declared      time.Duration // expected_execution_time; 0: none
	// Args is argv after the program name; Env "KEY=VALUE" entries,
	// sorted. Its stdin is the previous stage's stdout.
	Args, Env []string
}

// StageResult is one stage of a chain that ran (CallResult.Stages).
type StageResult struct {
	Module, Export string
	TaskID         uint64
	CPU            int
	Worker         string
	Lane           int
	Types          []wasmval.Type
	Results        []uint64
	// Deadline is the stage's own deadline, from the chain's arrival,
	// derived so that the chain can meet its end-to-end deadline.
	Deadline       time.Duration
	DeadlineMet    bool
	Estimate       time.Duration
	EstimateSource string
	Queue          time.Duration // the previous stage's end (the first: arrival) → start
	Instantiate    time.Duration
	Exec           time.Duration
	Total          time.Duration // arrival → this stage's result
	Stopped        time.Duration
	Preempted      bool
	// OutputBytes is what it wrote to stdout, the next stage's stdin;
	// ExitCode a command's exit code (nil: it did not exit).
	OutputBytes int64
	ExitCode    *int
}

// CallResult is a successful call.
type CallResult struct {
	TaskID         uint64
	TaskName       string
	CPU            int
	Worker         string
	Types          []wasmval.Type
	Results        []uint64
	DeadlineMet    *bool // nil for best effort
	Deadline       time.Duration
	Estimate       time.Duration
	EstimateSource string
	Queue          time.Duration // arrival → start on the worker
	Instantiate    time.Duration
	Exec           time.Duration
	Total          time.Duration // arrival → result
	Stopped        time.Duration // time its lane was stopped by more urgent calls
	Lane           int           // the lane of Worker's CPU that ran it
	Begin          time.Duration // arrival → its lane began it (0: unknown)
	Preempted      bool          // it stopped a less urgent call to start
	Stdout, Stderr []byte        // the call's WASI output, bounded
	// StdoutBytes and StderrBytes count what the call wrote, kept or not.
	StdoutBytes, StderrBytes int64
	// ExitCode is a command's exit code (proc_exit, or 0 when _start
	// returned); nil for a function that did not exit.
	ExitCode *int
	// Stages, for a chain, are its stages in order; the fields above are
	// then the chain's: the last stage's results and output, the first
	// stage's task, the end-to-end deadline and times.
	Stages []StageResult
}

// Upload is one module file of a register form, spooled to disk (Uploads).
type Upload struct {
	Name   string // the form field name
	File   string // the spooled bytes, removed when the form is released
	Size   int64
	SHA256 string // hex, of the bytes in File
	// Wasm, if not nil, holds the bytes in memory instead of File, for
	// callers that have them there (tests): the Backend spools them.
	Wasm []byte
}

// RegisterSpec is a decoded /register form.
type RegisterSpec struct {
	Modules    []Upload
	Export     string          // export_func to calibrate; "" = every parameterless export
	ParamTypes json.RawMessage // param_type, as JSON
	Params     json.RawMessage // params, as a JSON list
	Replace    bool            // replace=true: other bytes may take a registered name
	// Input, Args and Env are the representative input the calls are
	// calibrated with (-F input=@file, args, env): stdin, argv after the
	// program name, "KEY=VALUE" entries sorted. nil: none.
	Input     []byte
	Args, Env []string

	input   *Upload           // the spooled input part, read by loadInput
	env     map[string]string // the env field, checked by loadInput
	release func()
}

// Release removes the form's spooled files and gives their share of the
// upload budget back. The handler calls it once the register is over; a
// Backend may call it earlier, once the bytes are stored. Later calls do
// nothing.
func (spec RegisterSpec) Release() {
	if spec.release != nil {
		spec.release()
	}
}

// Registered is one registered module.
type Registered struct {
	Name         string
	SHA256       string
	Size         int
	Unchanged    bool // identical bytes were registered already
	Exports      any
	Compile      time.Duration
	Calibrations any
	Expected     time.Duration // the largest estimate among the calibrated calls
}

// Tested is a /test answer.
type Tested struct {
	Estimate    time.Duration
	Calibration any
}

// New returns the API handler on b.
func New(b Backend, o Options) http.Handler {
	_, r := newHandler(b, o)
	return r
}

// newHandler returns the handler state and its router.
func newHandler(b Backend, o Options) (*handler, http.Handler) {
	if o.MaxUpload <= 0 {
		o.MaxUpload = 64 << 20
	}
	if o.MaxInput <= 0 {
		o.MaxInput = ipc.DefaultMaxIO
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody + 2*int64(o.MaxInput)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Uploads == nil {
		o.Uploads = NewUploads("", FormCap(o.MaxUpload))
	}
	if o.MaxInputInFlight <= 0 {
		o.MaxInputInFlight = DefaultInputInFlight(o.MaxInput)
	}
	h := &handler{b: b, o: o, inputs: &inputBudget{max: o.MaxInputInFlight}}
	r := httprouter.New()
	r.POST("/register", h.requireToken(h.register))
	r.GET("/init", h.requireToken(h.initModule)) // the seed's verb; POST too, which curl -d sends
	r.POST("/init", h.requireToken(h.initModule))
	r.POST("/call", h.call)
	r.POST("/run/:module", h.run) // a command: export _start
	r.POST("/run/:module/:export", h.run)
	r.POST("/test", h.requireToken(h.test))
	r.GET("/status", h.status)
	r.GET("/uname", h.uname)
	r.GET("/warm-start-latency", h.warmStart)
	r.GET("/modules", h.modules)
	r.GET("/modules/:name", h.module)
	r.DELETE("/modules/:name", h.requireToken(h.deleteModule))
	r.GET("/healthz", h.healthz)
	if o.Metrics != nil {
		r.Handler(http.MethodGet, "/metrics", o.Metrics)
	}
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(apierr.NoEndpoint, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(apierr.MethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	})
	r.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		o.Log.Error("handler panic", "path", r.URL.Path, "err", v)
		writeError(w, errorf(apierr.Internal, "internal error"))
	}
	return h, r
}

type handler struct {
	b      Backend
	o      Options
	inputs *inputBudget
}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
