package wasmval

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Value is one typed wasm value: a Type and the raw bits wazero passes for it
// (see [Bits]). Its JSON form is the "results" item of a call's answer.
type Value struct {
	Type Type
	Bits uint64
}

// maxSafeInt is the largest integer a JSON client holding numbers in IEEE
// doubles (every JavaScript client) reads exactly: Number.MAX_SAFE_INTEGER.
const maxSafeInt = 1<<53 - 1

// JSON returns the typed values of a call's results, for the answer's
// "results" field; each marshals as {"type":"i32","value":832040}. See
// [Value.MarshalJSON] for the value's form.
//
// Only the first min(len(types), len(raw)) values are returned, so callers
// check the result count against the export's signature first.
func JSON(types []Type, raw []uint64) []Value {
	n := min(len(types), len(raw))
	vs := make([]Value, n)
	for i := range vs {
		vs[i] = Value{types[i], raw[i]}
	}
	return vs
}

// MarshalJSON returns {"type":T,"value":V}, where T is the type's name and V
//   - for i32, the signed value as a JSON number;
//   - for i64, the signed value as a JSON number when it lies within
//     ±(2^53-1), else as a JSON string ("9007199254740993"), because a
//     JavaScript client would silently round the number;
//   - for f32 and f64, the shortest number that parses back to the same
//     float, or the string "nan", "inf" or "-inf", which JSON has no number
//     for. Every NaN is "nan": its sign and payload are lost.
//
// So a client must accept a string or a number as "value"; [Value.UnmarshalJSON]
// does. An invalid Type is an error.
func (v Value) MarshalJSON() ([]byte, error) {
	if !v.Type.valid() {
		return nil, fmt.Errorf("wasmval: cannot marshal a value of invalid type %d", uint8(v.Type))
	}
	b := make([]byte, 0, 48)
	b = append(b, `{"type":"`...)
	b = append(b, v.Type.String()...)
	b = append(b, `","value":`...)
	switch v.Type {
	case I32:
		b = strconv.AppendInt(b, int64(int32(v.Bits)), 10)
	case I64:
		if i := int64(v.Bits); -maxSafeInt <= i && i <= maxSafeInt {
			b = strconv.AppendInt(b, i, 10)
		} else {
			b = append(b, '"')
			b = strconv.AppendInt(b, i, 10)
			b = append(b, '"')
		}
	case F32:
		b = appendFloat(b, float64(math.Float32frombits(uint32(v.Bits))), 32)
	case F64:
		b = appendFloat(b, math.Float64frombits(v.Bits), 64)
	}
	return append(b, '}'), nil
}

// appendFloat appends f as encoding/json writes a float of the given size,
// or as "nan", "inf", "-inf".
func appendFloat(b []byte, f float64, size int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"nan"`...)
	case math.IsInf(f, 1):
		return append(b, `"inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-inf"`...)
	}
	// Like encoding/json: %f notation for moderate magnitudes, %e beyond, and
	// a two-digit negative exponent shortened ("1e-07" → "1e-7").
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if size == 64 && (abs < 1e-6 || abs >= 1e21) ||
			size == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, size)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// UnmarshalJSON reads the form MarshalJSON writes. It accepts "value" as a
// number or a string in any form [Parse] does, so it reads back every value
// MarshalJSON writes with the same bits, except NaNs, which come back as the
// canonical NaN.
func (v *Value) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json's own types do
	}
	var w struct {
		Type  Type `json:"type"`
		Value Flex `json:"value"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Type == 0 {
		return invalidf(`value: missing "type"`)
	}
	if w.Value == "" {
		return invalidf(`value: missing "value"`)
	}
	bits, err := Parse(w.Type, string(w.Value))
	if err != nil {
		return prefix("value", err)
	}
	*v = Value{w.Type, bits}
	return nil
}

// String returns v as wasmtime 11's Debug printed a Val: "I32(832040)". See
// [Seed] for what the numbers are.
func (v Value) String() string {
	var buf [32]byte
	return string(v.appendSeed(buf[:0]))
}

// appendSeed appends v as wasmtime 11's Debug form of a Val.
func (v Value) appendSeed(b []byte) []byte {
	switch v.Type {
	case I32:
		b = append(b, "I32("...)
		b = strconv.AppendInt(b, int64(int32(v.Bits)), 10)
	case I64:
		b = append(b, "I64("...)
		b = strconv.AppendInt(b, int64(v.Bits), 10)
	case F32:
		b = append(b, "F32("...)
		b = strconv.AppendUint(b, uint64(uint32(v.Bits)), 10)
	case F64:
		b = append(b, "F64("...)
		b = strconv.AppendUint(b, v.Bits, 10)
	default:
		// wasmtime has no such variant; say so rather than guess.
		b = append(b, "Invalid("...)
		b = strconv.AppendUint(b, v.Bits, 10)
	}
	return append(b, ')')
}

// Seed returns a call's results in the seed prototype's "result" form: the
// Debug form wasmtime 11 printed for a Vec<Val>, byte for byte, so that the
// seed's clients can keep parsing it. For example "[I32(832040)]",
// "[I64(-5), I32(1)]", and "[]" for none.
//
// I32 and I64 print as signed decimals. F32 and F64 print their raw IEEE 754
// BITS as unsigned decimals, not the float: wasmtime 11's Val::F32(u32) and
// Val::F64(u64) hold the bits, and Debug printed those, so 1.5f32 is
// "F32(1069547520)". This is faithful, not a bug; "results" ([JSON]) has the
// floats.
//
// Only the first min(len(types), len(raw)) values are printed, so callers
// check the result count against the export's signature first.
func Seed(types []Type, raw []uint64) string {
	n := min(len(types), len(raw))
	if n == 0 {
		return "[]"
	}
	// One allocation: "F64(18446744073709551615), " is the longest item.
	var sb strings.Builder
	sb.Grow(2 + n*27)
	var buf [32]byte
	sb.WriteByte('[')
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.Write(Value{types[i], raw[i]}.appendSeed(buf[:0]))
	}
	sb.WriteByte(']')
	return sb.String()
}
