package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/text/unicode/norm"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// callBody is the /call and /test JSON. Every number may arrive as a JSON
// string (the seed's clients) or a JSON number.
type callBody struct {
	WasmName      string          `json:"wasm_name"`
	TaskName      string          `json:"task_unique_name"`
	ExportFunc    string          `json:"export_func"`
	ParamType     json.RawMessage `json:"param_type"`
	Params        json.RawMessage `json:"params"`
	ResultsLength wasmval.Flex    `json:"results_length"`
	Expected      wasmval.Flex    `json:"expected_execution_time"`
	Deadline      wasmval.Flex    `json:"expected_deadline"`
	DeadlineAt    wasmval.Flex    `json:"deadline_at"` // Unix ms, absolute (deadline.go)
	CaptureOutput bool            `json:"capture_output"`
	AllowLate     bool            `json:"allow_late"`

	// The call's WASI input (decodeInput).
	Input       *string           `json:"input"`
	InputBase64 json.RawMessage   `json:"input_base64"` // decoded in place (decodeBase64)
	Args        []string          `json:"args"`
	Env         map[string]string `json:"env"`

	Then []stageBody `json:"then"`
}

// stageBody is one stage of "then": a call's fields that a stage may set,
// but for its input: its stdin is the previous stage's stdout.
type stageBody struct {
	WasmName      string            `json:"wasm_name"`
	ExportFunc    string            `json:"export_func"`
	ParamType     json.RawMessage   `json:"param_type"`
	Params        json.RawMessage   `json:"params"`
	ResultsLength wasmval.Flex      `json:"results_length"`
	Expected      wasmval.Flex      `json:"expected_execution_time"`
	Args          []string          `json:"args"`
	Env           map[string]string `json:"env"`
}

// bodyError names what is wrong with a body json.Unmarshal refused: the
// first value's own error, or data after it.
func bodyError(body []byte, err error) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var b callBody
	switch derr := dec.Decode(&b); {
	case derr != nil:
		err = derr
	case dec.More():
		return errorf(apierr.BadRequest, "request body has data after the JSON object")
	}
	return errorf(apierr.BadRequest, "request body is not the expected JSON object: %v", err)
}

// DecodeCall decodes a /call or /test body. arrived is the request's
// arrival, the zero of its deadline clock.
func DecodeCall(body []byte, arrived time.Time) (CallSpec, error) {
	var b callBody
	if !decodeCallFast(body, &b) {
		b = callBody{}
		// Unmarshal, not a Decoder: a Decoder copies the body into a
		// buffer of its own, megabytes for a body with an input.
		if err := json.Unmarshal(body, &b); err != nil {
			return CallSpec{}, bodyError(body, err)
		}
	}
	if b.WasmName == "" {
		return CallSpec{}, errorf(apierr.BadRequest, "wasm_name is missing")
	}
	if b.ExportFunc == "" {
		return CallSpec{}, errorf(apierr.BadRequest, "export_func is missing")
	}
	if err := checkLimits(&b); err != nil {
		return CallSpec{}, err
	}
	spec := CallSpec{Arrived: arrived, Module: b.WasmName, Export: b.ExportFunc, TaskName: b.TaskName,
		ParamTypes: b.ParamType, Params: b.Params, ResultsLength: -1, CaptureOutput: b.CaptureOutput,
		AllowLate: b.AllowLate}
	if err := decodeInput(&b, &spec); err != nil {
		return CallSpec{}, err
	}
	if n, ok, err := b.ResultsLength.Int64(); err != nil || (ok && (n < 0 || n > 1<<16)) {
		return CallSpec{}, errorf(apierr.InvalidParams, "results_length must be a small non-negative integer")
	} else if ok {
		spec.ResultsLength = int(n)
	}
	var err error
	if spec.Declared, err = millis("expected_execution_time", b.Expected); err != nil {
		return CallSpec{}, err
	}
	if spec.Deadline, err = millis("expected_deadline", b.Deadline); err != nil {
		return CallSpec{}, err
	}
	if b.DeadlineAt != "" {
		// Two deadlines could only disagree: which one holds is not
		// guessed.
		if spec.Deadline != 0 {
			return CallSpec{}, errorf(apierr.InvalidParams, "expected_deadline and deadline_at are both given: "+
				"send one, the relative deadline in ms or the absolute one in Unix ms")
		}
		if spec.Deadline, err = DeadlineAt("deadline_at", string(b.DeadlineAt), arrived); err != nil {
			return CallSpec{}, err
		}
	}
	// The chain's stages must end within the deadline, absolute or not.
	if b.Then != nil {
		if spec.Then, err = decodeThen(b.Then, spec.Module, spec.Deadline); err != nil {
			return CallSpec{}, err
		}
	}
	return spec, nil
}

