package wasmval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// typesOf turns fuzz bytes into a type list, one type per byte.
func typesOf(codes []byte) []Type {
	types := make([]Type, 0, len(codes))
	for _, c := range codes {
		types = append(types, Type(c%4+1))
	}
	return types
}

// seedRef is Seed written the obvious way, as a reference.
func seedRef(types []Type, bits []uint64) string {
	parts := make([]string, len(bits))
	for i, b := range bits {
		switch types[i] {
		case I32:
			parts[i] = fmt.Sprintf("I32(%d)", int32(uint32(b)))
		case I64:
			parts[i] = fmt.Sprintf("I64(%d)", int64(b))
		case F32:
			parts[i] = fmt.Sprintf("F32(%d)", uint32(b))
		case F64:
			parts[i] = fmt.Sprintf("F64(%d)", b)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// decodeRef decodes a params field with encoding/json, as a reference: the
// items' texts, and whether ParseParams must accept it.
func decodeRef(raw []byte) (items []Flex, ok bool) {
	if len(bytes.Trim(raw, " \t\r\n")) == 0 { // JSON white space only, not \f or \v
		return nil, true
	}
	if !json.Valid(raw) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic(err) // json.Valid said it was valid
	}
	if v == nil {
		return nil, true
	}
	list, isList := v.([]any)
	if !isList || len(list) > MaxParams {
		return nil, false
	}
	for _, item := range list {
		switch item := item.(type) {
		case string:
			items = append(items, Flex(item))
		case json.Number:
			items = append(items, Flex(item))
		default:
			return nil, false
		}
	}
	return items, true
}

func FuzzParams(f *testing.F) {
	for _, c := range paramsCases {
		codes := make([]byte, len(c.types))
		for i, t := range c.types {
			codes[i] = byte(t - 1)
		}
		f.Add([]byte(c.raw), codes)
	}
	f.Fuzz(func(t *testing.T, raw, codes []byte) {
		types := typesOf(codes)
		args, perr := ParseParams(raw, 0)

		// The lexer accepts exactly what encoding/json does.
		items, ok := decodeRef(raw)
		if ok != (perr == nil) {
			t.Fatalf("ParseParams(%q): got error %v, want error: %v", raw, perr, !ok)
		}
		if ok && !slices.Equal(args, items) {
			t.Fatalf("ParseParams(%q): got %q, want %q", raw, args, items)
		}
		if perr != nil && !errors.Is(perr, ErrInvalid) {
			t.Fatalf("ParseParams(%q): got error %v not matching ErrInvalid", raw, perr)
		}

		bits, err := Params(raw, types, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Params(%q): got error %v not matching ErrInvalid", raw, err)
			}
			return
		}
		if len(bits) != len(types) {
			t.Fatalf("Params(%q, %v): got %d values, want %d", raw, types, len(bits), len(types))
		}
		for i, b := range bits {
			if (types[i] == I32 || types[i] == F32) && b>>32 != 0 {
				t.Fatalf("params[%d] %v: got bits %#x, want the upper half zero", i, types[i], b)
			}
			if v, err := Parse(types[i], string(args[i])); v != b || err != nil {
				t.Fatalf("Parse(%v, %q): got %#x, %v, want %#x", types[i], args[i], v, err, b)
			}
		}

		if got, want := Seed(types, bits), seedRef(types, bits); got != want {
			t.Fatalf("Seed: got %s, want %s", got, want)
		}

		// The JSON form reads back to the same bits. Parsed NaNs are
		// canonical, which is what "nan" reads back as, so NaNs round-trip
		// here too.
		js, err := json.Marshal(JSON(types, bits))
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back []Value
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", js, err)
		}
		if len(back) != len(bits) {
			t.Fatalf("%s: got %d values back, want %d", js, len(back), len(bits))
		}
		for i, v := range back {
			if v.Type != types[i] || v.Bits != bits[i] {
				t.Fatalf("%s [%d]: got %v %#x back, want %v %#x", js, i, v.Type, v.Bits, types[i], bits[i])
			}
		}
	})
}

