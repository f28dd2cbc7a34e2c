package engine

import (
	"errors"
	"fmt"
	"strings"
)

var errShort = errors.New("unexpected end")

// errUnfollowed stops the scan of one section at a form precheck does not
// model (a newer proposal): the rest of that section is left to wazero.
var errUnfollowed = errors.New("unfollowed form")

// precheck refuses modules that wazero would spend far more on than their
// size, at compile time or in every instance, and returns the bytes to
// compile: bin itself, or a copy whose table maxima are lowered to
// MaxTableElements (limits.go).
//
// It checks the header first, so that text and other files are named as
// such. wazero v1.12.0 allocates vectors by their declared count before
// reading them: a 17-byte module declaring 2^28 exports made it allocate
// 3.5 GB and take 14 s (found by FuzzCompile). Every element takes at least
// one byte, so a count larger than the bytes left is malformed, and
// rejecting it early is what wazero would conclude later. The scan follows
// wazero's reading order, including its reading past a section's declared
// end; a form it does not know ends the scan of that section, never the
// module, except in the table and code sections, whose limits must hold:
// there it refuses what it cannot read.
func precheck(bin []byte) ([]byte, error) {
	if err := header(bin); err != nil {
		return nil, err
	}
	c := checker{}
	pos := 8
	for pos < len(bin) {
		r := scanner{b: bin, pos: pos}
		id, err := r.byte()
		if err != nil {
			break
		}
		size, err := r.u32()
		if err != nil {
			break
		}
		start := r.pos
		if size > uint64(r.left()) {
			// wazero would allocate a custom section's declared size.
			return nil, fmt.Errorf("section %d at offset %d: size %d exceeds the %d bytes left", id, start, size, r.left())
		}
		r.c = &c
		if id == 4 && c.tableSection != [2]int{} {
			return nil, fmt.Errorf("section 4 at offset %d: a second table section", start)
		}
		err = r.section(id, size)
		if id == 4 && err == nil {
			if r.pos > start+int(size) {
				return nil, fmt.Errorf("section 4 at offset %d: its tables run past its end", start)
			}
			c.tableSection = [2]int{pos, start + int(size)}
		}
		if err != nil && !errors.Is(err, errUnfollowed) && !errors.Is(err, errShort) {
			return nil, fmt.Errorf("section %d at offset %d: %w", id, start, err)
		}
		if err != nil && (id == 4 || id == 10) {
			return nil, fmt.Errorf("section %d at offset %d: cannot be read: %w", id, start, err)
		}
		pos = start + int(size)
	}
	if err := c.totals(); err != nil {
		return nil, err
	}
	return c.clampTables(bin), nil
}

// wasmMagic begins every binary module.
const wasmMagic = "\x00asm"

// header checks the magic number and the version, and names what a file
// that is not a binary module looks like.
func header(bin []byte) error {
	if len(bin) < 4 || string(bin[:4]) != wasmMagic {
		if looksLikeText(bin) {
			return errors.New("this looks like the WebAssembly text format (.wat); hyper-sched takes the binary format: convert it with wat2wasm from wabt (or wasm-tools parse)")
		}
		return fmt.Errorf("not a WebAssembly binary: it begins %q, not %q", bin[:min(len(bin), 4)], wasmMagic)
	}
	if len(bin) < 8 {
		return fmt.Errorf("header: %d bytes, want 8", len(bin))
	}
	switch v := bin[4:8]; {
	case v[0] == 1 && v[1] == 0 && v[2] == 0 && v[3] == 0:
		return nil
	case v[2] == 1 && v[3] == 0: // layer 1: the component model
		return errors.New("this is a WebAssembly component (component model); hyper-sched runs core modules")
	default:
		return fmt.Errorf("binary version %d, want 1", uint32(v[0])|uint32(v[1])<<8|uint32(v[2])<<16|uint32(v[3])<<24)
	}
}

// looksLikeText reports whether bin begins, after an optional byte order
// mark, white space and comments, with the parenthesis that opens every
// text-format module or module field.
func looksLikeText(bin []byte) bool {
	s := string(bin)
	s = strings.TrimPrefix(s, "\uFEFF")
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, ";;"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return false
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "(;"):
			i := strings.Index(s, ";)")
			if i < 0 {
				return false
			}
			s = s[i+2:]
		default:
			return strings.HasPrefix(s, "(")
		}
	}
}

