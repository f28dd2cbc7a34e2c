package wasmval

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// paramsCase is one row of the Params table. FuzzParams seeds its corpus from
// it too.
type paramsCase struct {
	name  string
	raw   string
	types []Type
	max   int
	want  []uint64
	err   string
}

var paramsCases = []paramsCase{
	// The seed's example bodies (DESIGN.md §5).
	{name: "seed call fib_r(30)", raw: `["30"]`, types: []Type{I32}, want: []uint64{30}},
	{name: "seed test fib(32)", raw: `["32"]`, types: []Type{I32}, want: []uint64{32}},
	{name: "json number", raw: `[30]`, types: []Type{I32}, want: []uint64{30}},
	{name: "white space", raw: " \t\n[ \"30\" ,\r31 ] \n", types: []Type{I32, I32}, want: []uint64{30, 31}},

	// No params.
	{name: "absent", raw: ``, types: nil, want: nil},
	{name: "null", raw: `null`, types: nil, want: nil},
	{name: "empty list", raw: `[]`, types: nil, want: nil},
	{name: "empty list with types", raw: `[ ]`, types: []Type{}, want: nil},

	// i32: signed and unsigned ranges, both ends.
	{name: "i32 zero", raw: `["0"]`, types: []Type{I32}, want: []uint64{0}},
	{name: "i32 minus zero", raw: `["-0"]`, types: []Type{I32}, want: []uint64{0}},
	{name: "i32 plus sign", raw: `["+5"]`, types: []Type{I32}, want: []uint64{5}},
	{name: "i32 leading zeros", raw: `["007"]`, types: []Type{I32}, want: []uint64{7}},
	{name: "i32 -1 not sign-extended", raw: `["-1"]`, types: []Type{I32}, want: []uint64{0xffff_ffff}},
	{name: "i32 min", raw: `["-2147483648"]`, types: []Type{I32}, want: []uint64{0x8000_0000}},
	{name: "i32 max", raw: `["2147483647"]`, types: []Type{I32}, want: []uint64{0x7fff_ffff}},
	{name: "i32 unsigned max", raw: `["4294967295"]`, types: []Type{I32}, want: []uint64{0xffff_ffff}},
	{name: "i32 number min", raw: `[-2147483648]`, types: []Type{I32}, want: []uint64{0x8000_0000}},
	{name: "i32 over unsigned max", raw: `["4294967296"]`, types: []Type{I32}, err: `params[0]: "4294967296" is out of range for i32`},
	{name: "i32 under min", raw: `["-2147483649"]`, types: []Type{I32}, err: `params[0]: "-2147483649" is out of range for i32`},
	{name: "i32 far over", raw: `["99999999999999999999999"]`, types: []Type{I32}, err: `params[0]: "99999999999999999999999" is out of range for i32`},
	{name: "i32 hex", raw: `["0x10"]`, types: []Type{I32}, want: []uint64{16}},
	{name: "i32 hex upper", raw: `["0XfF"]`, types: []Type{I32}, want: []uint64{255}},
	{name: "i32 negative hex", raw: `["-0x80000000"]`, types: []Type{I32}, want: []uint64{0x8000_0000}},
	{name: "i32 hex max", raw: `["0xffffffff"]`, types: []Type{I32}, want: []uint64{0xffff_ffff}},
	{name: "i32 hex over", raw: `["0x100000000"]`, types: []Type{I32}, err: `params[0]: "0x100000000" is out of range for i32`},
	{name: "i32 bare 0x", raw: `["0x"]`, types: []Type{I32}, err: `params[0]: "0x" is not an i32`},
	{name: "i32 bad hex digit", raw: `["0x1g"]`, types: []Type{I32}, err: `params[0]: "0x1g" is not an i32`},
	{name: "i32 octal prefix", raw: `["0o7"]`, types: []Type{I32}, err: `params[0]: "0o7" is not an i32`},
	{name: "i32 fraction", raw: `["1", "3.5"]`, types: []Type{I32, I32}, err: `params[1]: "3.5" is not an i32`},
	{name: "i32 fraction number", raw: `[3.5]`, types: []Type{I32}, err: `params[0]: "3.5" is not an i32`},
	{name: "i32 exponent number", raw: `[1e3]`, types: []Type{I32}, err: `params[0]: "1e3" is not an i32`},
	{name: "i32 empty", raw: `[""]`, types: []Type{I32}, err: `params[0]: "" is not an i32`},
	{name: "i32 nan", raw: `["nan"]`, types: []Type{I32}, err: `params[0]: "nan" is not an i32`},
	{name: "i32 underscore", raw: `["1_000"]`, types: []Type{I32}, err: `params[0]: "1_000" is not an i32`},
	{name: "i32 space", raw: `[" 5"]`, types: []Type{I32}, err: `params[0]: " 5" is not an i32`},
	{name: "i32 double sign", raw: `["--5"]`, types: []Type{I32}, err: `params[0]: "--5" is not an i32`},
	{name: "i32 sign only", raw: `["-"]`, types: []Type{I32}, err: `params[0]: "-" is not an i32`},
	{name: "i32 fullwidth digit", raw: `["３"]`, types: []Type{I32}, err: `params[0]: "３" is not an i32`},
	{name: "i32 escaped digits", raw: `["\u0033\u0030"]`, types: []Type{I32}, want: []uint64{30}},
	{name: "long text is cut", raw: `["` + strings.Repeat("9", 100) + `"]`, types: []Type{I32},
		err: `params[0]: "` + strings.Repeat("9", maxQuoted) + `"… is out of range for i32`},

	// i64.
	{name: "i64 min", raw: `["-9223372036854775808"]`, types: []Type{I64}, want: []uint64{1 << 63}},
	{name: "i64 max", raw: `["9223372036854775807"]`, types: []Type{I64}, want: []uint64{1<<63 - 1}},
	{name: "i64 unsigned max", raw: `["18446744073709551615"]`, types: []Type{I64}, want: []uint64{math.MaxUint64}},
	{name: "i64 unsigned max number", raw: `[18446744073709551615]`, types: []Type{I64}, want: []uint64{math.MaxUint64}},
	{name: "i64 -1", raw: `[-1]`, types: []Type{I64}, want: []uint64{math.MaxUint64}},
	{name: "i64 2^53+1 exact", raw: `[9007199254740993]`, types: []Type{I64}, want: []uint64{1<<53 + 1}},
	{name: "i64 over unsigned max", raw: `["18446744073709551616"]`, types: []Type{I64}, err: `params[0]: "18446744073709551616" is out of range for i64`},
	{name: "i64 under min", raw: `["-9223372036854775809"]`, types: []Type{I64}, err: `params[0]: "-9223372036854775809" is out of range for i64`},
	{name: "i64 hex min", raw: `["-0x8000000000000000"]`, types: []Type{I64}, want: []uint64{1 << 63}},
	{name: "i64 fraction", raw: `["2.0"]`, types: []Type{I64}, err: `params[0]: "2.0" is not an i64`},

	// f32.
	{name: "f32 1.5", raw: `["1.5"]`, types: []Type{F32}, want: []uint64{0x3fc0_0000}},
	{name: "f32 number", raw: `[1.5]`, types: []Type{F32}, want: []uint64{0x3fc0_0000}},
	{name: "f32 integer text", raw: `["2"]`, types: []Type{F32}, want: []uint64{0x4000_0000}},
	{name: "f32 exponent", raw: `["-2.5e-3"]`, types: []Type{F32}, want: []uint64{uint64(math.Float32bits(-2.5e-3))}},
	{name: "f32 0.1 rounds to f32", raw: `["0.1"]`, types: []Type{F32}, want: []uint64{uint64(math.Float32bits(0.1))}},
	{name: "f32 minus zero", raw: `["-0"]`, types: []Type{F32}, want: []uint64{0x8000_0000}},
	{name: "f32 minus zero number", raw: `[-0.0]`, types: []Type{F32}, want: []uint64{0x8000_0000}},
	{name: "f32 nan", raw: `["nan"]`, types: []Type{F32}, want: []uint64{0x7fc0_0000}},
	{name: "f32 NaN", raw: `["NaN"]`, types: []Type{F32}, want: []uint64{0x7fc0_0000}},
	{name: "f32 inf", raw: `["inf"]`, types: []Type{F32}, want: []uint64{0x7f80_0000}},
	{name: "f32 -inf", raw: `["-inf"]`, types: []Type{F32}, want: []uint64{0xff80_0000}},
	{name: "f32 max", raw: `["3.4028235e38"]`, types: []Type{F32}, want: []uint64{0x7f7f_ffff}},
	{name: "f32 smallest subnormal", raw: `["1e-45"]`, types: []Type{F32}, want: []uint64{1}},
	{name: "f32 underflow to zero", raw: `["1e-50"]`, types: []Type{F32}, want: []uint64{0}},
	{name: "f32 hex float", raw: `["0x1p-2"]`, types: []Type{F32}, want: []uint64{0x3e80_0000}},
	{name: "f32 overflow", raw: `["1e39"]`, types: []Type{F32}, err: `params[0]: "1e39" is out of range for f32`},
	{name: "f32 garbage", raw: `["abc"]`, types: []Type{F32}, err: `params[0]: "abc" is not an f32`},
	{name: "f32 underscore", raw: `["1_0.5"]`, types: []Type{F32}, err: `params[0]: "1_0.5" is not an f32`},
	{name: "f32 empty", raw: `[""]`, types: []Type{F32}, err: `params[0]: "" is not an f32`},
	{name: "f32 signed nan", raw: `["-nan"]`, types: []Type{F32}, err: `params[0]: "-nan" is not an f32`},

	// f64.
	{name: "f64 1.5", raw: `["1.5"]`, types: []Type{F64}, want: []uint64{0x3ff8_0000_0000_0000}},
	{name: "f64 0.1", raw: `[0.1]`, types: []Type{F64}, want: []uint64{math.Float64bits(0.1)}},
	{name: "f64 minus zero", raw: `["-0"]`, types: []Type{F64}, want: []uint64{1 << 63}},
	{name: "f64 nan", raw: `["nan"]`, types: []Type{F64}, want: []uint64{0x7ff8_0000_0000_0000}},
	{name: "f64 Infinity", raw: `["Infinity"]`, types: []Type{F64}, want: []uint64{0x7ff0_0000_0000_0000}},
	{name: "f64 -inf", raw: `["-inf"]`, types: []Type{F64}, want: []uint64{0xfff0_0000_0000_0000}},
	{name: "f64 max", raw: `["1.7976931348623157e308"]`, types: []Type{F64}, want: []uint64{0x7fef_ffff_ffff_ffff}},
	{name: "f64 smallest subnormal", raw: `["5e-324"]`, types: []Type{F64}, want: []uint64{1}},
	{name: "f64 1e39 fits", raw: `["1e39"]`, types: []Type{F64}, want: []uint64{math.Float64bits(1e39)}},
	{name: "f64 overflow", raw: `["1e400"]`, types: []Type{F64}, err: `params[0]: "1e400" is out of range for f64`},
	{name: "f64 garbage", raw: `["1.5x"]`, types: []Type{F64}, err: `params[0]: "1.5x" is not an f64`},

	// Mixed types, as a param_type list gives them.
	{name: "mixed", raw: `["1", 2.5, "-3", "nan"]`, types: []Type{I64, F64, I32, F32},
		want: []uint64{1, math.Float64bits(2.5), 0xffff_fffd, 0x7fc0_0000}},
	{name: "mixed error names index", raw: `["1", 2.5, "x"]`, types: []Type{I64, F64, I32}, err: `params[2]: "x" is not an i32`},

	// Shape and count.
	{name: "too many values", raw: `["1", "2"]`, types: []Type{I32}, err: `params: list has 2 values for 1 param`},
	{name: "too few values", raw: `["1"]`, types: []Type{I32, I32}, err: `params: list has 1 value for 2 params`},
	{name: "absent but one param", raw: ``, types: []Type{I32}, err: `params: list has 0 values for 1 param`},
	{name: "not a list", raw: `"30"`, types: []Type{I32}, err: `params: want a list of strings or numbers, got a string`},
	{name: "object", raw: `{"a":1}`, types: []Type{I32}, err: `params: want a list of strings or numbers, got an object`},
	{name: "null item", raw: `["1", null]`, types: []Type{I32, I32}, err: `params[1]: want a string or a number, got null`},
	{name: "bool item", raw: `[true]`, types: []Type{I32}, err: `params[0]: want a string or a number, got a boolean`},
	{name: "nested list", raw: `[["1"]]`, types: []Type{I32}, err: `params[0]: want a string or a number, got a list`},
	{name: "object item", raw: `[{}]`, types: []Type{I32}, err: `params[0]: want a string or a number, got an object`},
	{name: "over default max", raw: `[` + strings.Repeat(`"1",`, MaxParams) + `"1"]`, types: nil, err: `params: more than 64 values`},
	{name: "at default max", raw: `[` + strings.Repeat(`"1",`, MaxParams-1) + `"1"]`, types: slices.Repeat([]Type{I32}, MaxParams),
		want: slices.Repeat([]uint64{1}, MaxParams)},
	{name: "over custom max", raw: `[1, 2, 3]`, types: []Type{I32, I32, I32}, max: 2, err: `params: more than 2 values`},

	// Malformed JSON, which the HTTP layer's decoder would already refuse.
	{name: "unterminated list", raw: `["1"`, types: []Type{I32}, err: `params: malformed JSON at byte 4: unexpected end`},
	{name: "trailing comma", raw: `["1",]`, types: []Type{I32}, err: `params: malformed JSON at byte 5: unexpected ']'`},
	{name: "missing comma", raw: `[1 2]`, types: []Type{I32, I32}, err: `params: malformed JSON at byte 3: unexpected '2' in list`},
	{name: "text after list", raw: `["1"] x`, types: []Type{I32}, err: `params: malformed JSON at byte 6: unexpected 'x' after the value`},
	{name: "bad escape", raw: `["\q"]`, types: []Type{I32}, err: `params: malformed JSON at byte 2: invalid escape in string`},
	{name: "control char", raw: "[\"1\x01\"]", types: []Type{I32}, err: `params: malformed JSON at byte 3: control character in string`},
	{name: "leading zero number", raw: `[01]`, types: []Type{I32}, err: `params: malformed JSON at byte 2: unexpected '1' in list`},
	{name: "bare minus", raw: `[-]`, types: []Type{I32}, err: `params: malformed JSON at byte 1: malformed number`},
	{name: "bad byte", raw: "[\xff]", types: []Type{I32}, err: `params: malformed JSON at byte 1: unexpected byte 0xff`},
}

