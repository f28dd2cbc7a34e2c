package httpapi

import (
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
	var seen uint16
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.byte(':') {
			return false
		}
		f := fastField(key)
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		switch f {
		case fWasmName, fTaskName, fExportFunc:
			v, ok := s.plainString()
			if !ok {
				return false
			}
			switch f {
			case fWasmName:
				b.WasmName = string(v)
			case fTaskName:
				b.TaskName = string(v)
			default:
				b.ExportFunc = string(v)
			}
		case fParamType, fParams:
			start := s.skipSpace()
			if !s.stringOrList() {
				return false
			}
			raw := append([]byte(nil), body[start:s.i]...)
			if f == fParamType {
				b.ParamType = raw
			} else {
				b.Params = raw
			}
		case fResultsLength, fExpected, fDeadline, fDeadlineAt:
			v, ok := s.flex()
			if !ok {
				return false
			}
			switch f {
			case fResultsLength:
				b.ResultsLength = v
			case fExpected:
				b.Expected = v
			case fDeadline:
				b.Deadline = v
			default:
				b.DeadlineAt = v
			}
		case fCaptureOutput, fAllowLate:
			v, ok := s.boolean()
			if !ok {
				return false
			}
			if f == fCaptureOutput {
				b.CaptureOutput = v
			} else {
				b.AllowLate = v
			}
		}
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

const (
	fWasmName = iota
	fTaskName
	fExportFunc
	fParamType
	fParams
	fResultsLength
	fExpected
	fDeadline
	fDeadlineAt
	fCaptureOutput
	fAllowLate
)

// fastField is the field key names, or -1 for one decodeCallFast leaves to
// encoding/json (which also matches keys regardless of case).
func fastField(key []byte) int {
	switch string(key) {
	case "wasm_name":
		return fWasmName
	case "task_unique_name":
		return fTaskName
	case "export_func":
		return fExportFunc
	case "param_type":
		return fParamType
	case "params":
		return fParams
	case "results_length":
		return fResultsLength
	case "expected_execution_time":
		return fExpected
	case "expected_deadline":
		return fDeadline
	case "deadline_at":
		return fDeadlineAt
	case "capture_output":
		return fCaptureOutput
	case "allow_late":
		return fAllowLate
	}
	return -1
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

// flex reads a plain string or a number, after white space, as
// wasmval.Flex holds it: the string's contents or the number's literal.
func (s *scanner) flex() (wasmval.Flex, bool) {
	if s.skipSpace(); s.peek() == '"' {
		v, ok := s.plainString()
		return wasmval.Flex(v), ok
	}
	v, ok := s.number()
	return wasmval.Flex(v), ok
}

// stringOrList reads a plain string, or a list of plain strings and
// numbers, after white space.
func (s *scanner) stringOrList() bool {
	if s.skipSpace(); s.peek() == '"' {
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

// boolean reads true or false after white space.
func (s *scanner) boolean() (bool, bool) {
	s.skipSpace()
	for _, w := range [...]struct {
		word string
		v    bool
	}{{"true", true}, {"false", false}} {
		if len(s.b)-s.i >= len(w.word) && string(s.b[s.i:s.i+len(w.word)]) == w.word {
			s.i += len(w.word)
			return w.v, true
		}
	}
	return false, false
}