// scanner reads the wasm binary encoding from b at pos. Counts are checked
// against all bytes left, not the section's: wazero reads the same way.
type scanner struct {
	b   []byte
	pos int
	c   *checker // totals over the module; nil when only reading
}

func (r *scanner) left() int { return len(r.b) - r.pos }

func (r *scanner) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errShort
	}
	r.pos++
	return r.b[r.pos-1], nil
}

func (r *scanner) skip(n int) error {
	if n < 0 || n > r.left() {
		return errShort
	}
	r.pos += n
	return nil
}

// leb skips a LEB128 number of at most 10 bytes and returns its unsigned
// value (meaningful for u32 only).
func (r *scanner) leb() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i < 9 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errUnfollowed
}

func (r *scanner) u32() (uint64, error) {
	v, err := r.leb()
	if err == nil && v > 1<<32-1 {
		return 0, errUnfollowed
	}
	return v, err
}

// count reads a vector length or byte length that must not exceed the bytes
// left.
func (r *scanner) count(what string) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if n > uint64(r.left()) {
		return 0, fmt.Errorf("%s %d exceeds the %d bytes left", what, n, r.left())
	}
	return int(n), nil
}

func (r *scanner) name() (string, error) {
	n, err := r.count("name length")
	if err != nil {
		return "", err
	}
	s := string(r.b[r.pos : r.pos+n])
	r.pos += n
	return s, nil
}

// valtype skips a value type, including the typed-reference prefixes.
func (r *scanner) valtype() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	switch b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // numbers, v128, funcref, externref, exnref
		return nil
	case 0x63, 0x64: // (ref null ht), (ref ht)
		_, err = r.leb()
		return err
	}
	return errUnfollowed
}

func (r *scanner) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.leb(); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.leb()
	}
	return err
}

// constExpr skips a constant expression up to and including its end.
func (r *scanner) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x42, 0x23, 0xd2: // i32.const, i64.const, global.get, ref.func
			_, err = r.leb()
		case 0x43: // f32.const
			err = r.skip(4)
		case 0x44: // f64.const
			err = r.skip(8)
		case 0xd0: // ref.null heaptype
			_, err = r.leb()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const add, sub, mul
		case 0xfd: // v128.const
			var sub uint64
			if sub, err = r.leb(); err == nil {
				if sub != 12 {
					return errUnfollowed
				}
				err = r.skip(16)
			}
		default:
			return errUnfollowed
		}
		if err != nil {
			return err
		}
	}
}

// vector reads a count and calls each that many times.
func (r *scanner) vector(what string, each func() error) error {
	n, err := r.count(what)
	if err != nil {
		return err
	}
	for range n {
		if err := each(); err != nil {
			return err
		}
	}
	return nil
}

