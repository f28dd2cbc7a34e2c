package wasmval

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestParseType(t *testing.T) {
	for _, c := range []struct {
		s    string
		want Type
		err  string
	}{
		{s: "i32", want: I32},
		{s: "I32", want: I32},
		{s: "i64", want: I64},
		{s: "F32", want: F32},
		{s: "f64", want: F64},
		{s: "u128", err: `"u128": v128 values are not supported (want i32, i64, f32 or f64)`},
		{s: "V128", err: `"V128": v128 values are not supported (want i32, i64, f32 or f64)`},
		{s: "void", err: `"void" is not a value type (want i32, i64, f32 or f64)`},
		{s: "int", err: `"int" is not a wasm type (want i32, i64, f32 or f64)`},
		{s: "", err: `"" is not a wasm type (want i32, i64, f32 or f64)`},
		{s: " i32", err: `" i32" is not a wasm type (want i32, i64, f32 or f64)`},
	} {
		t.Run(c.s, func(t *testing.T) {
			got, err := ParseType(c.s)
			if errString(err) != c.err {
				t.Fatalf("got error %q, want %q", errString(err), c.err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("got error %v not matching ErrInvalid", err)
			}
			if got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestTypeText(t *testing.T) {
	for _, typ := range []Type{I32, I64, F32, F64} {
		b, err := json.Marshal(typ)
		if err != nil {
			t.Fatalf("marshal %v: %v", typ, err)
		}
		if want := `"` + typ.String() + `"`; string(b) != want {
			t.Errorf("got %s, want %s", b, want)
		}
		var back Type
		if err := json.Unmarshal(b, &back); err != nil || back != typ {
			t.Errorf("unmarshal %s: got %v, %v, want %v", b, back, err, typ)
		}
	}
	if b, err := json.Marshal(Type(0)); err == nil {
		t.Errorf("marshal invalid type: got %s, want an error", b)
	}
	if got := Type(9).String(); got != "invalid" {
		t.Errorf("got %q, want %q", got, "invalid")
	}
}

func TestParseTypes(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  string
		n    int
		want []Type // nil means "take the signature", distinct from empty
		err  string
	}{
		{name: "absent", raw: ``, n: 2, want: nil},
		{name: "null", raw: ` null `, n: 2, want: nil},
		{name: "seed i32", raw: `"i32"`, n: 1, want: []Type{I32}},
		{name: "one for all", raw: `"I64"`, n: 3, want: []Type{I64, I64, I64}},
		{name: "string, no params", raw: `"f32"`, n: 0, want: []Type{}},
		{name: "void", raw: `"void"`, n: 0, want: []Type{}},
		{name: "VOID", raw: `"VOID"`, n: 0, want: []Type{}},
		{name: "void with params", raw: `"void"`, n: 1, err: `param_type: "void" with 1 param`},
		{name: "u128", raw: `"u128"`, n: 1, err: `param_type: "u128": v128 values are not supported (want i32, i64, f32 or f64)`},
		{name: "unknown", raw: `"int"`, n: 1, err: `param_type: "int" is not a wasm type (want i32, i64, f32 or f64)`},
		{name: "escaped", raw: `"\u0069\u0033\u0032"`, n: 1, want: []Type{I32}},
		{name: "mixed list", raw: `["i32", "F64", "i64"]`, n: 3, want: []Type{I32, F64, I64}},
		{name: "empty list", raw: `[]`, n: 0, want: []Type{}},
		{name: "short list", raw: `["i32", "i32"]`, n: 3, err: `param_type: list has 2 types for 3 params`},
		{name: "long list", raw: `["i32", "i32", "x"]`, n: 1, err: `param_type: list has 3 types for 1 param`},
		{name: "empty list for one", raw: `[]`, n: 1, err: `param_type: list has 0 types for 1 param`},
		{name: "void in list", raw: `["i32", "void"]`, n: 2, err: `param_type[1]: "void" is not a value type (want i32, i64, f32 or f64)`},
		{name: "bad name in list", raw: `["i32", "v128"]`, n: 2, err: `param_type[1]: "v128": v128 values are not supported (want i32, i64, f32 or f64)`},
		{name: "number in list", raw: `["i32", 5]`, n: 2, err: `param_type[1]: want a type name, got a number`},
		{name: "number", raw: `5`, n: 1, err: `param_type: want a type name or a list of type names, got a number`},
		{name: "object", raw: `{}`, n: 1, err: `param_type: want a type name or a list of type names, got an object`},
		{name: "malformed", raw: `["i32"`, n: 1, err: `param_type: malformed JSON at byte 6: unexpected end`},
		{name: "text after", raw: `"i32" "i64"`, n: 1, err: `param_type: malformed JSON at byte 6: unexpected '"' after the value`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTypes(json.RawMessage(c.raw), c.n)
			if errString(err) != c.err {
				t.Fatalf("ParseTypes(%s, %d): got error %q, want %q", c.raw, c.n, errString(err), c.err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("got error %v not matching ErrInvalid", err)
			}
			if (got == nil) != (c.want == nil) || !slices.Equal(got, c.want) {
				t.Errorf("ParseTypes(%s, %d): got %#v, want %#v", c.raw, c.n, got, c.want)
			}
		})
	}
}

// TestSeedRequest decodes the seed's /call body as the HTTP layer will, and
// checks every field this package reads.
func TestSeedRequest(t *testing.T) {
	body := `{"wasm_name":"fib.wasm","task_unique_name":"fibabc","export_func":"fib_r","param_type":"i32","params":["30"],"results_length":"1","expected_execution_time":"5","expected_deadline":"35"}`
	var req struct {
		ParamType     json.RawMessage `json:"param_type"`
		Params        json.RawMessage `json:"params"`
		ResultsLength Flex            `json:"results_length"`
		ExecTime      Flex            `json:"expected_execution_time"`
		Deadline      Flex            `json:"expected_deadline"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	args, err := ParseParams(req.Params, 0)
	if err != nil {
		t.Fatal(err)
	}
	types, err := ParseTypes(req.ParamType, len(args))
	if err != nil {
		t.Fatal(err)
	}
	bits, err := Bits(args, types)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{30}; !slices.Equal(bits, want) {
		t.Errorf("params: got %v, want %v", bits, want)
	}
	for _, f := range []struct {
		name string
		got  Flex
		want int64
	}{{"results_length", req.ResultsLength, 1}, {"expected_execution_time", req.ExecTime, 5}, {"expected_deadline", req.Deadline, 35}} {
		v, ok, err := f.got.Int64()
		if v != f.want || !ok || err != nil {
			t.Errorf("%s: got %d, %v, %v, want %d, true, nil", f.name, v, ok, err, f.want)
		}
	}
}
