package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" for success
		check   func(t *testing.T, w Workload)
	}{
		{name: "two classes", in: `{"modules":{"fib.wasm":"../testdata/fib.wasm","abs.wasm":"/abs/x.wasm"},"classes":[
			{"name":"long","module":"fib.wasm","export":"fib_r","params":["30"],"deadline_ms":100,"share":1},
			{"name":"short","module":"fib.wasm","export":"fib_r","params":[27],"deadline_ms":20,"declared_ms":2.5,"share":3}]}`,
			check: func(t *testing.T, w Workload) {
				if got, want := w.Modules["fib.wasm"], filepath.Join("/work/w", "../testdata/fib.wasm"); got != want {
					t.Errorf("module path: got %q, want %q", got, want)
				}
				if got := w.Modules["abs.wasm"]; got != "/abs/x.wasm" {
					t.Errorf("absolute module path: got %q, want /abs/x.wasm", got)
				}
				if len(w.Classes) != 2 || w.Classes[1].Share != 3 || w.Classes[1].DeclaredMs != 2.5 {
					t.Errorf("classes: got %+v", w.Classes)
				}
			}},
		{name: "share defaults to 1", in: `{"classes":[{"name":"n","module":"m","export":"noop"}]}`,
			check: func(t *testing.T, w Workload) {
				if got := w.Classes[0].Share; got != 1 {
					t.Errorf("share: got %v, want 1", got)
				}
			}},
		{name: "no classes", in: `{"classes":[]}`, wantErr: "no classes"},
		{name: "unknown field", in: `{"classes":[{"name":"n","module":"m","export":"e","deadline":5}]}`, wantErr: "unknown field"},
		{name: "trailing data", in: `{"classes":[{"name":"n","module":"m","export":"e"}]} {}`, wantErr: "after the JSON"},
		{name: "duplicate name", in: `{"classes":[{"name":"n","module":"m","export":"e"},{"name":"n","module":"m","export":"e"}]}`, wantErr: "used twice"},
		{name: "reserved name", in: `{"classes":[{"name":"total","module":"m","export":"e"}]}`, wantErr: "reserved"},
		{name: "no name", in: `{"classes":[{"module":"m","export":"e"}]}`, wantErr: "name is missing"},
		{name: "no module", in: `{"classes":[{"name":"n","export":"e"}]}`, wantErr: "module is missing"},
		{name: "no export", in: `{"classes":[{"name":"n","module":"m"}]}`, wantErr: "export is missing"},
		{name: "negative deadline", in: `{"classes":[{"name":"n","module":"m","export":"e","deadline_ms":-1}]}`, wantErr: "negative"},
		{name: "zero share", in: `{"classes":[{"name":"n","module":"m","export":"e","share":0}]}`, wantErr: "not positive"},
		{name: "bool param", in: `{"classes":[{"name":"n","module":"m","export":"e","params":[true]}]}`, wantErr: "params[0]"},
		{name: "empty module path", in: `{"modules":{"m":""},"classes":[{"name":"n","module":"m","export":"e"}]}`, wantErr: "both must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWorkload([]byte(tt.in), "/work/w")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			tt.check(t, w)
		})
	}
}

func TestCallBody(t *testing.T) {
	tests := []struct {
		c    Class
		want string
	}{
		{Class{Module: "fib.wasm", Export: "fib_r", Params: []json.RawMessage{[]byte(`"30"`)}, DeadlineMs: 100},
			`{"wasm_name":"fib.wasm","export_func":"fib_r","params":["30"],"expected_deadline":"100"}`},
		{Class{Module: "m", Export: "noop"},
			`{"wasm_name":"m","export_func":"noop","params":[]}`},
		{Class{Module: "m", Export: "add", ParamType: []byte(`"i32"`), Params: []json.RawMessage{[]byte(`1`), []byte(`2`)}, DeclaredMs: 0.5, DeadlineMs: 2.25},
			`{"wasm_name":"m","export_func":"add","param_type":"i32","params":[1,2],"expected_execution_time":"0.5","expected_deadline":"2.25"}`},
	}
	for _, tt := range tests {
		if got := string(tt.c.callBody()); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

func TestPicker(t *testing.T) {
	classes := []Class{{Share: 1}, {Share: 3}, {Share: 0.5}}
	p := newPicker(classes)
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, len(classes))
	const n = 90000
	for range n {
		counts[p.pick(r)]++
	}
	for i, f := range fractions(classes) {
		got := float64(counts[i]) / n
		if got < f-0.01 || got > f+0.01 {
			t.Errorf("class %d: got fraction %.4f, want %.4f ± 0.01", i, got, f)
		}
	}
	if got := newPicker([]Class{{Share: 2}}).pick(r); got != 0 {
		t.Errorf("one class: got %d, want 0", got)
	}
}

// TestBenchWorkloads parses the scenario workloads bench/bench.mk runs, so
// that a broken one fails here rather than after a benchmark's warm-up.
func TestBenchWorkloads(t *testing.T) {
	paths, err := filepath.Glob("../../bench/workloads/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no workload in bench/workloads: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ParseWorkload(data, filepath.Dir(p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		for name, path := range w.Modules {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: module %s: %v", p, name, err)
			}
		}
	}
}
