package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// Bounds of one register form.
const (
	// MaxModulesPerForm bounds the module files of one form.
	MaxModulesPerForm = 16
	// maxFormParts bounds all the parts of one form: its files and a few
	// fields (export_func, param_type, params, replace), which a client
	// may repeat, each time read and parsed.
	maxFormParts = MaxModulesPerForm + 16
	// maxFormField bounds a non-file form field.
	maxFormField = 64 << 10
)

// FormCap is the largest register form with modules of at most maxUpload
// bytes: MaxModulesPerForm of them and their fields. A body declared
// larger is refused before it is read.
func FormCap(maxUpload int64) int64 {
	return MaxModulesPerForm * (maxUpload + maxFormField)
}

// uploadRetry is the Retry-After of a register refused because uploads in
// flight hold the upload budget: a register holds it while its modules
// are compiled and stored, a few seconds.
const uploadRetry = 2 * time.Second

// spoolChunk is how much of the budget a form takes at a time as its
// files arrive.
const spoolChunk = 1 << 20

// uploadIdle is how long a register form may send nothing before its
// connection is dropped, its files removed and its share of the budget
// given back: a client that stalls holds what it sent for no longer.
const uploadIdle = 30 * time.Second

// Uploads is the spool of the register forms in flight (POST /register,
// GET /init): each module file is written to a file in its directory as it
// arrives, hashed on the way, and removed once its register is over; a
// module is never gathered in memory. It bounds the bytes all forms in
// flight may hold at once (the budget): a form takes its share as its
// files arrive, a MiB ahead, so that a client that stalls holds no more
// than it sent; one whose Content-Length does not fit what is left is
// refused before a byte is read. A form that does not fit now is answered
// 503 with Retry-After; one that could never fit, 413.
//
// Its methods are safe for concurrent use.
type Uploads struct {
	dir string
	max int64

	mu   sync.Mutex
	used int64
}

// NewUploads returns a spool in dir (os.TempDir() when empty), whose forms
// hold at most max bytes at once. The caller empties dir at start: files
// left there by a crash belong to no request.
func NewUploads(dir string, max int64) *Uploads {
	if dir == "" {
		dir = os.TempDir()
	}
	return &Uploads{dir: dir, max: max}
}

// InFlight returns the bytes the forms in flight hold.
func (u *Uploads) InFlight() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used
}

// hold is one form's share of the budget and its spooled files.
type hold struct {
	u     *Uploads
	held  int64 // bytes of the budget taken
	used  int64 // bytes spooled
	files []string
	once  sync.Once
}

// grow takes more of the budget, so that the form holds at least n bytes.
func (h *hold) grow(n int64) error {
	u := h.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if n <= h.held {
		return nil
	}
	if err := u.fitsLocked(n - h.held); err != nil {
		return err
	}
	u.used += n - h.held
	h.held = n
	return nil
}

// fitsLocked tells whether n more bytes fit the budget now; u.mu held.
func (u *Uploads) fitsLocked(n int64) error {
	if n > u.max {
		return errorf(apierr.TooLarge, "the upload (%s) is larger than the daemon takes at once (%s)", mib(n), mib(u.max))
	}
	if u.used+n > u.max {
		e := apierr.New(apierr.Unschedulable,
			"uploads in flight hold %s of the %s the daemon takes at once, and this one needs %s; try again in %v",
			mib(u.used), mib(u.max), mib(n), uploadRetry)
		e.RetryAfter = uploadRetry
		return e
	}
	return nil
}

// fits tells whether n more bytes fit the budget now, taking nothing.
func (u *Uploads) fits(n int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fitsLocked(n)
}

// trim gives back what the form holds beyond the bytes it spooled.
func (h *hold) trim() {
	h.u.mu.Lock()
	defer h.u.mu.Unlock()
	if h.held > h.used {
		h.u.used -= h.held - h.used
		h.held = h.used
	}
}

