package wasmval

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
)

// Flex is a request field that may arrive as a JSON string or a JSON number,
// such as "results_length", "expected_execution_time" and
// "expected_deadline": the seed's clients send "5", others 5. It holds the
// string's contents or the number's literal unchanged; the empty Flex means
// absent. Decode it with [Flex.Int64] or [Flex.Float64].
//
// Its numeric text must be a JSON number, as a string or not: "30", "-2.5",
// "1e3". A missing field, null and the empty string "" all read as absent.
// A boolean, list or object is a *json.UnmarshalTypeError, which
// encoding/json completes with the field's name.
//
// A Flex marshals as a JSON string, the form the seed's clients read.
type Flex string

// UnmarshalJSON implements json.Unmarshaler. Like encoding/json's own types,
// it leaves f unchanged on null.
func (f *Flex) UnmarshalJSON(b []byte) error {
	l := lexer{b: b}
	tok, err := l.next()
	if err != nil {
		return err
	}
	switch tok.kind {
	case kindBool, kindList, kindObject:
		// Only the bracket of a list or object was read; encoding/json has
		// checked the rest.
		return &json.UnmarshalTypeError{Value: jsonKind(tok.kind), Type: reflect.TypeFor[Flex]()}
	}
	if err := l.end(); err != nil {
		return err
	}
	if tok.kind != kindNull {
		*f = Flex(tok.text())
	}
	return nil
}

// jsonKind names a kind as encoding/json's UnmarshalTypeError.Value does.
func jsonKind(k kind) string {
	switch k {
	case kindBool:
		return "bool"
	case kindList:
		return "array"
	case kindObject:
		return "object"
	}
	return k.String()
}

// Int64 returns f as an integer. ok is false when f is absent (and then err
// is nil); a present value that is not a JSON integer literal in int64's
// range, such as "2.5", "1e3" or "0x10", is an error matching [ErrInvalid]:
// `"2.5" is not an integer`.
func (f Flex) Int64() (v int64, ok bool, err error) {
	if f == "" {
		return 0, false, nil
	}
	if scanNumber(f, 0) != len(f) {
		return 0, true, invalidError(quote(string(f)) + " is not an integer")
	}
	v, err = strconv.ParseInt(string(f), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, true, invalidError(quote(string(f)) + " is out of range")
	case err != nil:
		return 0, true, invalidError(quote(string(f)) + " is not an integer")
	}
	return v, true, nil
}

// Float64 returns f as a number. ok is false when f is absent (and then err
// is nil). A present value must be a JSON number literal whose value is
// finite; "nan", "inf" and "1e400" are errors matching [ErrInvalid], since
// these fields are times and counts: `"abc" is not a number`.
func (f Flex) Float64() (v float64, ok bool, err error) {
	if f == "" {
		return 0, false, nil
	}
	if scanNumber(f, 0) != len(f) {
		return 0, true, invalidError(quote(string(f)) + " is not a number")
	}
	v, err = strconv.ParseFloat(string(f), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, true, invalidError(quote(string(f)) + " is out of range")
	}
	return v, true, nil
}