// MaxThen bounds the stages of "then": with the call itself, a chain has
// at most 16 stages (sched.MaxChain, which a test keeps equal). Each stage
// costs an admission test and a hop between lanes; 16 is far beyond any
// pipeline written by hand.
const MaxThen = 15

// decodeThen checks and converts the stages of "then", for a chain whose
// first stage calls module and which must end within deadline.
func decodeThen(then []stageBody, module string, deadline time.Duration) ([]StageSpec, error) {
	switch {
	case len(then) == 0:
		return nil, errorf(apierr.BadRequest, "then is an empty list: leave it out for a single call, or give the stages that run after this call")
	case len(then) > MaxThen:
		return nil, errorf(apierr.BadRequest, "then has %d stages, over the limit of %d (a chain is at most %d calls)", len(then), MaxThen, MaxThen+1)
	case deadline == 0:
		return nil, errorf(apierr.BadRequest, "then needs expected_deadline: a chain runs under one end-to-end deadline, admitted whole or refused whole")
	}
	out := make([]StageSpec, len(then))
	for i, st := range then {
		n := i + 2 // the call itself is stage 1
		if st.WasmName == "" {
			st.WasmName = module
		}
		if st.ExportFunc == "" {
			return nil, errorf(apierr.BadRequest, "then: stage %d: export_func is missing", n)
		}
		b := callBody{WasmName: st.WasmName, ExportFunc: st.ExportFunc, ParamType: st.ParamType, Params: st.Params}
		if err := checkLimits(&b); err != nil {
			return nil, stageError(n, err)
		}
		module = b.WasmName
		spec := StageSpec{Module: b.WasmName, Export: b.ExportFunc, ParamTypes: st.ParamType, Params: st.Params, ResultsLength: -1}
		if v, ok, err := st.ResultsLength.Int64(); err != nil || (ok && (v < 0 || v > 1<<16)) {
			return nil, errorf(apierr.InvalidParams, "then: stage %d: results_length must be a small non-negative integer", n)
		} else if ok {
			spec.ResultsLength = int(v)
		}
		var err error
		if spec.Declared, err = millis("expected_execution_time", st.Expected); err != nil {
			return nil, stageError(n, err)
		}
		var in CallSpec
		if err := decodeInput(&callBody{Args: st.Args, Env: st.Env}, &in); err != nil {
			return nil, stageError(n, err)
		}
		spec.Args, spec.Env = in.Args, in.Env
		out[i] = spec
	}
	return out, nil
}

// stageError is err, an *apierr.Error about a field of stage n of a
// chain, with the stage named.
func stageError(n int, err error) error {
	e := err.(*apierr.Error)
	return errorf(e.Code, "then: stage %d: %s", n, e.Msg)
}

// Limits of the strings in a /call or /test body. /call is open to anyone
// who can reach the daemon, and names are kept after the call (/uname keeps
// the last 10,000 tasks), so each is bounded; over its limit is a 400 that
// names the field and the limit.
const (
	// MaxNameLen bounds wasm_name: the longest module name a register
	// accepts (supervisor.MaxNameLen, which a test keeps equal).
	MaxNameLen = 128
	// MaxTaskNameLen bounds task_unique_name.
	MaxTaskNameLen = 128
	// MaxExportLen bounds export_func. wasm sets no limit on export names;
	// 256 bytes is far beyond any function name a caller types.
	MaxExportLen = 256
	// MaxParamTypeLen bounds param_type as sent: 64 type names in a list
	// take under 500 bytes.
	MaxParamTypeLen = 1 << 10
	// MaxParamsLen bounds params as sent: 64 values of over 200 digits.
	MaxParamsLen = 16 << 10
)