// release removes the form's files and gives its budget back; later calls
// do nothing.
func (h *hold) release() {
	h.once.Do(func() {
		for _, f := range h.files {
			os.Remove(f)
		}
		h.u.mu.Lock()
		h.u.used -= h.held
		h.u.mu.Unlock()
	})
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// spoolWriter writes a module file to the spool, taking budget for the
// bytes beyond what the form holds; err is the first failure of its own,
// to tell it from the body's.
type spoolWriter struct {
	f   *os.File
	h   *hold
	sum hash.Hash
	err error
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if n := w.h.used + int64(len(p)); n > w.h.held {
		// A MiB ahead, or what is left of the budget; else just enough.
		want := max(n, min(w.h.u.max, w.h.held+spoolChunk))
		if w.err = w.h.grow(want); w.err != nil && want > n {
			w.err = w.h.grow(n)
		}
		if w.err != nil {
			return 0, w.err
		}
	}
	n, err := w.f.Write(p)
	w.h.used += int64(n)
	w.sum.Write(p[:n])
	if err != nil {
		w.err = errorf(apierr.Internal, "spool the upload: %v", err)
	}
	return n, w.err
}

// spool writes one module file, read from r, to the spool under h: at
// most maxUpload bytes.
func (u *Uploads) spool(h *hold, name string, r io.Reader, maxUpload int64) (Upload, error) {
	f, err := os.CreateTemp(u.dir, "upload-*.wasm")
	if err != nil {
		return Upload{}, errorf(apierr.Internal, "spool the upload: %v", err)
	}
	h.files = append(h.files, f.Name())
	w := &spoolWriter{f: f, h: h, sum: sha256.New()}
	n, err := io.Copy(w, io.LimitReader(r, maxUpload+1))
	if cerr := f.Close(); err == nil && cerr != nil {
		err = errorf(apierr.Internal, "spool the upload: %v", cerr)
	}
	var mbe *http.MaxBytesError
	switch {
	case w.err != nil:
		return Upload{}, w.err
	case errors.As(err, &mbe):
		return Upload{}, errorf(apierr.TooLarge, "the register form is larger than %d bytes", mbe.Limit)
	case err != nil:
		return Upload{}, errorf(apierr.BadRequest, "read %s: %v", name, err)
	case n > maxUpload:
		return Upload{}, errorf(apierr.TooLarge, "module %q is larger than %d bytes", name, maxUpload)
	}
	return Upload{Name: name, File: f.Name(), Size: n, SHA256: hex.EncodeToString(w.sum.Sum(nil))}, nil
}

// UploadChecker is implemented by a Backend that can refuse a module file
// by its name alone — a name that can never be registered, a registry
// that is full — so that a form is refused before its bytes are read.
// Register checks everything again.
type UploadChecker interface {
	CheckUpload(name string) error
}

// DecodeRegister reads a multipart register form: every file part is a
// module named by its field name, spooled to disk by u as it arrives (at
// most maxUpload bytes each); the fields export_func, param_type, params
// and replace say what to calibrate and whether to replace. check, if not
// nil, vets each file's name before its bytes are read. The caller must
// call spec.Release once the register is over; on an error, everything is
// released already.
func (u *Uploads) DecodeRegister(r *http.Request, maxUpload int64, check func(name string) error) (spec RegisterSpec, err error) {
	h := &hold{u: u}
	spec.release = h.release
	defer func() {
		if err != nil {
			h.release()
			spec = RegisterSpec{}
		}
	}()
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return spec, errorf(apierr.BadRequest, "register wants a multipart/form-data body, as curl -F \"fib.wasm=@fib.wasm\" sends")
	}
	if limit := FormCap(maxUpload); r.ContentLength > limit {
		return spec, errorf(apierr.TooLarge, "the register form is larger than %d bytes (%d modules of at most %d bytes)", limit, MaxModulesPerForm, maxUpload)
	}
	if r.ContentLength > 0 {
		if err := u.fits(r.ContentLength); err != nil {
			return spec, err
		}
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return spec, errorf(apierr.BadRequest, "read form: %v", err)
	}
	seen := map[string]bool{}
	for parts := 1; ; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return spec, errorf(apierr.TooLarge, "the register form is larger than %d bytes", mbe.Limit)
		}
		if err != nil {
			return spec, errorf(apierr.BadRequest, "read form: %v", err)
		}
		if parts > maxFormParts {
			return spec, errorf(apierr.TooLarge, "a register form has at most %d parts: %d module files and their fields", maxFormParts, MaxModulesPerForm)
		}
		name := p.FormName()
		if name == InputField {
			// The representative input, spooled like a module (the
			// budget counts it); its size is checked against
			// --max-input once the form is read (loadInput).
			if spec.input != nil {
				return spec, errorf(apierr.BadRequest, "form field input comes twice; send one, -F input=@file")
			}
			up, err := u.spool(h, name, p, maxUpload)
			if err != nil {
				return spec, err
			}
			spec.input = &up
			continue
		}
		if p.FileName() == "" {
			if err := spec.field(name, p); err != nil {
				return spec, err
			}
			continue
		}
		switch {
		case len(spec.Modules) == MaxModulesPerForm:
			return spec, errorf(apierr.TooLarge, "at most %d modules per form", MaxModulesPerForm)
		case seen[name]:
			return spec, errorf(apierr.BadRequest, "module %q comes twice in the form", name)
		}
		seen[name] = true
		if check != nil {
			if err := check(name); err != nil {
				return spec, err
			}
		}
		up, err := u.spool(h, name, p, maxUpload)
		if err != nil {
			return spec, err
		}
		spec.Modules = append(spec.Modules, up)
	}
	h.trim()
	return spec, nil
}

