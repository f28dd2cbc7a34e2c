package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
)

// Workload is a load mix: the modules to register and the classes of calls
// to send. It is read from a JSON file (see docs/hyper-bench.md):
//
//	{
//	  "modules": {"fib.wasm": "../../testdata/fib.wasm"},
//	  "classes": [
//	    {"name": "fib30", "module": "fib.wasm", "export": "fib_r",
//	     "params": ["30"], "deadline_ms": 100, "share": 1}
//	  ]
//	}
type Workload struct {
	// Modules maps a module name (the wasm_name of calls) to its .wasm file.
	// A relative path is relative to the workload file's directory; after
	// [ParseWorkload] every path is resolved. Only prepare reads it; it may
	// be empty when the modules are registered already.
	Modules map[string]string `json:"modules,omitempty"`
	// Classes are the kinds of calls, at least one, with unique names.
	Classes []Class `json:"classes"`
}

// Class is one kind of call in a workload.
type Class struct {
	// Name identifies the class in results and reports.
	Name string `json:"name"`
	// Module and Export are the wasm_name and export_func of the call.
	Module string `json:"module"`
	Export string `json:"export"`
	// Params are the call's params, JSON strings or numbers, sent as given.
	Params []json.RawMessage `json:"params,omitempty"`
	// ParamType is sent as param_type when set; absent lets the server take
	// the export's signature.
	ParamType json.RawMessage `json:"param_type,omitempty"`
	// DeadlineMs is the relative deadline D in milliseconds; 0 is a
	// best-effort call.
	DeadlineMs float64 `json:"deadline_ms,omitempty"`
	// DeclaredMs is the declared execution time C in milliseconds, sent as
	// expected_execution_time; 0 declares none.
	DeclaredMs float64 `json:"declared_ms,omitempty"`
	// Share is the class's weight in the mix: a call is of this class with
	// probability Share / (sum of shares). Omitted means 1.
	Share float64 `json:"share"`
	// Frames, when set, makes every call carry a camera frame of the
	// smart-traffic example (examples/traffic) as the guest's stdin, in
	// input_base64: see frames.go and -mode cameras.
	Frames *Frames `json:"frames,omitempty"`
	// Fields are more fields of the call's JSON body, sent as given: "args",
	// a chain's "then", and whatever else the server takes. They may not
	// replace a field hyper-bench sets.
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
}

// ownFields are the body fields hyper-bench sets itself.
var ownFields = []string{"wasm_name", "export_func", "param_type", "params", "expected_execution_time",
	"expected_deadline", "input", "input_base64"}

