package httpapi

import (
	"encoding/json"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// decodeCallFast decodes the body nearly every call sends, one flat object
// of the seed's fields, without encoding/json's reflection, which costs a
// loaded daemon several microseconds a call (docs/benchmarks.md, "Sixth
// pass"). It covers:
//
//   - wasm_name, task_unique_name, export_func: strings;
//   - param_type, params: a string, or a list of strings and numbers;
//   - results_length, expected_execution_time, expected_deadline,
//     deadline_at: a string or a number;
//   - capture_output, allow_late: true or false;
//
// each at most once, strings of printable ASCII without escapes, and
// nothing after the object. It reports false for any other body, and then
// b is to be discarded: json.Unmarshal decodes it, or says what is wrong
// with it. Where it reports true, b is what json.Unmarshal makes of the
// body (FuzzDecodeCallFast).
func decodeCallFast(body []byte, b *callBody) bool {
	s := scanner{b: body}
	if !s.byte('{') {
		return false
	}
	if s.skipSpace(); s.peek() == '}' {
		s.i++
		return s.end()
	}
	var seen uint16 // the fields read, by their number below
	for {
		key, ok := s.plainString()
		if !ok || !s.byte(':') {
			return false
		}
		var f int
		switch string(key) {
		case "wasm_name":
			f, ok = 0, s.str(&b.WasmName)
		case "task_unique_name":
			f, ok = 1, s.str(&b.TaskName)
		case "export_func":
			f, ok = 2, s.str(&b.ExportFunc)
		case "param_type":
			f, ok = 3, s.stringOrList(&b.ParamType)
		case "params":
			f, ok = 4, s.stringOrList(&b.Params)
		case "results_length":
			f, ok = 5, s.flex(&b.ResultsLength)
		case "expected_execution_time":
			f, ok = 6, s.flex(&b.Expected)
		case "expected_deadline":
			f, ok = 7, s.flex(&b.Deadline)
		case "deadline_at":
			f, ok = 8, s.flex(&b.DeadlineAt)
		case "capture_output":
			f, ok = 9, s.boolean(&b.CaptureOutput)
		case "allow_late":
			f, ok = 10, s.boolean(&b.AllowLate)
		default:
			// Left to encoding/json, which also matches keys regardless
			// of case and ignores unknown ones.
			return false
		}
		if !ok || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		switch s.skipSpace(); s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return false
		}
	}
}

// scanner reads the JSON decodeCallFast covers; every method reports
// false on anything else.
type scanner struct {
	b []byte
	i int
}

// skipSpace skips JSON white space and returns where it stopped.
func (s *scanner) skipSpace() int {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return s.i
		}
	}
	return s.i
}

// peek returns the byte at s.i, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// byte reads c after white space.
func (s *scanner) byte(c byte) bool {
	s.skipSpace()
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	return s.skipSpace() == len(s.b)
}

// plainString reads a string of printable ASCII without escapes, after
// white space, and returns its contents.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number at s.i and returns its literal.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return nil, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// digits reads one digit or more.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str reads a plain string, after white space, into dst.
func (s *scanner) str(dst *string) bool {
	v, ok := s.plainString()
	*dst = string(v)
	return ok
}

// flex reads a plain string or a number, after white space, into dst as
// wasmval.Flex holds it: the string's contents or the number's literal.
func (s *scanner) flex(dst *wasmval.Flex) bool {
	var v []byte
	var ok bool
	if s.skipSpace(); s.peek() == '"' {
		v, ok = s.plainString()
	} else {
		v, ok = s.number()
	}
	*dst = wasmval.Flex(v)
	return ok
}

// stringOrList reads a plain string, or a list of plain strings and
// numbers, after white space, and copies its JSON into dst.
func (s *scanner) stringOrList(dst *json.RawMessage) bool {
	start := s.skipSpace()
	if !s.value() {
		return false
	}
	*dst = append(json.RawMessage(nil), s.b[start:s.i]...)
	return true
}

// value reads what stringOrList does.
func (s *scanner) value() bool {
	if s.peek() == '"' {
		_, ok := s.plainString()
		return ok
	}
	if !s.byte('[') {
		return false
	}
	if s.skipSpace(); s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if s.skipSpace(); s.peek() == '"' {
			if _, ok := s.plainString(); !ok {
				return false
			}
		} else if _, ok := s.number(); !ok {
			return false
		}
		switch s.skipSpace(); s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// boolean reads true or false, after white space, into dst.
func (s *scanner) boolean(dst *bool) bool {
	s.skipSpace()
	for _, w := range [...]struct {
		word string
		v    bool
	}{{"true", true}, {"false", false}} {
		if len(s.b)-s.i >= len(w.word) && string(s.b[s.i:s.i+len(w.word)]) == w.word {
			s.i += len(w.word)
			*dst = w.v
			return true
		}
	}
	return false
}