func (spec *RegisterSpec) field(name string, p *multipart.Part) error {
	b, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
	if err != nil || len(b) > maxFormField {
		return errorf(apierr.BadRequest, "form field %q is unreadable or longer than %d bytes", name, maxFormField)
	}
	v := strings.TrimSpace(string(b))
	switch name {
	case "export_func":
		spec.Export = v
	case "param_type":
		spec.ParamTypes = jsonOrString(v)
	case "params":
		spec.Params = jsonList(v)
	case "replace":
		spec.Replace = v == "true" || v == "1" || v == "yes"
	case "args":
		b := callBody{}
		if err := json.Unmarshal(jsonList(v), &b.Args); err != nil {
			return errorf(apierr.BadRequest, "form field args must be a JSON list of strings or a comma-separated list: %v", err)
		}
		spec.Args = b.Args
	case "env":
		var env map[string]string
		if err := json.Unmarshal([]byte(v), &env); err != nil {
			return errorf(apierr.BadRequest, `form field env must be a JSON object of strings, e.g. {"KEY":"value"}: %v`, err)
		}
		spec.env = env
	default:
		return errorf(apierr.BadRequest,
			"form field %q is neither a module file (send it as %s=@file.wasm) nor one of export_func, param_type, params, args, env, input, replace", name, name)
	}
	return nil
}

// InputField is the register form's field of the representative input, a
// file (-F input=@request.json): no module can be named so.
const InputField = "input"

// loadInput checks spec's args, env and input (--max-input: limit) and
// reads the input into spec.Input: calibrations need it in memory, to send
// it to benchd.
func (spec *RegisterSpec) loadInput(limit int) error {
	b := callBody{Args: spec.Args, Env: spec.env}
	var cs CallSpec
	if err := decodeInput(&b, &cs); err != nil {
		return err
	}
	spec.Args, spec.Env = cs.Args, cs.Env
	if spec.input == nil {
		return nil
	}
	if spec.input.Size > int64(limit) {
		return errorf(apierr.TooLarge, "input is %d bytes, over the limit of %d (the daemon's --max-input)", spec.input.Size, limit)
	}
	in, err := os.ReadFile(spec.input.File)
	if err != nil {
		return errorf(apierr.Internal, "read the spooled input: %v", err)
	}
	spec.Input = in
	return nil
}

// jsonOrString takes a form value that is JSON (a list) or a bare word.
func jsonOrString(v string) json.RawMessage {
	if strings.HasPrefix(v, "[") {
		return json.RawMessage(v)
	}
	b, _ := json.Marshal(v)
	return b
}

// jsonList takes params as a JSON list or a comma-separated list.
func jsonList(v string) json.RawMessage {
	if strings.HasPrefix(v, "[") {
		return json.RawMessage(v)
	}
	var items []string
	if v != "" {
		for _, s := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(s))
		}
	}
	b, _ := json.Marshal(items)
	return b
}

type registerAnswer struct {
	Status string `json:"status"`
	URL    string `json:"url"`
	moduleAnswer
	Modules []moduleAnswer `json:"modules"`
}

type moduleAnswer struct {
	WasmName     string  `json:"wasm_name"`
	SHA256       string  `json:"sha256"`
	Size         int     `json:"size"`
	Unchanged    bool    `json:"unchanged"`
	Exports      any     `json:"exports"`
	Expected     string  `json:"expected_execution_time,omitempty"`
	ExpectedMs   float64 `json:"expected_execution_time_ms,omitempty"`
	CompileMs    float64 `json:"compile_ms"`
	Calibrations any     `json:"calibrations"`
}

func (h *handler) register(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	rc := http.NewResponseController(w)
	r.Body = idleBody{http.MaxBytesReader(w, r.Body, FormCap(h.o.MaxUpload)), rc}
	var check func(string) error
	if c, ok := h.b.(UploadChecker); ok {
		check = c.CheckUpload
	}
	spec, err := h.o.Uploads.DecodeRegister(r, h.o.MaxUpload, check)
	// Read whole: the deadline must not end the connection, and with it
	// the request's context, while the register runs.
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		// What is left of a refused form is not read (net/http would
		// read on, up to 256 KiB, before answering): the connection
		// closes after the answer.
		w.Header().Set("Connection", "close")
		writeError(w, err)
		return
	}
	defer spec.Release()
	if err := spec.loadInput(h.o.MaxInput); err != nil {
		writeError(w, err)
		return
	}
	h.registerSpec(w, r, spec)
}

// idleBody is a request body whose every read must come within
// uploadIdle of its call.
type idleBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b idleBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(uploadIdle))
	return b.ReadCloser.Read(p)
}

// registerSpec registers spec and writes the answer.
func (h *handler) registerSpec(w http.ResponseWriter, r *http.Request, spec RegisterSpec) {
	regs, err := h.b.Register(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	out := registerAnswer{Status: "Success", URL: h.o.URL + "/call"}
	for _, m := range regs {
		a := moduleAnswer{WasmName: m.Name, SHA256: m.SHA256, Size: m.Size, Unchanged: m.Unchanged,
			Exports: m.Exports, CompileMs: ms(m.Compile), Calibrations: m.Calibrations}
		if m.Expected > 0 {
			a.Expected, a.ExpectedMs = CeilMs(m.Expected), ms(m.Expected)
		}
		out.Modules = append(out.Modules, a)
	}
	out.moduleAnswer = out.Modules[0]
	writeJSON(w, http.StatusOK, out)
}
