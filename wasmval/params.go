package wasmval

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxParams is the params limit used when a caller passes max <= 0. wasm
// functions worth calling over HTTP take a handful of numbers; the cap bounds
// what one request may make the server parse and allocate.
const MaxParams = 64

// The NaN bit patterns "nan" parses to: wasm's canonical quiet NaNs
// (positive, only the top fraction bit set). Go's math.NaN() has another
// payload, which would leak an implementation detail into the wasm call.
const (
	canonicalNaN32 = 0x7fc0_0000
	canonicalNaN64 = 0x7ff8_0000_0000_0000
)

// ParseParams reads a request's "params" field: a JSON list whose items are
// strings or numbers, such as ["30"] or [30, "-1.5"]. It returns each item's
// text (a string's contents, a number's literal) for [Bits] to convert once
// the types are known, and its length is the n that [ParseTypes] wants.
//
// An absent (empty) or null field, like an empty list, gives no params and a
// nil result. More than max items is an error found before they are
// allocated; max <= 0 means [MaxParams]. Errors name the item:
// "params[2]: want a string or a number, got null".
func ParseParams(raw json.RawMessage, max int) ([]Flex, error) {
	if max <= 0 {
		max = MaxParams
	}
	l := lexer{b: raw}
	tok, absent, err := l.field("params")
	if absent || err != nil {
		return nil, err
	}
	switch tok.kind {
	case kindList:
	default:
		return nil, invalidf("params: want a list of strings or numbers, got %s", tok.kind)
	}
	var args []Flex
	err = l.list("params", func(i int, tok token) error {
		if i >= max {
			return invalidf("params: more than %d values", max)
		}
		if tok.kind != kindString && tok.kind != kindNumber {
			return invalidf("params[%d]: want a string or a number, got %s", i, tok.kind)
		}
		args = append(args, Flex(tok.text()))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return args, nil
}

// Bits converts params read by [ParseParams] to the raw bits wazero passes,
// one per type: an i32 as uint64(uint32(v)) (never sign-extended), an i64 as
// uint64(v), an f32 as uint64(math.Float32bits(v)), an f64 as
// math.Float64bits(v). See the package doc for the accepted text.
//
// len(args) must equal len(types). Errors name the item:
// `params[1]: "3.5" is not an i32`. The result is nil when there are no
// args.
func Bits(args []Flex, types []Type) ([]uint64, error) {
	if len(args) != len(types) {
		return nil, invalidf("params: list has %s for %s", count(len(args), "value"), count(len(types), "param"))
	}
	if len(args) == 0 {
		return nil, nil
	}
	bits := make([]uint64, len(args))
	for i, a := range args {
		v, err := Parse(types[i], string(a))
		if err != nil {
			return nil, prefix(fmt.Sprintf("params[%d]", i), err)
		}
		bits[i] = v
	}
	return bits, nil
}

// Params is [ParseParams] then [Bits], for a caller that knows the types
// before it reads the params (from the export's signature, say).
func Params(raw json.RawMessage, types []Type, max int) ([]uint64, error) {
	args, err := ParseParams(raw, max)
	if err != nil {
		return nil, err
	}
	return Bits(args, types)
}

// Parse converts one value's text to the raw bits of type t, as [Bits] does
// for each param. Errors do not name a field: `"3.5" is not an i32`. An
// invalid t is an error that does not match [ErrInvalid]: it is a bug, not bad
// input.
func Parse(t Type, s string) (uint64, error) {
	switch t {
	case I32:
		return parseInt(s, t, 32)
	case I64:
		return parseInt(s, t, 64)
	case F32:
		return parseFloat(s, t, 32)
	case F64:
		return parseFloat(s, t, 64)
	}
	return 0, fmt.Errorf("wasmval: cannot parse a value of invalid type %d", uint8(t))
}

// parseInt reads an integer of size bits, accepting its signed and unsigned
// range, and returns it truncated to that size.
func parseInt(s string, t Type, size int) (uint64, error) {
	d, neg := s, false
	if len(d) > 0 && (d[0] == '+' || d[0] == '-') {
		d, neg = d[1:], d[0] == '-'
	}
	base := 10
	if len(d) > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X') {
		d, base = d[2:], 16
	}
	// With an explicit base, ParseUint takes digits only: no sign, no prefix,
	// no underscores (those are base 0's), so d is checked completely here.
	mag, err := strconv.ParseUint(d, base, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, outOfRange(s, t)
	case err != nil:
		return 0, notA(s, t)
	}
	if neg {
		if mag > 1<<(size-1) {
			return 0, outOfRange(s, t)
		}
		v := -mag // two's complement; -(1<<63) is its own negation
		if size == 32 {
			v = uint64(uint32(v))
		}
		return v, nil
	}
	if size == 32 && mag > math.MaxUint32 {
		return 0, outOfRange(s, t)
	}
	return mag, nil
}

// parseFloat reads a float of size bits.
func parseFloat(s string, t Type, size int) (uint64, error) {
	// ParseFloat also takes Go's digit separators ("1_000"); a client that
	// sends them is more likely confused than helped.
	if strings.IndexByte(s, '_') >= 0 {
		return 0, notA(s, t)
	}
	v, err := strconv.ParseFloat(s, size)
	switch {
	case errors.Is(err, strconv.ErrRange):
		// Only overflow: ParseFloat rounds underflow to zero without error.
		return 0, outOfRange(s, t)
	case err != nil:
		return 0, notA(s, t)
	}
	if size == 32 {
		if math.IsNaN(v) {
			return canonicalNaN32, nil
		}
		return uint64(math.Float32bits(float32(v))), nil
	}
	if math.IsNaN(v) {
		return canonicalNaN64, nil
	}
	return math.Float64bits(v), nil
}

func notA(s string, t Type) error {
	return invalidError(quote(s) + " is not an " + t.String())
}

func outOfRange(s string, t Type) error {
	return invalidError(quote(s) + " is out of range for " + t.String())
}
