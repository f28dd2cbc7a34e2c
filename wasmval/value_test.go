package wasmval

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func f32bits(f float32) uint64 { return uint64(math.Float32bits(f)) }

func TestSeed(t *testing.T) {
	for _, c := range []struct {
		name  string
		types []Type
		raw   []uint64
		want  string
	}{
		{"seed fib_r(30)", []Type{I32}, []uint64{832040}, "[I32(832040)]"},
		{"void", nil, nil, "[]"},
		{"empty", []Type{}, []uint64{}, "[]"},
		{"two values", []Type{I64, I32}, []uint64{math.MaxUint64 - 4, 1}, "[I64(-5), I32(1)]"},
		{"i32 signed", []Type{I32}, []uint64{0xffff_ffff}, "[I32(-1)]"},
		{"i32 ignores upper bits", []Type{I32}, []uint64{0xdead_beef_0000_0007}, "[I32(7)]"},
		{"i32 min", []Type{I32}, []uint64{0x8000_0000}, "[I32(-2147483648)]"},
		{"i64 min", []Type{I64}, []uint64{1 << 63}, "[I64(-9223372036854775808)]"},
		{"i64 max", []Type{I64}, []uint64{1<<63 - 1}, "[I64(9223372036854775807)]"},
		// wasmtime 11's Val::F32(u32)/F64(u64) hold bits, and Debug printed them.
		{"f32 is bits", []Type{F32}, []uint64{f32bits(1.5)}, "[F32(1069547520)]"},
		{"f64 is bits", []Type{F64}, []uint64{math.Float64bits(1.5)}, "[F64(4609434218613702656)]"},
		{"f32 minus zero", []Type{F32}, []uint64{0x8000_0000}, "[F32(2147483648)]"},
		{"f64 all ones", []Type{F64}, []uint64{math.MaxUint64}, "[F64(18446744073709551615)]"},
		{"all four", []Type{I32, I64, F32, F64}, []uint64{1, 2, 3, 4}, "[I32(1), I64(2), F32(3), F64(4)]"},
		{"more raw than types", []Type{I32}, []uint64{1, 2}, "[I32(1)]"},
		{"more types than raw", []Type{I32, I32}, []uint64{1}, "[I32(1)]"},
		{"invalid type", []Type{0}, []uint64{7}, "[Invalid(7)]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Seed(c.types, c.raw); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
	if got, want := (Value{I32, 832040}).String(), "I32(832040)"; got != want {
		t.Errorf("Value.String: got %s, want %s", got, want)
	}
}

func TestJSON(t *testing.T) {
	for _, c := range []struct {
		name  string
		types []Type
		raw   []uint64
		want  string
	}{
		{"seed fib_r(30)", []Type{I32}, []uint64{832040}, `[{"type":"i32","value":832040}]`},
		{"void", nil, nil, `[]`},
		{"i32 negative", []Type{I32}, []uint64{0xffff_ffff}, `[{"type":"i32","value":-1}]`},
		{"i32 ignores upper bits", []Type{I32}, []uint64{0x1_0000_0005}, `[{"type":"i32","value":5}]`},
		{"i64 safe max", []Type{I64}, []uint64{1<<53 - 1}, `[{"type":"i64","value":9007199254740991}]`},
		{"i64 safe min", []Type{I64}, []uint64{-(1<<53 - 1) & math.MaxUint64}, `[{"type":"i64","value":-9007199254740991}]`},
		{"i64 2^53 is a string", []Type{I64}, []uint64{1 << 53}, `[{"type":"i64","value":"9007199254740992"}]`},
		{"i64 -2^53 is a string", []Type{I64}, []uint64{-(1 << 53) & math.MaxUint64}, `[{"type":"i64","value":"-9007199254740992"}]`},
		{"i64 min", []Type{I64}, []uint64{1 << 63}, `[{"type":"i64","value":"-9223372036854775808"}]`},
		{"i64 -5", []Type{I64}, []uint64{math.MaxUint64 - 4}, `[{"type":"i64","value":-5}]`},
		{"f32 1.5", []Type{F32}, []uint64{f32bits(1.5)}, `[{"type":"f32","value":1.5}]`},
		{"f32 0.1 shortest", []Type{F32}, []uint64{f32bits(0.1)}, `[{"type":"f32","value":0.1}]`},
		{"f32 max", []Type{F32}, []uint64{0x7f7f_ffff}, `[{"type":"f32","value":3.4028235e+38}]`},
		{"f32 subnormal", []Type{F32}, []uint64{1}, `[{"type":"f32","value":1e-45}]`},
		{"f32 nan", []Type{F32}, []uint64{0x7fc0_0000}, `[{"type":"f32","value":"nan"}]`},
		{"f32 nan payload", []Type{F32}, []uint64{0xffc0_0001}, `[{"type":"f32","value":"nan"}]`},
		{"f32 inf", []Type{F32}, []uint64{0x7f80_0000}, `[{"type":"f32","value":"inf"}]`},
		{"f32 -inf", []Type{F32}, []uint64{0xff80_0000}, `[{"type":"f32","value":"-inf"}]`},
		{"f32 minus zero", []Type{F32}, []uint64{0x8000_0000}, `[{"type":"f32","value":-0}]`},
		{"f64 0.1", []Type{F64}, []uint64{math.Float64bits(0.1)}, `[{"type":"f64","value":0.1}]`},
		{"f64 1e21", []Type{F64}, []uint64{math.Float64bits(1e21)}, `[{"type":"f64","value":1e+21}]`},
		{"f64 1e20", []Type{F64}, []uint64{math.Float64bits(1e20)}, `[{"type":"f64","value":100000000000000000000}]`},
		{"f64 1e-7", []Type{F64}, []uint64{math.Float64bits(1e-7)}, `[{"type":"f64","value":1e-7}]`},
		{"f64 5e-324", []Type{F64}, []uint64{1}, `[{"type":"f64","value":5e-324}]`},
		{"f64 nan", []Type{F64}, []uint64{0x7ff8_0000_0000_0000}, `[{"type":"f64","value":"nan"}]`},
		{"f64 -inf", []Type{F64}, []uint64{0xfff0_0000_0000_0000}, `[{"type":"f64","value":"-inf"}]`},
		{"f64 minus zero", []Type{F64}, []uint64{1 << 63}, `[{"type":"f64","value":-0}]`},
		{"mixed", []Type{I64, I32}, []uint64{math.MaxUint64 - 4, 1}, `[{"type":"i64","value":-5},{"type":"i32","value":1}]`},
		{"more raw than types", []Type{I32}, []uint64{1, 2}, `[{"type":"i32","value":1}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(JSON(c.types, c.raw))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("got %s, want %s", b, c.want)
			}
			// Everything but NaN reads back with the same bits.
			var back []Value
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			for i, v := range back {
				want := Value{c.types[i], c.raw[i]}
				if want.Type == I32 || want.Type == F32 {
					want.Bits &= math.MaxUint32
				}
				if want.Type == F32 && math.IsNaN(float64(math.Float32frombits(uint32(want.Bits)))) {
					want.Bits = canonicalNaN32
				}
				if want.Type == F64 && math.IsNaN(math.Float64frombits(want.Bits)) {
					want.Bits = canonicalNaN64
				}
				if v != want {
					t.Errorf("read back [%d]: got %v %#x, want %v %#x", i, v.Type, v.Bits, want.Type, want.Bits)
				}
			}
		})
	}
	if b, err := json.Marshal(Value{Type: 0, Bits: 1}); err == nil {
		t.Errorf("marshal invalid type: got %s, want an error", b)
	}
}

func TestValueUnmarshal(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Value
		err  string
	}{
		{in: `{"type":"i32","value":"30"}`, want: Value{I32, 30}},
		{in: `{"type":"I64","value":-1}`, want: Value{I64, math.MaxUint64}},
		{in: `{"type":"f32","value":"-inf"}`, want: Value{F32, 0xff80_0000}},
		{in: `null`, want: Value{}},
		{in: `{"value":1}`, err: `value: missing "type"`},
		{in: `{"type":"i32"}`, err: `value: missing "value"`},
		{in: `{"type":"i32","value":"3.5"}`, err: `value: "3.5" is not an i32`},
		{in: `{"type":"u128","value":1}`, err: `"u128": v128 values are not supported (want i32, i64, f32 or f64)`},
		{in: `{"type":"i32","value":true}`, err: `json: cannot unmarshal bool into Go struct field .value of type wasmval.Flex`},
	} {
		t.Run(c.in, func(t *testing.T) {
			var got Value
			err := json.Unmarshal([]byte(c.in), &got)
			if errString(err) != c.err {
				t.Fatalf("got error %q, want %q", errString(err), c.err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestErrInvalid(t *testing.T) {
	_, err := Params(json.RawMessage(`["x"]`), []Type{I32}, 0)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want an error matching ErrInvalid", err)
	}
	if errors.Is(errors.New("other"), ErrInvalid) {
		t.Error("got an unrelated error matching ErrInvalid")
	}
}

func BenchmarkSeed(b *testing.B) {
	types := []Type{I32}
	raw := []uint64{832040}
	b.ReportAllocs()
	for b.Loop() {
		if s := Seed(types, raw); len(s) == 0 {
			b.Fatal("empty")
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	types := []Type{I32}
	raw := []uint64{832040}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(JSON(types, raw)); err != nil {
			b.Fatal(err)
		}
	}
}
