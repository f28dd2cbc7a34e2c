package wasmval

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Type is a WebAssembly number type. The zero value is invalid.
type Type uint8

// The number types hyper-sched passes across the API. v128 is not supported:
// the seed accepted "u128" but never passed one through correctly.
const (
	I32 Type = iota + 1
	I64
	F32
	F64
)

// String returns the lowercase wasm name ("i32"), or "invalid".
func (t Type) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return "invalid"
}

// valid reports whether t is one of I32, I64, F32, F64.
func (t Type) valid() bool { return t >= I32 && t <= F64 }

// MarshalText returns the lowercase wasm name, so a Type is a JSON string
// ("i32"). An invalid Type is an error (not matching [ErrInvalid]: it is a
// bug, not bad input) rather than the text "invalid", so a bug cannot reach a
// client disguised as data.
func (t Type) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("wasmval: cannot marshal invalid type %d", uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText sets t from a name as [ParseType] reads it.
func (t *Type) UnmarshalText(text []byte) error {
	v, err := ParseType(string(text))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseType returns the Type named s: "i32", "i64", "f32" or "f64", in any
// case. "void" is not a value type and is an error here; [ParseTypes] gives
// it its meaning. "v128" and the seed's "u128" are a clear "not supported"
// error.
func ParseType(s string) (Type, error) {
	// EqualFold, not ToLower: no lowered copy is allocated.
	switch {
	case strings.EqualFold(s, "i32"):
		return I32, nil
	case strings.EqualFold(s, "i64"):
		return I64, nil
	case strings.EqualFold(s, "f32"):
		return F32, nil
	case strings.EqualFold(s, "f64"):
		return F64, nil
	case strings.EqualFold(s, "v128"), strings.EqualFold(s, "u128"):
		return 0, invalidf("%s: v128 values are not supported (want i32, i64, f32 or f64)", quote(s))
	case strings.EqualFold(s, "void"):
		return 0, invalidf(`"void" is not a value type (want i32, i64, f32 or f64)`)
	}
	return 0, invalidf("%s is not a wasm type (want i32, i64, f32 or f64)", quote(s))
}

// ParseTypes reads a request's "param_type" field for a call with n params.
//
// The field may be:
//   - absent (raw empty) or null: the result is nil, meaning "take the
//     export's signature";
//   - a string: one type for all n params, as the seed had it. "void" means
//     no params and requires n == 0;
//   - a list of strings, one type per param, for mixed types; its length
//     must equal n.
//
// Any non-nil result has length n (an empty, non-nil slice when n == 0);
// n must not be negative.
// Errors start with "param_type" and say what was wrong, for example
// "param_type: list has 2 types for 3 params".
func ParseTypes(raw json.RawMessage, n int) ([]Type, error) {
	l := lexer{b: raw}
	tok, absent, err := l.field("param_type")
	if absent || err != nil {
		return nil, err
	}
	switch tok.kind {
	case kindString:
		if err := l.end(); err != nil {
			return nil, prefix("param_type", err)
		}
		s := tok.text()
		if strings.EqualFold(s, "void") {
			if n != 0 {
				return nil, invalidf(`param_type: "void" with %s`, count(n, "param"))
			}
			return []Type{}, nil
		}
		t, err := ParseType(s)
		if err != nil {
			return nil, prefix("param_type", err)
		}
		types := make([]Type, n)
		for i := range types {
			types[i] = t
		}
		return types, nil
	case kindList:
		return parseTypeList(&l, n)
	}
	return nil, invalidf("param_type: want a type name or a list of type names, got %s", tok.kind)
}

// parseTypeList reads the rest of a "param_type" list after its "[". It
// keeps at most n types but counts them all, for the error message.
func parseTypeList(l *lexer, n int) ([]Type, error) {
	types := make([]Type, 0, n)
	total := 0
	err := l.list("param_type", func(i int, tok token) error {
		total = i + 1
		if tok.kind != kindString {
			return invalidf("param_type[%d]: want a type name, got %s", i, tok.kind)
		}
		if i >= n {
			return nil // counted for the message below, not kept
		}
		t, err := ParseType(tok.text())
		if err != nil {
			return prefix(fmt.Sprintf("param_type[%d]", i), err)
		}
		types = append(types, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if total != n {
		return nil, invalidf("param_type: list has %s for %s", count(total, "type"), count(n, "param"))
	}
	return types, nil
}

// count returns "1 param", "2 params".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
