package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// server answers POST /call. Its fields are set once by newServer and only
// read afterwards, so requests run concurrently without locks.
type server struct {
	rt   wazero.Runtime
	mods map[string]*module
	log  *slog.Logger
}

type module struct {
	compiled wazero.CompiledModule
	exports  map[string]api.FunctionDefinition
}

// newServer compiles every *.wasm file in dir. Files that do not compile
// (the fixtures include deliberately broken ones) are logged and skipped.
func newServer(ctx context.Context, dir string, log *slog.Logger) (*server, error) {
	// The compiler without WithCloseOnContextDone: the same engine setting
	// as hyper-sched's workers, so the baseline runs the same machine code.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil || len(paths) == 0 {
		rt.Close(ctx)
		return nil, fmt.Errorf("find modules in %s: no *.wasm file", dir)
	}
	s := &server{rt: rt, mods: map[string]*module{}, log: log}
	for _, p := range paths {
		wasm, err := os.ReadFile(p)
		if err != nil {
			rt.Close(ctx)
			return nil, fmt.Errorf("read module: %w", err)
		}
		c, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			log.Warn("skip module", "module", filepath.Base(p), "err", err)
			continue
		}
		s.mods[filepath.Base(p)] = &module{compiled: c, exports: c.ExportedFunctions()}
	}
	return s, nil
}

// Names returns the registered module names, sorted.
func (s *server) Names() []string {
	var out []string
	for n := range s.mods {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close releases the runtime and every compiled module.
func (s *server) Close(ctx context.Context) error { return s.rt.Close(ctx) }

type callBody struct {
	WasmName   string          `json:"wasm_name"`
	ExportFunc string          `json:"export_func"`
	Params     json.RawMessage `json:"params"`
	Deadline   wasmval.Flex    `json:"expected_deadline"`
}

type callAnswer struct {
	Status      string          `json:"status"`
	Error       string          `json:"error,omitempty"`
	Result      string          `json:"result,omitempty"`
	Results     []wasmval.Value `json:"results,omitempty"`
	DeadlineMet *bool           `json:"deadline_met,omitempty"`
	Timings     *timings        `json:"timings_us,omitempty"`
}

type timings struct {
	Instantiate int64 `json:"instantiate"`
	Exec        int64 `json:"exec"`
	Total       int64 `json:"total"`
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.URL.Path != "/call" || r.Method != http.MethodPost {
		writeJSON(w, http.StatusNotFound, callAnswer{Status: "Error_Bad_request", Error: "only POST /call is served"})
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, callAnswer{Status: "Error_Bad_request", Error: "read body: " + err.Error()})
		return
	}
	code, a := s.call(r.Context(), b, arrived)
	writeJSON(w, code, a)
}

// call runs one /call body that arrived at arrived.
func (s *server) call(ctx context.Context, body []byte, arrived time.Time) (int, callAnswer) {
	var c callBody
	if err := json.Unmarshal(body, &c); err != nil {
		return http.StatusBadRequest, callAnswer{Status: "Error_Bad_request", Error: "decode body: " + err.Error()}
	}
	deadline, _, err := c.Deadline.Float64()
	if err != nil || deadline < 0 {
		return http.StatusBadRequest, callAnswer{Status: "Error_Invalid_params", Error: "expected_deadline must be milliseconds"}
	}
	m, ok := s.mods[c.WasmName]
	if !ok {
		return http.StatusNotFound, callAnswer{Status: "Error_Invalid_wasm_name", Error: fmt.Sprintf("no module %q", c.WasmName)}
	}
	def, ok := m.exports[c.ExportFunc]
	if !ok {
		return http.StatusNotFound, callAnswer{Status: "Error_Invalid_export_func", Error: fmt.Sprintf("no export %q", c.ExportFunc)}
	}
	// The same conversion as hyper-sched's engine: v128 and references
	// cannot be passed as JSON.
	in, ok := engine.ValueTypes(def.ParamTypes())
	if !ok {
		return http.StatusBadRequest, callAnswer{Status: "Error_Invalid_params", Error: "a parameter type is not i32, i64, f32 or f64"}
	}
	out, ok := engine.ValueTypes(def.ResultTypes())
	if !ok {
		return http.StatusInternalServerError, callAnswer{Status: "Error_Internal", Error: "a result type is not i32, i64, f32 or f64"}
	}
	params, err := wasmval.Params(c.Params, in, 0)
	if err != nil {
		return http.StatusBadRequest, callAnswer{Status: "Error_Invalid_params", Error: err.Error()}
	}
	t0 := time.Now()
	// A new, anonymous instance per request: instances share nothing, as
	// in hyper-sched, but nothing bounds how many run at once.
	inst, err := s.rt.InstantiateModule(ctx, m.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		return http.StatusInternalServerError, callAnswer{Status: "Error_Trap", Error: "instantiate: " + err.Error()}
	}
	defer inst.Close(ctx)
	t1 := time.Now()
	res, err := inst.ExportedFunction(c.ExportFunc).Call(ctx, params...)
	t2 := time.Now()
	if err != nil {
		return http.StatusInternalServerError, callAnswer{Status: "Error_Trap", Error: err.Error()}
	}
	a := callAnswer{Status: "Success", Result: wasmval.Seed(out, res), Results: wasmval.JSON(out, res),
		Timings: &timings{Instantiate: t1.Sub(t0).Microseconds(), Exec: t2.Sub(t1).Microseconds()}}
	a.Timings.Total = time.Since(arrived).Microseconds()
	if deadline > 0 {
		met := time.Since(arrived) <= time.Duration(deadline*float64(time.Millisecond))
		a.DeadlineMet = &met
	}
	return http.StatusOK, a
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