func TestParams(t *testing.T) {
	for _, c := range paramsCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Params(json.RawMessage(c.raw), c.types, c.max)
			if errString(err) != c.err {
				t.Fatalf("Params(%s, %v): got error %q, want %q", c.raw, c.types, errString(err), c.err)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("got error %v not matching ErrInvalid", err)
				}
				if got != nil {
					t.Errorf("got %v with the error, want nil", got)
				}
				return
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Params(%s, %v): got %#x, want %#x", c.raw, c.types, got, c.want)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want []Flex
	}{
		{``, nil},
		{`null`, nil},
		{`[]`, nil},
		{`["30"]`, []Flex{"30"}},
		{`[30, -1.5e3, "x", ""]`, []Flex{"30", "-1.5e3", "x", ""}},
		{`["\"\\\/\b\f\n\r\t\u00e9"]`, []Flex{"\"\\/\b\f\n\r\té"}},
		{"[\"caf\xc3\xa9\"]", []Flex{"café"}},
		{"[\"\xff\"]", []Flex{"\uFFFD"}}, // as encoding/json decodes it
	} {
		t.Run(c.raw, func(t *testing.T) {
			got, err := ParseParams(json.RawMessage(c.raw), 0)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	// Parse's own messages name no field.
	for _, c := range []struct {
		t    Type
		s    string
		want string
	}{
		{I32, "3.5", `"3.5" is not an i32`},
		{I64, "x", `"x" is not an i64`},
		{F32, "x", `"x" is not an f32`},
		{F64, "1e999", `"1e999" is out of range for f64`},
		{0, "1", `wasmval: cannot parse a value of invalid type 0`},
	} {
		t.Run(c.t.String()+" "+c.s, func(t *testing.T) {
			_, err := Parse(c.t, c.s)
			if got := errString(err); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func BenchmarkParams(b *testing.B) {
	raw := json.RawMessage(`["30"]`)
	types := []Type{I32}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Params(raw, types, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBugsAreNotInvalidInput(t *testing.T) {
	_, err1 := Parse(0, "1")
	_, err2 := Type(0).MarshalText()
	_, err3 := Value{}.MarshalJSON()
	for i, err := range []error{err1, err2, err3} {
		if err == nil || errors.Is(err, ErrInvalid) {
			t.Errorf("[%d]: got %v, want an error not matching ErrInvalid", i, err)
		}
	}
}