// FuzzParse checks one value's text, with no JSON around it.
func FuzzParse(f *testing.F) {
	for _, c := range paramsCases {
		var items []Flex
		if err := json.Unmarshal([]byte(c.raw), &items); err != nil {
			continue
		}
		for i, it := range items {
			if i < len(c.types) {
				f.Add(byte(c.types[i]-1), string(it))
			}
		}
	}
	f.Fuzz(func(t *testing.T, code byte, s string) {
		typ := Type(code%4 + 1)
		bits, err := Parse(typ, s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%v, %q): got error %v not matching ErrInvalid", typ, s, err)
			}
			return
		}
		js, err := json.Marshal(Value{typ, bits})
		if err != nil {
			t.Fatal(err)
		}
		var back Value
		if err := json.Unmarshal(js, &back); err != nil || back != (Value{typ, bits}) {
			t.Fatalf("Parse(%v, %q) = %#x, %s: got %v %#x, %v back", typ, s, bits, js, back.Type, back.Bits, err)
		}
	})
}

func FuzzFlex(f *testing.F) {
	for _, c := range flexCases {
		f.Add([]byte(c.body))
	}
	for _, s := range []string{`true`, `[1]`, `{"a":1}`, `"\u00e9"`, ` 5 `, `"5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fl Flex
		err := json.Unmarshal(data, &fl)

		// Reference: encoding/json decoding the same bytes.
		var ref any
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		refErr := d.Decode(&ref)
		if refErr == nil && !json.Valid(data) {
			refErr = errors.New("text after the value")
		}
		if refErr != nil {
			if err == nil {
				t.Fatalf("%q: got %q, want an error", data, fl)
			}
			return
		}
		var typeErr *json.UnmarshalTypeError
		switch ref := ref.(type) {
		case nil:
			if err != nil || fl != "" {
				t.Fatalf("%q: got %q, %v, want absent", data, fl, err)
			}
		case string, json.Number:
			want := Flex(fmt.Sprint(ref))
			if err != nil || fl != want {
				t.Fatalf("%q: got %q, %v, want %q", data, fl, err, want)
			}
		default:
			if !errors.As(err, &typeErr) {
				t.Fatalf("%q: got %v, want a *json.UnmarshalTypeError", data, err)
			}
			return
		}

		i, iok, ierr := fl.Int64()
		x, fok, ferr := fl.Float64()
		if iok != (fl != "") || fok != (fl != "") {
			t.Fatalf("%q: got present %v, %v, want %v", fl, iok, fok, fl != "")
		}
		if ierr != nil && !errors.Is(ierr, ErrInvalid) || ferr != nil && !errors.Is(ferr, ErrInvalid) {
			t.Fatalf("%q: got errors %v, %v not matching ErrInvalid", fl, ierr, ferr)
		}
		// A number reads as encoding/json reads it into int64 and float64.
		if _, isNum := ref.(json.Number); isNum {
			var ri int64
			rierr := json.Unmarshal(data, &ri)
			if (rierr == nil) != (ierr == nil) || ri != i {
				t.Fatalf("Int64(%q): got %d, %v, encoding/json %d, %v", fl, i, ierr, ri, rierr)
			}
			var rf float64
			rferr := json.Unmarshal(data, &rf)
			if (rferr == nil) != (ferr == nil) || math.Float64bits(rf) != math.Float64bits(x) {
				t.Fatalf("Float64(%q): got %g, %v, encoding/json %g, %v", fl, x, ferr, rf, rferr)
			}
		}
		if ierr == nil && iok {
			if back, _, _ := Flex(strconv.FormatInt(i, 10)).Int64(); back != i {
				t.Fatalf("Int64(%q) = %d does not round-trip: got %d", fl, i, back)
			}
		}
		// A Flex marshals as a string and reads back unchanged.
		js, err := json.Marshal(fl)
		if err != nil {
			t.Fatal(err)
		}
		var back Flex
		if err := json.Unmarshal(js, &back); err != nil || back != fl {
			t.Fatalf("%q → %s: got %q, %v back", fl, js, back, err)
		}
	})
}
