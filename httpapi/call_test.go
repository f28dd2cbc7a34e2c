package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
)

func TestDecodeCall(t *testing.T) {
	at := time.Unix(100, 0)
	tests := []struct {
		name string
		body string
		want CallSpec
		code string // Error_* when decoding must fail
	}{
		{"seed call", `{"wasm_name":"fib.wasm","task_unique_name":"fibabc","export_func":"fib_r","param_type":"i32","params":["30"],"results_length":"1","expected_execution_time":"5","expected_deadline":"35"}`,
			CallSpec{Module: "fib.wasm", TaskName: "fibabc", Export: "fib_r", ResultsLength: 1,
				Declared: 5 * time.Millisecond, Deadline: 35 * time.Millisecond}, ""},
		{"seed test", `{"wasm_name":"fib.wasm","export_func":"fib","param_type":"i32","params":["32"],"results_length":"1","expected_deadline":"30"}`,
			CallSpec{Module: "fib.wasm", Export: "fib", ResultsLength: 1, Deadline: 30 * time.Millisecond}, ""},
		{"numbers", `{"wasm_name":"m","export_func":"f","results_length":1,"expected_execution_time":0.5,"expected_deadline":2}`,
			CallSpec{Module: "m", Export: "f", ResultsLength: 1, Declared: 500 * time.Microsecond, Deadline: 2 * time.Millisecond}, ""},
		{"best effort", `{"wasm_name":"m","export_func":"f"}`, CallSpec{Module: "m", Export: "f", ResultsLength: -1}, ""},
		{"zero deadline is best effort", `{"wasm_name":"m","export_func":"f","expected_deadline":"0"}`,
			CallSpec{Module: "m", Export: "f", ResultsLength: -1}, ""},
		{"no module", `{"export_func":"f"}`, CallSpec{}, "Error_Bad_request"},
		{"no export", `{"wasm_name":"m"}`, CallSpec{}, "Error_Bad_request"},
		{"not json", `wasm`, CallSpec{}, "Error_Bad_request"},
		{"trailing data", `{"wasm_name":"m","export_func":"f"} {}`, CallSpec{}, "Error_Bad_request"},
		{"negative deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"-1"}`, CallSpec{}, "Error_Invalid_params"},
		{"deadline not a number", `{"wasm_name":"m","export_func":"f","expected_deadline":"soon"}`, CallSpec{}, "Error_Invalid_params"},
		{"huge deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"1e12"}`, CallSpec{}, "Error_Invalid_params"},
		{"nesting beyond encoding/json's 10,000 levels", `{"wasm_name":"m","export_func":"f","params":` +
			strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, CallSpec{}, "Error_Bad_request"},
		{"deadline 1 µs", `{"wasm_name":"m","export_func":"f","expected_deadline":"0.001"}`,
			CallSpec{Module: "m", Export: "f", ResultsLength: -1, Deadline: time.Microsecond}, ""},
		{"minus zero deadline is best effort", `{"wasm_name":"m","export_func":"f","expected_deadline":"-0"}`,
			CallSpec{Module: "m", Export: "f", ResultsLength: -1}, ""},
		{"zero execution time is none", `{"wasm_name":"m","export_func":"f","expected_execution_time":0,"expected_deadline":1}`,
			CallSpec{Module: "m", Export: "f", ResultsLength: -1, Deadline: time.Millisecond}, ""},
		// A positive time below 1 µs once became 0: best effort, silently.
		{"deadline 1e-300", `{"wasm_name":"m","export_func":"f","expected_deadline":"1e-300"}`, CallSpec{}, "Error_Invalid_params"},
		{"deadline 1e-300 as a number", `{"wasm_name":"m","export_func":"f","expected_deadline":1e-300}`, CallSpec{}, "Error_Invalid_params"},
		{"deadline below 1 µs", `{"wasm_name":"m","export_func":"f","expected_deadline":"0.0009"}`, CallSpec{}, "Error_Invalid_params"},
		{"execution time 1e-300", `{"wasm_name":"m","export_func":"f","expected_execution_time":"1e-300","expected_deadline":"5"}`, CallSpec{}, "Error_Invalid_params"},
		{"execution time below 1 µs", `{"wasm_name":"m","export_func":"f","expected_execution_time":0.0000001}`, CallSpec{}, "Error_Invalid_params"},
		{"negative tiny deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"-1e-300"}`, CallSpec{}, "Error_Invalid_params"},
		{"negative execution time", `{"wasm_name":"m","export_func":"f","expected_execution_time":-5}`, CallSpec{}, "Error_Invalid_params"},
		{"NaN deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"NaN"}`, CallSpec{}, "Error_Invalid_params"},
		{"infinite deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"Infinity"}`, CallSpec{}, "Error_Invalid_params"},
		{"overflowing deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":1e400}`, CallSpec{}, "Error_Invalid_params"},
		{"overflowing execution time", `{"wasm_name":"m","export_func":"f","expected_execution_time":"-1e400"}`, CallSpec{}, "Error_Invalid_params"},
		{"negative results_length", `{"wasm_name":"m","export_func":"f","results_length":"-1"}`, CallSpec{}, "Error_Invalid_params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCall([]byte(tt.body), at)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("got %+v, want %s", got, tt.code)
				}
				if _, code := StatusOf(err); code != tt.code {
					t.Fatalf("got %v (%s), want %s", err, code, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if !got.Arrived.Equal(at) {
				t.Errorf("arrived: got %v, want %v", got.Arrived, at)
			}
			got.Arrived, got.ParamTypes, got.Params = time.Time{}, nil, nil
			if got.Module != tt.want.Module || got.Export != tt.want.Export || got.TaskName != tt.want.TaskName ||
				got.ResultsLength != tt.want.ResultsLength || got.Declared != tt.want.Declared || got.Deadline != tt.want.Deadline {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestEveryClassMapped makes sure no failure class falls through to 500.
func TestEveryClassMapped(t *testing.T) {
	for c := apierr.Internal; c <= apierr.MethodNotAllowed; c++ {
		if _, ok := classes[c]; !ok {
			t.Errorf("class %d has no HTTP mapping", c)
		}
	}
	status, code := StatusOf(&apierr.Error{Code: apierr.Unschedulable})
	if status != http.StatusServiceUnavailable || code != "Error_Unschedulable" {
		t.Errorf("Unschedulable: got %d %s, want 503 Error_Unschedulable", status, code)
	}
	if status, code := StatusOf(errors.New("boom")); status != 500 || code != "Error_Internal" {
		t.Errorf("plain error: got %d %s, want 500 Error_Internal", status, code)
	}
}

func TestCeilMs(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Microsecond, "1"}, {time.Millisecond, "1"}, {time.Millisecond + 1, "2"}, {22992 * time.Microsecond, "23"}} {
		if got := CeilMs(tt.d); got != tt.want {
			t.Errorf("CeilMs(%v): got %s, want %s", tt.d, got, tt.want)
		}
	}
}

// FuzzDecodeCall: any body decodes to a spec or to a 4xx error, never a
// panic or a 500.
func FuzzDecodeCall(f *testing.F) {
	f.Add([]byte(`{"wasm_name":"fib.wasm","task_unique_name":"fibabc","export_func":"fib_r","param_type":"i32","params":["30"],"results_length":"1","expected_execution_time":"5","expected_deadline":"35"}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","expected_deadline":1e300}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","expected_deadline":1e-300}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","results_length":[1]}`))
	f.Add([]byte(`[[[[[[`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","deadline_at":"1764000000035"}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","deadline_at":1763999999000}`))
	f.Add([]byte(`{"wasm_name":"a","export_func":"f","expected_deadline":"50","then":[{"export_func":"g"},{"wasm_name":"b","export_func":"_start","expected_execution_time":2}]}`))
	f.Add([]byte(`{"wasm_name":"a","export_func":"f","then":[{"export_func":"g"}]}`))
	f.Add([]byte(`{"wasm_name":"a","export_func":"f","expected_deadline":5,"then":[{}]}`))
	f.Add([]byte(`{"wasm_name":"a","export_func":"f","expected_deadline":5,"then":{}}`))
	f.Add([]byte(`{"wasm_name":"a","export_func":"f","expected_deadline":5,"input":"x","then":[{"export_func":"_start","args":["-v"],"env":{"K":"v"}}]}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"_start","input":"h\u00e9","args":["a","b"],"env":{"K":"v"}}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"_start","input_base64":"AAEC/w=="}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","input":"a","input_base64":"YQ=="}`))
	f.Add([]byte(`{"wasm_name":"m","export_func":"f","env":{"A=B":"\u0000"},"args":[null]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := DecodeCall(body, time.UnixMilli(1_764_000_000_000))
		if err != nil {
			// A deadline_at passed at arrival is the one 5xx: 504.
			if status, _ := StatusOf(err); status >= 500 && status != http.StatusGatewayTimeout {
				t.Fatalf("body %q: got status %d, want 4xx", body, status)
			}
			return
		}
		if spec.Declared < 0 || spec.Deadline < 0 || spec.Module == "" || spec.Export == "" ||
			(spec.Declared > 0 && spec.Declared < time.Microsecond) || (spec.Deadline > 0 && spec.Deadline < time.Microsecond) {
			t.Fatalf("body %q: got invalid spec %+v", body, spec)
		}
		if spec.Then != nil && (spec.Deadline == 0 || len(spec.Then) == 0 || len(spec.Then) > MaxThen) {
			t.Fatalf("body %q: got invalid chain %+v", body, spec)
		}
		for i, st := range spec.Then {
			if st.Module == "" || st.Export == "" || st.Declared < 0 || (st.Declared > 0 && st.Declared < time.Microsecond) ||
				len(st.Module) > MaxNameLen || len(st.Export) > MaxExportLen {
				t.Fatalf("body %q: got invalid stage %d %+v", body, i+2, st)
			}
			for _, a := range append(slices.Clone(st.Args), st.Env...) {
				if strings.IndexByte(a, 0) >= 0 {
					t.Fatalf("body %q: got a NUL in stage %d's args or env %q", body, i+2, a)
				}
			}
		}
		for _, a := range append(slices.Clone(spec.Args), spec.Env...) {
			if strings.IndexByte(a, 0) >= 0 {
				t.Fatalf("body %q: got a NUL in args or env %q", body, a)
			}
		}
		for _, kv := range spec.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				t.Fatalf("body %q: got env entry %q without a name", body, kv)
			}
		}
	})
}

// TestDecodeThen: a chain's stages default to the module before them, are
// bounded, need a deadline, and each error names its stage.
func TestDecodeThen(t *testing.T) {
	stage := `{"export_func":"g"}`
	many := "[" + strings.TrimSuffix(strings.Repeat(stage+",", MaxThen+1), ",") + "]"
	for _, tc := range []struct {
		name, body string
		code       apierr.Code
		want       string // in the error, or the stages' modules
	}{
		{"defaults", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"export_func":"g"},{"wasm_name":"b","export_func":"h"},{"export_func":"i","expected_execution_time":"2"}]}`, 0, "[a b b]"},
		{"no deadline", `{"wasm_name":"a","export_func":"f","then":[{"export_func":"g"}]}`, apierr.BadRequest, "then needs expected_deadline"},
		{"empty", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[]}`, apierr.BadRequest, "then is an empty list"},
		{"too many", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":` + many + `}`, apierr.BadRequest, "then has 16 stages, over the limit of 15"},
		{"no export", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"export_func":"g"},{"wasm_name":"b"}]}`, apierr.BadRequest, "stage 3: export_func is missing"},
		{"bad time", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"export_func":"g","expected_execution_time":-1}]}`, apierr.InvalidParams, "stage 2: expected_execution_time"},
		{"bad results_length", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"export_func":"g","results_length":"x"}]}`, apierr.InvalidParams, "stage 2: results_length"},
		{"long name", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"wasm_name":"` + strings.Repeat("m", MaxNameLen+1) + `","export_func":"g"}]}`, apierr.BadRequest, "stage 2: wasm_name is 129 bytes"},
		{"stage env", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":[{"export_func":"g","env":{"A=B":"c"}}]}`, apierr.BadRequest, "then: stage 2: env name"},
		{"not a list", `{"wasm_name":"a","export_func":"f","expected_deadline":9,"then":{}}`, apierr.BadRequest, "not the expected JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := DecodeCall([]byte(tc.body), time.Time{})
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				var mods []string
				for _, st := range spec.Then {
					mods = append(mods, st.Module)
				}
				if got := fmt.Sprint(mods); got != tc.want {
					t.Fatalf("got modules %s, want %s", got, tc.want)
				}
				if spec.Then[2].Declared != 2*time.Millisecond || spec.Then[0].ResultsLength != -1 {
					t.Fatalf("got stages %+v", spec.Then)
				}
				return
			}
			if got := apierr.CodeOf(err); got != tc.code || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("got %v (code %d), want code %d with %q", err, got, tc.code, tc.want)
			}
		})
	}
}