// ParseWorkload decodes and validates a workload file's contents. dir is the
// directory relative module paths are resolved against.
func ParseWorkload(data []byte, dir string) (Workload, error) {
	var raw struct {
		Modules map[string]string `json:"modules"`
		Classes []struct {
			Class
			Share *float64 `json:"share"`
		} `json:"classes"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Workload{}, fmt.Errorf("decode workload: %w", err)
	}
	if dec.More() {
		return Workload{}, errors.New("decode workload: data after the JSON object")
	}
	w := Workload{Modules: map[string]string{}}
	for name, path := range raw.Modules {
		if name == "" || path == "" {
			return Workload{}, fmt.Errorf("workload modules: name %q with path %q: both must be set", name, path)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		w.Modules[name] = path
	}
	if len(raw.Classes) == 0 {
		return Workload{}, errors.New("workload: no classes")
	}
	seen := map[string]bool{}
	for i, rc := range raw.Classes {
		c := rc.Class
		c.Share = 1
		if rc.Share != nil {
			c.Share = *rc.Share
		}
		if err := c.validate(); err != nil {
			return Workload{}, fmt.Errorf("workload class %d (%q): %w", i, c.Name, err)
		}
		if seen[c.Name] {
			return Workload{}, fmt.Errorf("workload class %d: name %q is used twice", i, c.Name)
		}
		seen[c.Name] = true
		w.Classes = append(w.Classes, c)
	}
	return w, nil
}

func (c Class) validate() error {
	switch {
	case c.Name == "":
		return errors.New("name is missing")
	case c.Name == totalName:
		return fmt.Errorf("name %q is reserved for the sum of all classes", totalName)
	case c.Module == "":
		return errors.New("module is missing")
	case c.Export == "":
		return errors.New("export is missing")
	case !(c.DeadlineMs >= 0):
		return fmt.Errorf("deadline_ms %v is negative", c.DeadlineMs)
	case !(c.DeclaredMs >= 0):
		return fmt.Errorf("declared_ms %v is negative", c.DeclaredMs)
	case !(c.Share > 0):
		return fmt.Errorf("share %v is not positive", c.Share)
	}
	for k, v := range c.Fields {
		if slices.Contains(ownFields, k) {
			return fmt.Errorf("fields: %q is set by hyper-bench (from the class's own fields)", k)
		}
		if !json.Valid(v) {
			return fmt.Errorf("fields: %q is not JSON", k)
		}
	}
	if c.Frames != nil {
		if err := c.Frames.validate(); err != nil {
			return fmt.Errorf("frames: %w", err)
		}
	}
	for j, p := range c.Params {
		var v any
		if err := json.Unmarshal(p, &v); err != nil {
			return fmt.Errorf("params[%d]: %w", j, err)
		}
		switch v.(type) {
		case string, float64:
		default:
			return fmt.Errorf("params[%d]: want a string or a number, got %s", j, p)
		}
	}
	return nil
}

// callBody is the JSON body of a /call or /test request for c. Numbers go
// as JSON strings, as the seed's clients send them, so that every server
// that accepts the seed's clients accepts hyper-bench.
func (c Class) callBody() []byte {
	type body struct {
		WasmName   string            `json:"wasm_name"`
		ExportFunc string            `json:"export_func"`
		ParamType  json.RawMessage   `json:"param_type,omitempty"`
		Params     []json.RawMessage `json:"params"`
		Declared   string            `json:"expected_execution_time,omitempty"`
		Deadline   string            `json:"expected_deadline,omitempty"`
	}
	b := body{WasmName: c.Module, ExportFunc: c.Export, ParamType: c.ParamType, Params: c.Params}
	if b.Params == nil {
		b.Params = []json.RawMessage{}
	}
	if c.DeclaredMs > 0 {
		b.Declared = strconv.FormatFloat(c.DeclaredMs, 'f', -1, 64)
	}
	if c.DeadlineMs > 0 {
		b.Deadline = strconv.FormatFloat(c.DeadlineMs, 'f', -1, 64)
	}
	out, err := json.Marshal(b)
	if err != nil {
		// Every field is a string or JSON validated by ParseWorkload.
		panic("hyper-bench: marshal call body: " + err.Error())
	}
	if len(c.Fields) == 0 {
		return out
	}
	return withFields(out, c.Fields)
}

// withFields returns the JSON object body with fields added (keys in
// sorted order, as encoding/json writes a map).
func withFields(body []byte, fields map[string]json.RawMessage) []byte {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &m); err != nil {
		panic("hyper-bench: call body is not an object: " + err.Error())
	}
	for k, v := range fields {
		m[k] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		// Every value is JSON validated by ParseWorkload.
		panic("hyper-bench: marshal call body: " + err.Error())
	}
	return out
}

// picker chooses classes by share.
type picker struct {
	cum []float64 // cumulative shares
}

func newPicker(classes []Class) picker {
	p := picker{cum: make([]float64, len(classes))}
	sum := 0.0
	for i, c := range classes {
		sum += c.Share
		p.cum[i] = sum
	}
	return p
}

// pick returns a class index with probability proportional to its share.
func (p picker) pick(r *rand.Rand) int {
	if len(p.cum) == 1 {
		return 0
	}
	x := r.Float64() * p.cum[len(p.cum)-1]
	for i, c := range p.cum {
		if x < c {
			return i
		}
	}
	return len(p.cum) - 1
}

// fractions returns each class's share divided by the sum of shares.
func fractions(classes []Class) []float64 {
	sum := 0.0
	for _, c := range classes {
		sum += c.Share
	}
	out := make([]float64, len(classes))
	for i, c := range classes {
		out[i] = c.Share / sum
	}
	return out
}
