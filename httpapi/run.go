package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// The raw route's request headers (POST /run/:module[/:export]).
const (
	// HeaderDeadline is the relative deadline, milliseconds from arrival
	// (expected_deadline); absent or 0: best effort.
	HeaderDeadline = "Hyper-Deadline-Ms"
	// HeaderExecution is the declared execution time, milliseconds
	// (expected_execution_time); absent or 0: none.
	HeaderExecution = "Hyper-Execution-Time-Ms"
	// HeaderTaskName is task_unique_name; absent: generated.
	HeaderTaskName = "Hyper-Task-Name"
)

// The raw route's answer headers; the body is the call's stdout.
const (
	headerExitCode  = "Hyper-Exit-Code"        // a command's exit code
	headerTruncated = "Hyper-Output-Truncated" // "true" when stdout was cut at --max-output
	headerOutBytes  = "Hyper-Output-Bytes"     // with it: the bytes the guest wrote
	headerStderr    = "Hyper-Stderr"           // the first stderrHeaderMax bytes, percent-encoded
	headerErrBytes  = "Hyper-Stderr-Bytes"     // the bytes the guest wrote to stderr
	headerResult    = "Hyper-Result"           // returned values, seed form ("[I32(3)]")
	headerTaskID    = "Hyper-Task-Id"
	headerWorker    = "Hyper-Worker"
	headerMet       = "Hyper-Deadline-Met" // "true" or "false"; absent for best effort
	headerEstimate  = "Hyper-Estimate-Ms"  // with its source: "5.2; source=learned"
)

// stderrHeaderMax bounds the stderr an answer header repeats: proxies
// refuse large headers (nginx: 4-8 KiB for all of them by default).
const stderrHeaderMax = 1024

// runHeaders is what the raw route reads from a request's headers and
// query: everything of a CallSpec but the module, export and body.
type runHeaders struct {
	Declared, Deadline time.Duration
	TaskName           string
	Params             json.RawMessage // from ?params=1,2; nil: none
}

// parseRunHeaders reads the raw route's headers and query string with the
// rules of /call's fields: times as /call's milliseconds, names within
// /call's limits. A header given twice is refused, never guessed at.
//
// A later absolute deadline (Hyper-Deadline-At, §5b) is parsed here beside
// Hyper-Deadline-Ms.
func parseRunHeaders(h http.Header, query string) (runHeaders, error) {
	var rh runHeaders
	var err error
	one := func(name string) (string, error) {
		vs := h.Values(name)
		if len(vs) > 1 {
			return "", errorf(apierr.BadRequest, "header %s is given %d times; send it once", name, len(vs))
		}
		if len(vs) == 0 {
			return "", nil
		}
		return strings.TrimSpace(vs[0]), nil
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{HeaderDeadline, &rh.Deadline}, {HeaderExecution, &rh.Declared}} {
		v, err := one(f.name)
		if err != nil {
			return rh, err
		}
		if len(v) > maxQuoted {
			return rh, errorf(apierr.InvalidParams, "header %s is %d bytes: send milliseconds, e.g. 35 or 0.5", f.name, len(v))
		}
		if *f.d, err = millis(f.name, wasmval.Flex(v)); err != nil {
			return rh, err
		}
	}
	if rh.TaskName, err = one(HeaderTaskName); err != nil {
		return rh, err
	}
	b := callBody{TaskName: rh.TaskName, WasmName: "-", ExportFunc: "-"}
	if err := checkLimits(&b); err != nil {
		return rh, err
	}
	if rh.Params, err = queryParams(query); err != nil {
		return rh, err
	}
	return rh, nil
}

// queryParams turns ?params=1,2 into the JSON list /call takes, ["1","2"];
// the values are parsed as /call's against the export's signature. Any
// other query key is refused, so that a typo is not silently ignored.
func queryParams(query string) (json.RawMessage, error) {
	if query == "" {
		return nil, nil
	}
	if len(query) > MaxParamsLen {
		return nil, errorf(apierr.InvalidParams, "query string is %d bytes, over the limit of %d", len(query), MaxParamsLen)
	}
	var list []string
	seen := false
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k != "params" {
			return nil, errorf(apierr.BadRequest, "query key %s is not known: /run takes only params (?params=1,2)", quote(k))
		}
		if seen {
			return nil, errorf(apierr.BadRequest, "params is given twice in the query; send one list, ?params=1,2")
		}
		seen = true
		if v == "" {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			// Values are numbers: no escapes but %2D for a minus sign in
			// clients that encode it, and + or %2B.
			p = strings.NewReplacer("%2D", "-", "%2d", "-", "%2B", "+", "%2b", "+").Replace(p)
			list = append(list, p)
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, errorf(apierr.InvalidParams, "params: %v", err)
	}
	return b, nil
}