func (r *scanner) section(id byte, size uint64) error {
	switch id {
	case 0:
		return r.custom(size)
	case 1:
		n, err := r.count("type count")
		if err != nil {
			return err
		}
		if n > MaxTypes {
			return fmt.Errorf("%d types, over the limit of %d", n, MaxTypes)
		}
		for range n {
			if err := r.typeEntry(); err != nil {
				return err
			}
		}
		return nil
	case 2:
		return r.vector("import count", func() error {
			_, _, kind, err := r.importEntry()
			if kind == 0x00 {
				r.c.functions++
			}
			return err
		})
	case 3:
		return r.vector("function count", func() error { r.c.functions++; _, err := r.leb(); return err })
	case 4:
		return r.tables()
	case 6:
		n, err := r.count("global count")
		if err == nil && n > MaxGlobals {
			return fmt.Errorf("%d globals, over the limit of %d", n, MaxGlobals)
		}
		return err
	case 5, 13: // memory, tag: entries are not scanned
		_, err := r.count("entry count")
		return err
	case 7:
		return r.vector("export count", func() error {
			if _, err := r.name(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			_, err := r.leb()
			return err
		})
	case 9:
		return r.vector("element segment count", r.elemSegment)
	case 10:
		return r.codeSection()
	case 11:
		n, err := r.count("data segment count")
		if err != nil {
			return err
		}
		if n > MaxDataSegments {
			return fmt.Errorf("%d data segments, over the limit of %d", n, MaxDataSegments)
		}
		for range n {
			if err := r.dataSegment(); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func (r *scanner) custom(size uint64) error {
	start := r.pos
	name, err := r.name()
	if err != nil || name != "name" {
		return err
	}
	nameSize := uint64(r.pos - start)
	if nameSize > size {
		return nil // wazero reports the malformed section
	}
	// The name section, as wazero reads it: known subsections from their
	// start regardless of their declared size, until the section's limit
	// (which, as in wazero, wraps around when sizes disagree).
	for limit := size - nameSize; limit > 0; {
		sub, err := r.byte()
		if err != nil {
			return err
		}
		limit--
		before := r.pos
		subSize, err := r.u32()
		if err != nil {
			return err
		}
		limit -= uint64(r.pos - before)
		switch sub {
		case 0: // module name
			_, err = r.name()
		case 1: // function names
			err = r.vector("function name count", r.nameAssoc)
		case 2: // local names
			err = r.vector("local name function count", func() error {
				if _, err := r.leb(); err != nil {
					return err
				}
				return r.vector("local name count", r.nameAssoc)
			})
		default:
			err = r.skip(int(subSize))
		}
		if err != nil {
			return err
		}
		limit -= subSize
	}
	return nil
}

func (r *scanner) nameAssoc() error {
	if _, err := r.leb(); err != nil {
		return err
	}
	_, err := r.name()
	return err
}

func (r *scanner) functype() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b != 0x60 {
		return errUnfollowed
	}
	if err := r.vector("param count", r.valtype); err != nil {
		return err
	}
	return r.vector("result count", r.valtype)
}

func (r *scanner) typeEntry() error {
	if r.pos < len(r.b) && r.b[r.pos] == 0x4e { // rec group
		r.pos++
		return r.vector("rec group count", r.functype)
	}
	return r.functype()
}

// importEntry reads one import and returns its module, name and kind.
func (r *scanner) importEntry() (module, name string, kind byte, err error) {
	if module, err = r.name(); err != nil {
		return "", "", 0, err
	}
	if name, err = r.name(); err != nil {
		return "", "", 0, err
	}
	if kind, err = r.byte(); err != nil {
		return "", "", 0, err
	}
	switch kind {
	case 0x00: // func
		_, err = r.leb()
	case 0x01: // table
		if err = r.valtype(); err == nil {
			err = r.limits()
		}
	case 0x02: // memory
		err = r.limits()
	case 0x03: // global
		if err = r.valtype(); err == nil {
			_, err = r.byte()
		}
	case 0x04: // tag
		if _, err = r.byte(); err == nil {
			_, err = r.leb()
		}
	default:
		return "", "", 0, errUnfollowed
	}
	return module, name, kind, err
}

func (r *scanner) elemSegment() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags > 7 {
		return errUnfollowed
	}
	if flags&3 == 2 { // explicit table index
		if _, err := r.leb(); err != nil {
			return err
		}
	}
	if flags&1 == 0 { // active: offset
		if err := r.constExpr(); err != nil {
			return err
		}
	}
	if flags&3 != 0 { // element kind or reference type
		if flags&4 == 0 {
			_, err = r.byte()
		} else {
			err = r.valtype()
		}
		if err != nil {
			return err
		}
	}
	each := func() error { _, err := r.leb(); return err }
	if flags&4 != 0 {
		each = r.constExpr
	}
	n, err := r.count("element count")
	if err != nil {
		return err
	}
	if r.c != nil {
		if r.c.elems += uint64(n); r.c.elems > MaxTableElements {
			return fmt.Errorf("element segments hold more than %d elements", MaxTableElements)
		}
	}
	for range n {
		if err := each(); err != nil {
			return err
		}
	}
	return nil
}

func (r *scanner) dataSegment() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	switch flags {
	case 0:
		err = r.constExpr()
	case 1:
	case 2:
		if _, err = r.leb(); err == nil {
			err = r.constExpr()
		}
	default:
		return errUnfollowed
	}
	if err != nil {
		return err
	}
	n, err := r.count("data length")
	if err != nil {
		return err
	}
	return r.skip(n)
}