// checkLimits checks b's strings against their limits, refuses control
// and format characters (bidi overrides, zero-width characters) in the
// names it keeps and shows, and puts wasm_name in NFC, the one form module
// names are registered in (supervisor.ValidName).
func checkLimits(b *callBody) error {
	for _, f := range []struct {
		field string
		v     string
		max   int
	}{{"wasm_name", b.WasmName, MaxNameLen}, {"task_unique_name", b.TaskName, MaxTaskNameLen}, {"export_func", b.ExportFunc, MaxExportLen}} {
		if len(f.v) > f.max {
			return errorf(apierr.BadRequest, "%s is %d bytes, over the limit of %d", f.field, len(f.v), f.max)
		}
	}
	for _, f := range []struct {
		field string
		v     json.RawMessage
		max   int
	}{{"param_type", b.ParamType, MaxParamTypeLen}, {"params", b.Params, MaxParamsLen}} {
		if len(f.v) > f.max {
			return errorf(apierr.InvalidParams, "%s is %d bytes of JSON, over the limit of %d", f.field, len(f.v), f.max)
		}
	}
	for _, f := range []struct{ field, v string }{{"wasm_name", b.WasmName}, {"task_unique_name", b.TaskName}} {
		if i := strings.IndexFunc(f.v, invisible); i >= 0 {
			r, _ := utf8.DecodeRuneInString(f.v[i:])
			return errorf(apierr.BadRequest, "%s %s contains the control or format character %U, which names may not hold", f.field, quote(f.v), r)
		}
	}
	if !norm.NFC.IsNormalString(b.WasmName) {
		b.WasmName = norm.NFC.String(b.WasmName)
		if len(b.WasmName) > MaxNameLen {
			return errorf(apierr.BadRequest, "wasm_name is %d bytes in Unicode NFC, over the limit of %d", len(b.WasmName), MaxNameLen)
		}
	}
	return nil
}

// MaxArgsLen bounds args and env, each: the bytes of their entries plus
// one per entry, the form they travel in to the worker (ipc.Job), far
// beyond any command line.
const MaxArgsLen = 60 << 10

// decodeInput checks and copies b's input, args and env into spec. The
// input's size is checked by the handler against --max-input (413).
func decodeInput(b *callBody, spec *CallSpec) error {
	if string(b.InputBase64) == "null" {
		b.InputBase64 = nil // as for any field: null is absent
	}
	switch {
	case b.Input != nil && b.InputBase64 != nil:
		return errorf(apierr.BadRequest, "input and input_base64 are both given; send one: input for UTF-8 text, input_base64 for any bytes")
	case b.Input != nil:
		spec.Input = []byte(*b.Input)
	case b.InputBase64 != nil:
		in, err := decodeBase64(b.InputBase64)
		if err != nil {
			return err
		}
		spec.Input = in
	}
	n := 0
	for i, a := range b.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return errorf(apierr.BadRequest, "args[%d] holds a NUL character, which no argument can", i)
		}
		n += len(a) + 1
	}
	if n > MaxArgsLen {
		return errorf(apierr.BadRequest, "args take %d bytes, over the limit of %d", n, MaxArgsLen)
	}
	spec.Args = b.Args
	n = 0
	for k, v := range b.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return errorf(apierr.BadRequest, "env name %s is empty or holds '=' or NUL", quote(k))
		case strings.IndexByte(v, 0) >= 0:
			return errorf(apierr.BadRequest, "env %s holds a NUL character, which no value can", quote(k))
		}
		n += len(k) + len(v) + 2
		spec.Env = append(spec.Env, k+"="+v)
	}
	if n > MaxArgsLen {
		return errorf(apierr.BadRequest, "env takes %d bytes, over the limit of %d", n, MaxArgsLen)
	}
	slices.Sort(spec.Env) // one order, so one input digest
	return nil
}

