package wasmval

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

// flexCases are request bodies for the results_length field. FuzzFlex seeds
// its corpus from them too.
var flexCases = []struct {
	name  string
	body  string // the field's JSON value; "" leaves it out
	want  Flex
	i64   int64
	f64   float64
	ok    bool   // present
	i64er string // Int64's error
	f64er string // Float64's error
}{
	{name: "seed string", body: `"1"`, want: "1", i64: 1, f64: 1, ok: true},
	{name: "number", body: `1`, want: "1", i64: 1, f64: 1, ok: true},
	{name: "absent", body: ``, want: ""},
	{name: "null", body: `null`, want: ""},
	{name: "empty string", body: `""`, want: ""},
	{name: "zero", body: `"0"`, want: "0", i64: 0, f64: 0, ok: true},
	{name: "negative", body: `-35`, want: "-35", i64: -35, f64: -35, ok: true},
	{name: "fraction", body: `"2.5"`, want: "2.5", f64: 2.5, ok: true, i64er: `"2.5" is not an integer`},
	{name: "exponent", body: `1e3`, want: "1e3", f64: 1000, ok: true, i64er: `"1e3" is not an integer`},
	{name: "int64 max", body: `"9223372036854775807"`, want: "9223372036854775807", i64: math.MaxInt64, f64: 9223372036854775807, ok: true},
	{name: "int64 min", body: `-9223372036854775808`, want: "-9223372036854775808", i64: math.MinInt64, f64: -9223372036854775808, ok: true},
	{name: "int64 over", body: `"9223372036854775808"`, want: "9223372036854775808", f64: 9223372036854775808, ok: true, i64er: `"9223372036854775808" is out of range`},
	{name: "float over", body: `1e400`, want: "1e400", ok: true, i64er: `"1e400" is not an integer`, f64er: `"1e400" is out of range`},
	{name: "minus zero", body: `"-0"`, want: "-0", f64: math.Copysign(0, -1), ok: true},
	{name: "words", body: `"abc"`, want: "abc", ok: true, i64er: `"abc" is not an integer`, f64er: `"abc" is not a number`},
	{name: "hex", body: `"0x10"`, want: "0x10", ok: true, i64er: `"0x10" is not an integer`, f64er: `"0x10" is not a number`},
	{name: "plus", body: `"+5"`, want: "+5", ok: true, i64er: `"+5" is not an integer`, f64er: `"+5" is not a number`},
	{name: "leading zero", body: `"05"`, want: "05", ok: true, i64er: `"05" is not an integer`, f64er: `"05" is not a number`},
	{name: "space", body: `" 5"`, want: " 5", ok: true, i64er: `" 5" is not an integer`, f64er: `" 5" is not a number`},
	{name: "nan", body: `"nan"`, want: "nan", ok: true, i64er: `"nan" is not an integer`, f64er: `"nan" is not a number`},
	{name: "escaped", body: `"\u0035"`, want: "5", i64: 5, f64: 5, ok: true},
}

func TestFlex(t *testing.T) {
	for _, c := range flexCases {
		t.Run(c.name, func(t *testing.T) {
			body := `{}`
			if c.body != "" {
				body = `{"results_length":` + c.body + `}`
			}
			var req struct {
				ResultsLength Flex `json:"results_length"`
			}
			if err := json.Unmarshal([]byte(body), &req); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			f := req.ResultsLength
			if f != c.want {
				t.Errorf("got %q, want %q", f, c.want)
			}
			i, ok, err := f.Int64()
			if i != c.i64 || ok != c.ok || errString(err) != c.i64er {
				t.Errorf("Int64: got %d, %v, %q, want %d, %v, %q", i, ok, errString(err), c.i64, c.ok, c.i64er)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Int64: got error %v not matching ErrInvalid", err)
			}
			v, ok, err := f.Float64()
			if math.Float64bits(v) != math.Float64bits(c.f64) || ok != c.ok || errString(err) != c.f64er {
				t.Errorf("Float64: got %g, %v, %q, want %g, %v, %q", v, ok, errString(err), c.f64, c.ok, c.f64er)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Float64: got error %v not matching ErrInvalid", err)
			}
		})
	}
}

func TestFlexTypeError(t *testing.T) {
	type request struct {
		ResultsLength Flex `json:"results_length"`
	}
	for _, c := range []struct{ body, want string }{
		{`{"results_length":true}`, `json: cannot unmarshal bool into Go struct field request.results_length of type wasmval.Flex`},
		{`{"results_length":[1]}`, `json: cannot unmarshal array into Go struct field request.results_length of type wasmval.Flex`},
		{`{"results_length":{}}`, `json: cannot unmarshal object into Go struct field request.results_length of type wasmval.Flex`},
	} {
		t.Run(c.body, func(t *testing.T) {
			var req request
			err := json.Unmarshal([]byte(c.body), &req)
			if got := errString(err); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestFlexNullKeeps(t *testing.T) {
	f := Flex("7")
	if err := json.Unmarshal([]byte(`null`), &f); err != nil || f != "7" {
		t.Errorf("got %q, %v, want %q, nil", f, err, "7")
	}
}

func TestFlexMarshal(t *testing.T) {
	b, err := json.Marshal(struct {
		C Flex `json:"expected_execution_time"`
	}{"5"})
	if want := `{"expected_execution_time":"5"}`; string(b) != want || err != nil {
		t.Errorf("got %s, %v, want %s", b, err, want)
	}
}