// TestDecodeCallBodyErrors: a body that is not one JSON object says what
// is wrong with it.
func TestDecodeCallBodyErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"trailing object", `{"wasm_name":"m","export_func":"f"} {}`, "request body has data after the JSON object"},
		{"trailing brace", `{"wasm_name":"m","export_func":"f"}}`, "not the expected JSON object: invalid character '}' after top-level value"},
		{"wrong type before trailing data", `{"wasm_name":1} {}`, "not the expected JSON object: json: cannot unmarshal number"},
		{"truncated", `{"wasm_name":"m"`, "not the expected JSON object: unexpected EOF"},
		{"empty", ``, "not the expected JSON object: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCall([]byte(tc.body), time.Time{})
			if apierr.CodeOf(err) != apierr.BadRequest || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("got %v, want a bad request with %q", err, tc.want)
			}
		})
	}
	// Trailing blanks are not data.
	if _, err := DecodeCall([]byte("{\"wasm_name\":\"m\",\"export_func\":\"f\"}\n \t"), time.Time{}); err != nil {
		t.Fatalf("trailing blanks: %v", err)
	}
}

// TestDecodeCallLimits: every string a call carries is bounded, and going
// over is a 400 that names the field and its limit. 1,000 calls with 1 MB
// task names once took the daemon from 33 MiB to 1.6 GiB (/uname keeps the
// last 10,000 names).
func TestDecodeCallLimits(t *testing.T) {
	body := func(field, value string) string {
		b, _ := json.Marshal(map[string]any{"wasm_name": "m", "export_func": "f", field: value})
		return string(b)
	}
	raw := func(field, value string) string {
		return `{"wasm_name":"m","export_func":"f","` + field + `":` + value + `}`
	}
	list := func(item string, n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	for _, tt := range []struct {
		name, body string
		code       string // "" when it must decode
		field      string // named in the error, with its limit
		limit      int
	}{
		{"wasm_name at the limit", body("wasm_name", strings.Repeat("m", MaxNameLen)), "", "", 0},
		{"wasm_name over", body("wasm_name", strings.Repeat("m", MaxNameLen+1)), "Error_Bad_request", "wasm_name", MaxNameLen},
		{"task_unique_name at the limit", body("task_unique_name", strings.Repeat("t", MaxTaskNameLen)), "", "", 0},
		{"task_unique_name over", body("task_unique_name", strings.Repeat("t", MaxTaskNameLen+1)), "Error_Bad_request", "task_unique_name", MaxTaskNameLen},
		{"task_unique_name of 1 MB", body("task_unique_name", strings.Repeat("t", 1<<20)), "Error_Bad_request", "task_unique_name", MaxTaskNameLen},
		{"export_func at the limit", body("export_func", strings.Repeat("e", MaxExportLen)), "", "", 0},
		{"export_func over", body("export_func", strings.Repeat("e", MaxExportLen+1)), "Error_Bad_request", "export_func", MaxExportLen},
		{"param_type list of 64", raw("param_type", list(`"i32"`, 64)), "", "", 0},
		{"param_type over", body("param_type", strings.Repeat("i", MaxParamTypeLen)), "Error_Invalid_params", "param_type", MaxParamTypeLen},
		{"params 64 long floats", raw("params", list(`"`+strings.Repeat("1", 100)+`"`, 64)), "", "", 0},
		{"params over", raw("params", list(`"`+strings.Repeat("1", 1000)+`"`, 64)), "Error_Invalid_params", "params", MaxParamsLen},
		{"task_unique_name with a bidi override", body("task_unique_name", "abc\u202edef"), "Error_Bad_request", "task_unique_name", 0},
		{"task_unique_name with a line break", body("task_unique_name", "abc\ndef"), "Error_Bad_request", "task_unique_name", 0},
		{"wasm_name with a zero-width space", body("wasm_name", "fib\u200b.wasm"), "Error_Bad_request", "wasm_name", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCall([]byte(tt.body), time.Time{})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %s", tt.code)
			}
			status, code := StatusOf(err)
			if status != http.StatusBadRequest || code != tt.code {
				t.Errorf("got %d %s (%v), want 400 %s", status, code, err, tt.code)
			}
			if !strings.HasPrefix(err.Error(), tt.field) || (tt.limit > 0 && !strings.Contains(err.Error(), strconv.Itoa(tt.limit))) {
				t.Errorf("got %q, want an error naming %s and its limit %d", err, tt.field, tt.limit)
			}
			if len(err.Error()) > 300 {
				t.Errorf("got an error of %d bytes, want a short one", len(err.Error()))
			}
		})
	}
}

// TestDecodeCallNFC: a module name arrives in either Unicode form and is
// looked up in NFC, the only form a module can be registered under.
func TestDecodeCallNFC(t *testing.T) {
	for _, name := range []string{"caf\u00e9.wasm", "cafe\u0301.wasm"} {
		spec, err := DecodeCall([]byte(`{"wasm_name":"`+name+`","export_func":"f"}`), time.Time{})
		if err != nil || spec.Module != "caf\u00e9.wasm" {
			t.Errorf("wasm_name %+q: got %+q, %v; want %+q", name, spec.Module, err, "caf\u00e9.wasm")
		}
	}
}