// decodeBase64 decodes input_base64 from its JSON text: a string of the
// base64 alphabet holds no escapes, so it is decoded straight from the
// body's bytes, without the copy a Go string would take; a string with
// escapes ("\/" is valid JSON) is unquoted first.
func decodeBase64(raw json.RawMessage) ([]byte, error) {
	bad := func(err error) error {
		return errorf(apierr.BadRequest, "input_base64 is not a string of standard base64 (RFC 4648, with padding): %v", err)
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, bad(errors.New("not a JSON string"))
	}
	text := raw[1 : len(raw)-1]
	if bytes.IndexByte(text, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad(err)
		}
		text = []byte(s)
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(out, text)
	if err != nil {
		return nil, bad(err)
	}
	return out[:n], nil
}

// checkInput refuses an input over max, the daemon's --max-input.
func checkInput(in []byte, max int) error {
	if max > 0 && len(in) > max {
		return errorf(apierr.TooLarge, "input is %d bytes, over the limit of %d (the daemon's --max-input)", len(in), max)
	}
	return nil
}

// invisible reports a control (Cc) or format (Cf) character: line breaks,
// escapes, bidi overrides, zero-width joiners and spaces.
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// maxMillis bounds a time field: a day is far beyond any deadline.
const maxMillis = 24 * 3600 * 1000

// minMillis is the smallest positive time field, 1 µs: the resolution of
// every time the daemon reports, and far below any run it can schedule.
const minMillis = 0.001

// millis converts a milliseconds field (integer or fractional) to a
// duration. Absent or zero is 0: best effort for expected_deadline, "not
// declared" for expected_execution_time, as in the seed. Anything else must
// lie in [minMillis, maxMillis]: a positive time too small for a Duration
// once became 0, turning a deadline call into best effort without a word.
func millis(field string, f wasmval.Flex) (time.Duration, error) {
	none := "none"
	if field == "expected_deadline" || field == HeaderDeadline {
		none = "best effort"
	}
	v, ok, err := f.Float64()
	if err != nil {
		return 0, errorf(apierr.InvalidParams, "%s must be milliseconds from %g (1 µs) to %d, or 0 for %s: %v", field, minMillis, maxMillis, none, err)
	}
	switch {
	case !ok || v == 0:
		return 0, nil
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0: // Float64 refuses NaN and infinities already
		return 0, errorf(apierr.InvalidParams, "%s is %s ms: it must be from %g (1 µs) to %d, or 0 for %s", field, quote(string(f)), minMillis, maxMillis, none)
	case v < minMillis:
		return 0, errorf(apierr.InvalidParams, "%s is %s ms, below the smallest time of %g ms (1 µs); send 0 or leave it out for %s", field, quote(string(f)), minMillis, none)
	case v > maxMillis:
		return 0, errorf(apierr.InvalidParams, "%s is %s ms, above the largest time of %d ms (a day)", field, quote(string(f)), maxMillis)
	}
	return time.Duration(math.Round(v * float64(time.Millisecond))), nil
}

// maxQuoted is how many bytes of a client's value an error repeats.
const maxQuoted = 40

// quote returns s in Go quotes, cut to maxQuoted bytes with "…" after it.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + "…"
}

// readBody reads at most max bytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	// A declared length sizes the buffer once: a body carrying an input
	// is megabytes, which io.ReadAll would reach by doubling.
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= max {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	b := buf.Bytes()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errorf(apierr.TooLarge, "request body is larger than %d bytes", max)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, errorf(apierr.BadRequest, "read request body: it did not arrive within the server's read timeout (--read-timeout)")
	}
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return nil, err // the input budget's refusal
	}
	if err != nil {
		return nil, errorf(apierr.BadRequest, "read request body: %v", err)
	}
	return b, nil
}

// budget puts r's body, of at most limit bytes, under the input budget;
// release gives back what it took. A declared length over limit takes
// only limit: reading it ends in a 413, not in a refusal for budget.
func (h *handler) budget(r *http.Request, limit int64) (release func(), err error) {
	bb, err := h.inputs.wrap(r.Body, min(r.ContentLength, limit))
	if err != nil {
		return nil, err
	}
	r.Body = bb
	return bb.release, nil
}

type timings struct {
	Queue       int64 `json:"queue"`
	Instantiate int64 `json:"instantiate"`
	Exec        int64 `json:"exec"`
	Total       int64 `json:"total"`
	Stopped     int64 `json:"stopped,omitempty"` // preempted by more urgent calls
	Start       int64 `json:"start,omitempty"`   // arrival → its lane began it
}

