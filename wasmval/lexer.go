package wasmval

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The lexer reads the few JSON shapes this package accepts — a scalar, or a
// flat list of scalars — straight from the request bytes. It exists so that
// a params list is checked against its cap while it is read, before anything
// is allocated per item, and so that the common case (short ASCII strings)
// costs no decoder state. It accepts exactly the JSON grammar (RFC 8259) for
// what it reads; FuzzParams checks that against encoding/json.

// kind is the kind of JSON value a token starts.
type kind uint8

const (
	kindString kind = iota + 1
	kindNumber
	kindNull
	kindBool
	kindList   // only the "[" was read
	kindObject // only the "{" was read
)

// String describes the kind for error messages: "got a boolean".
func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindList:
		return "a list"
	case kindObject:
		return "an object"
	}
	return "nothing"
}

// token is one JSON value, or the opening bracket of a list or an object.
type token struct {
	kind kind
	// raw is the value's text as it appears in the input, quotes included.
	raw []byte
	// plain is true for a string without escapes or non-ASCII bytes, whose
	// contents are raw[1:len(raw)-1] unchanged.
	plain bool
}

// text returns a string's contents or a number's text. It allocates, so the
// lexer calls it only for values it keeps.
func (t token) text() string {
	if t.kind != kindString {
		return string(t.raw)
	}
	if t.plain {
		return string(t.raw[1 : len(t.raw)-1])
	}
	// The lexer has checked the escapes, so this cannot fail; encoding/json
	// also turns invalid UTF-8 into U+FFFD, as every JSON decoder here does.
	var s string
	if err := json.Unmarshal(t.raw, &s); err != nil {
		panic("wasmval: lexer accepted an invalid string: " + err.Error()) // programmer error
	}
	return s
}

// lexer reads JSON from b, starting at byte i.
type lexer struct {
	b []byte
	i int
}

func (l *lexer) skipSpace() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// eof reports whether all input has been read.
func (l *lexer) eof() bool { return l.i >= len(l.b) }

// errorf returns a syntax error at the current position.
func (l *lexer) errorf(what string) error {
	return invalidf("malformed JSON at byte %d: %s", l.i, what)
}

// end checks that nothing but white space is left.
func (l *lexer) end() error {
	l.skipSpace()
	if !l.eof() {
		return l.errorf("unexpected " + char(l.b[l.i]) + " after the value")
	}
	return nil
}

// next reads the token that starts after white space at l.i.
func (l *lexer) next() (token, error) {
	l.skipSpace()
	if l.eof() {
		return token{}, l.errorf("unexpected end")
	}
	start := l.i
	c := l.b[l.i]
	switch {
	case c == '"':
		return l.str()
	case c == '-' || '0' <= c && c <= '9':
		end := scanNumber(l.b, l.i)
		if end < 0 {
			return token{}, l.errorf("malformed number")
		}
		l.i = end
		return token{kind: kindNumber, raw: l.b[start:end]}, nil
	case c == '[':
		l.i++
		return token{kind: kindList, raw: l.b[start:l.i]}, nil
	case c == '{':
		l.i++
		return token{kind: kindObject, raw: l.b[start:l.i]}, nil
	}
	for _, lit := range [...]struct {
		word string
		kind kind
	}{{"null", kindNull}, {"true", kindBool}, {"false", kindBool}} {
		if len(l.b)-l.i >= len(lit.word) && string(l.b[l.i:l.i+len(lit.word)]) == lit.word {
			l.i += len(lit.word)
			return token{kind: lit.kind, raw: l.b[start:l.i]}, nil
		}
	}
	return token{}, l.errorf("unexpected " + char(c))
}

// str reads a string whose opening quote is at l.i, checking its escapes.
func (l *lexer) str() (token, error) {
	start := l.i
	plain := true
	for j := l.i + 1; j < len(l.b); j++ {
		switch c := l.b[j]; {
		case c == '"':
			l.i = j + 1
			return token{kind: kindString, raw: l.b[start:l.i], plain: plain}, nil
		case c == '\\':
			plain = false
			n := escapeLen(l.b[j:])
			if n == 0 {
				l.i = j
				return token{}, l.errorf("invalid escape in string")
			}
			j += n - 1
		case c < 0x20:
			l.i = j
			return token{}, l.errorf("control character in string")
		case c >= 0x80:
			plain = false
		}
	}
	l.i = len(l.b)
	return token{}, l.errorf("unterminated string")
}

// escapeLen returns the length of the escape sequence at the start of b (which
// starts with a backslash), or 0 if it is not one JSON allows.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		for _, c := range b[2:6] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return 0
			}
		}
		return 6
	}
	return 0
}

// scanNumber returns the end of the JSON number that starts at s[i], or -1 if
// none does. The grammar is RFC 8259's: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber[S ~string | ~[]byte](s S, i int) int {
	digits := func(i int) int { // end of a run of digits starting at i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// list reads the items of a list whose "[" has just been read, and what
// follows it, which must be only white space. It calls fn with each item's
// index and token; fn must return an error for kindList and kindObject, whose
// contents list does not skip. Syntax errors are prefixed with name.
func (l *lexer) list(name string, fn func(i int, tok token) error) error {
	l.skipSpace()
	if !l.eof() && l.b[l.i] == ']' {
		l.i++
		return prefixErr(name, l.end())
	}
	for i := 0; ; i++ {
		tok, err := l.next()
		if err != nil {
			return prefix(name, err)
		}
		if err := fn(i, tok); err != nil {
			return err
		}
		if tok.kind == kindList || tok.kind == kindObject {
			panic("wasmval: list callback accepted a nested value") // programmer error
		}
		l.skipSpace()
		switch {
		case l.eof():
			return prefix(name, l.errorf("unexpected end"))
		case l.b[l.i] == ',':
			l.i++
		case l.b[l.i] == ']':
			l.i++
			return prefixErr(name, l.end())
		default:
			return prefix(name, l.errorf("unexpected "+char(l.b[l.i])+" in list"))
		}
	}
}

// prefixErr is prefix for an error that may be nil.
func prefixErr(p string, err error) error {
	if err == nil {
		return nil
	}
	return prefix(p, err)
}

// char describes one input byte for a syntax error.
func char(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return strconv.QuoteRune(rune(c))
}

// field reads the first token of a request field named name. absent is true
// for an empty field or a lone null, which both mean "not given"; errors are
// prefixed with name.
func (l *lexer) field(name string) (tok token, absent bool, err error) {
	l.skipSpace()
	if l.eof() {
		return token{}, true, nil
	}
	if tok, err = l.next(); err != nil {
		return token{}, false, prefix(name, err)
	}
	if tok.kind == kindNull {
		return token{}, true, prefixErr(name, l.end())
	}
	return tok, false, nil
}