// run is POST /run/:module and /run/:module/:export: the request body is
// the call's stdin, the answer's body its stdout.
func (h *handler) run(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	arrived := time.Now()
	rh, err := parseRunHeaders(r.Header, r.URL.RawQuery)
	if err != nil {
		writeError(w, err)
		return
	}
	export := ps.ByName("export")
	if export == "" {
		export = "_start"
	}
	b := callBody{WasmName: ps.ByName("module"), ExportFunc: export, TaskName: rh.TaskName}
	if err := checkLimits(&b); err != nil {
		writeError(w, err)
		return
	}
	release, err := h.budget(r, int64(h.o.MaxInput))
	if err != nil {
		writeError(w, err)
		return
	}
	defer release() // the input is held until the answer
	in, err := readInput(w, r, h.o.MaxInput)
	if err != nil {
		writeError(w, err)
		return
	}
	spec := CallSpec{Arrived: arrived, Module: b.WasmName, Export: b.ExportFunc, TaskName: b.TaskName,
		Params: rh.Params, ResultsLength: -1, Declared: rh.Declared, Deadline: rh.Deadline, Input: in}
	res, err := h.b.Call(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Length", strconv.Itoa(len(res.Stdout)))
	hd.Set("Server-Timing", serverTiming(res))
	hd.Set(headerTaskID, strconv.FormatUint(res.TaskID, 10))
	hd.Set(headerWorker, res.Worker)
	if res.ExitCode != nil {
		hd.Set(headerExitCode, strconv.Itoa(*res.ExitCode))
	}
	if len(res.Types) > 0 {
		hd.Set(headerResult, wasmval.Seed(res.Types, res.Results))
	}
	if res.StdoutBytes > int64(len(res.Stdout)) {
		hd.Set(headerTruncated, "true")
		hd.Set(headerOutBytes, strconv.FormatInt(res.StdoutBytes, 10))
	}
	if len(res.Stderr) > 0 {
		hd.Set(headerStderr, escapeHeader(res.Stderr[:min(len(res.Stderr), stderrHeaderMax)]))
		hd.Set(headerErrBytes, strconv.FormatInt(max(res.StderrBytes, int64(len(res.Stderr))), 10))
	}
	if res.DeadlineMet != nil {
		hd.Set(headerMet, strconv.FormatBool(*res.DeadlineMet))
	}
	if res.EstimateSource != "" {
		hd.Set(headerEstimate, strconv.FormatFloat(ms(res.Estimate), 'f', -1, 64)+"; source="+res.EstimateSource)
	}
	w.WriteHeader(http.StatusOK)
	w.Write(res.Stdout)
}

// readInput reads a raw request's body, the call's stdin, refusing one
// over limit bytes with a 413: before reading any of it when its length
// is declared, else as soon as it goes over. A declared length sizes the
// buffer once.
func readInput(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	tooLarge := func() error {
		return errorf(apierr.TooLarge, "request body (the call's stdin) is larger than %d bytes, the daemon's --max-input", limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // ReadFrom wants room to see EOF
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	var ne net.Error
	var ae *apierr.Error
	switch {
	case err == nil:
		return buf.Bytes(), nil
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case errors.As(err, &ae):
		return nil, err // the input budget's refusal
	case errors.As(err, &ne) && ne.Timeout():
		return nil, errorf(apierr.BadRequest, "read request body: it did not arrive within the server's read timeout (--read-timeout)")
	}
	return nil, errorf(apierr.BadRequest, "read request body: %v", err)
}

// serverTiming is the Server-Timing header of a call (W3C Server Timing),
// milliseconds: queue (arrival → start on its lane), inst (instantiate),
// exec, stopped (preempted, when it was) and total (arrival → result).
func serverTiming(res *CallResult) string {
	b := make([]byte, 0, 96)
	add := func(name string, d time.Duration) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, name...)
		b = append(b, ";dur="...)
		b = strconv.AppendFloat(b, ms(d), 'f', -1, 64)
	}
	add("queue", res.Queue)
	add("inst", res.Instantiate)
	add("exec", res.Exec)
	if res.Stopped > 0 {
		add("stopped", res.Stopped)
	}
	add("total", res.Total)
	return string(b)
}

// escapeHeader makes b a header value: printable ASCII as it is, every
// other byte and '%' as %XX, so that a client decodes it as a URL
// component (decodeURIComponent, urllib.parse.unquote).
func escapeHeader(b []byte) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '%' {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hex[c>>4], hex[c&15])
	}
	return string(out)
}