// output is a call's stdout and stderr as /call answers them: stdout in
// output, or output_base64 when it is not UTF-8; stderr as text (invalid
// bytes replaced by U+FFFD). A stream cut at --max-output says so in
// output_truncated or stderr_truncated, with the bytes the guest wrote in
// output_bytes or stderr_bytes (output_kept_bytes: what the answer holds).
type output struct {
	Output          *string `json:"output,omitempty"`
	OutputBase64    *string `json:"output_base64,omitempty"`
	OutputTruncated bool    `json:"output_truncated,omitempty"`
	OutputBytes     int64   `json:"output_bytes,omitempty"`
	OutputKept      int64   `json:"output_kept_bytes,omitempty"`
	StderrTruncated bool    `json:"stderr_truncated,omitempty"`
	StderrBytes     int64   `json:"stderr_bytes,omitempty"`
	ExitCode        *int    `json:"exit_code,omitempty"`
}

func outputOf(res *CallResult) output {
	var o output
	if utf8.Valid(res.Stdout) {
		s := string(res.Stdout)
		o.Output = &s
	} else {
		s := base64.StdEncoding.EncodeToString(res.Stdout)
		o.OutputBase64 = &s
	}
	if res.StdoutBytes > int64(len(res.Stdout)) {
		o.OutputTruncated, o.OutputBytes, o.OutputKept = true, res.StdoutBytes, int64(len(res.Stdout))
	}
	if res.StderrBytes > int64(len(res.Stderr)) {
		o.StderrTruncated, o.StderrBytes = true, res.StderrBytes
	}
	o.ExitCode = res.ExitCode
	return o
}

// captureLimit is how much of each stream capture_output's stdout and
// stderr fields hold: what they held before calls had output of their own.
const captureLimit = 4096

type callAnswer struct {
	Status         string          `json:"status"`
	Result         string          `json:"result"`
	Results        []wasmval.Value `json:"results"`
	TaskID         string          `json:"task_id"`
	TaskName       string          `json:"task_unique_name"`
	Worker         string          `json:"worker"`
	CPU            int             `json:"cpu"`
	Lane           int             `json:"lane"`
	Preempted      bool            `json:"preempted,omitempty"` // it stopped a less urgent call to start
	DeadlineMet    *bool           `json:"deadline_met,omitempty"`
	DeadlineMs     float64         `json:"deadline_ms,omitempty"`
	EstimateMs     float64         `json:"estimate_ms,omitempty"`
	EstimateSource string          `json:"estimate_source,omitempty"`
	TimingsUs      timings         `json:"timings_us"`
	Stdout         *string         `json:"stdout,omitempty"` // with capture_output
	Stderr         *string         `json:"stderr,omitempty"` // with capture_output, or when not empty
	output
	Stages []stageAnswer `json:"stages,omitempty"` // a chain's, in order
}

// stageAnswer is one stage of a chain in a /call answer.
type stageAnswer struct {
	Stage          int             `json:"stage"` // 1 is the call itself
	WasmName       string          `json:"wasm_name"`
	ExportFunc     string          `json:"export_func"`
	TaskID         string          `json:"task_id"`
	Worker         string          `json:"worker"`
	CPU            int             `json:"cpu"`
	Lane           int             `json:"lane"`
	Result         string          `json:"result"`
	Results        []wasmval.Value `json:"results"`
	DeadlineMs     float64         `json:"deadline_ms"` // its own, from the chain's arrival
	DeadlineMet    bool            `json:"deadline_met"`
	EstimateMs     float64         `json:"estimate_ms"`
	EstimateSource string          `json:"estimate_source"`
	Preempted      bool            `json:"preempted,omitempty"`
	OutputBytes    int64           `json:"output_bytes"` // its stdout: the next stage's stdin
	ExitCode       *int            `json:"exit_code,omitempty"`
	// TimingsUs: queue is from the previous stage's result (the first:
	// the arrival) to this stage's start, total from the chain's arrival.
	TimingsUs timings `json:"timings_us"`
}

// stagesAnswer converts a chain's stages for the answer.
func stagesAnswer(rs []StageResult) []stageAnswer {
	if len(rs) == 0 {
		return nil
	}
	out := make([]stageAnswer, len(rs))
	for i, r := range rs {
		out[i] = stageAnswer{Stage: i + 1, WasmName: r.Module, ExportFunc: r.Export, TaskID: strconv.FormatUint(r.TaskID, 10),
			Worker: r.Worker, CPU: r.CPU, Lane: r.Lane, Result: wasmval.Seed(r.Types, r.Results), Results: wasmval.JSON(r.Types, r.Results),
			DeadlineMs: ms(r.Deadline), DeadlineMet: r.DeadlineMet, EstimateMs: ms(r.Estimate), EstimateSource: r.EstimateSource,
			Preempted: r.Preempted, OutputBytes: r.OutputBytes, ExitCode: r.ExitCode,
			TimingsUs: timings{Queue: r.Queue.Microseconds(), Instantiate: r.Instantiate.Microseconds(),
				Exec: r.Exec.Microseconds(), Total: r.Total.Microseconds(), Stopped: r.Stopped.Microseconds()}}
	}
	return out
}

func (h *handler) call(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	arrived := time.Now()
	release, err := h.budget(r, h.o.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release() // the input is held until the answer
	body, err := readBody(w, r, h.o.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	spec, err := DecodeCall(body, arrived)
	if err == nil {
		err = checkInput(spec.Input, h.o.MaxInput)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := h.b.Call(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	a := callAnswer{
		Status: "Success", Result: wasmval.Seed(res.Types, res.Results), Results: wasmval.JSON(res.Types, res.Results),
		TaskID: strconv.FormatUint(res.TaskID, 10), TaskName: res.TaskName, Worker: res.Worker, CPU: res.CPU,
		DeadlineMet: res.DeadlineMet, DeadlineMs: ms(res.Deadline), EstimateMs: ms(res.Estimate),
		EstimateSource: res.EstimateSource,
		TimingsUs: timings{Queue: res.Queue.Microseconds(), Instantiate: res.Instantiate.Microseconds(),
			Exec: res.Exec.Microseconds(), Total: res.Total.Microseconds(), Stopped: res.Stopped.Microseconds(),
			Start: res.Begin.Microseconds()},
		Lane: res.Lane, Preempted: res.Preempted, output: outputOf(res), Stages: stagesAnswer(res.Stages),
	}
	switch {
	case spec.CaptureOutput:
		// The fields capture_output has always given, as they were: the
		// first 4 KiB of each stream. output has all of stdout.
		out := strings.ToValidUTF8(string(res.Stdout[:min(len(res.Stdout), captureLimit)]), "\uFFFD")
		errOut := strings.ToValidUTF8(string(res.Stderr[:min(len(res.Stderr), captureLimit)]), "\uFFFD")
		a.Stdout, a.Stderr = &out, &errOut
	case len(res.Stderr) > 0:
		errOut := strings.ToValidUTF8(string(res.Stderr), "\uFFFD")
		a.Stderr = &errOut
	}
	writeCallAnswer(w, &a)
}

type testAnswer struct {
	Status      string  `json:"status"`
	Result      string  `json:"result"` // estimate, whole ms rounded up
	EstimateMs  float64 `json:"estimate_ms"`
	Calibration any     `json:"calibration"`
}

func (h *handler) test(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	release, err := h.budget(r, h.o.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	body, err := readBody(w, r, h.o.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	spec, err := DecodeCall(body, time.Now())
	if err == nil && spec.Then != nil {
		err = errorf(apierr.BadRequest, "then is for /call: /test measures one call")
	}
	if err == nil {
		err = checkInput(spec.Input, h.o.MaxInput)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := h.b.Test(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, testAnswer{Status: "Success", Result: CeilMs(res.Estimate),
		EstimateMs: ms(res.Estimate), Calibration: res.Calibration})
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// CeilMs formats d as whole milliseconds rounded up, at least 1: the seed's
// clients read expected_execution_time and /test's result as integers.
func CeilMs(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(float64(d)/float64(time.Millisecond)))), 10)
}
