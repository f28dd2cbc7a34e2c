package engine

import (
	"encoding/binary"
	"fmt"
)

// checker gathers what precheck counts across sections.
type checker struct {
	functions uint64 // imported and defined
	elems     uint64 // in all element segments
	locals    uint64 // of all function bodies

	tables       []table // the table section's entries, in order
	tableSection [2]int  // the section's bytes in the module, header included; zero if none
}

// table is one entry of the table section: its limits and where they are.
type table struct {
	min, max  uint64
	hasMax    bool
	limitsPos int // offset of the limits' flag byte
	limitsEnd int // offset just past the limits
}

// totals checks the limits that hold for the module as a whole.
func (c *checker) totals() error {
	if c.functions > MaxFunctions {
		return fmt.Errorf("%d functions, over the limit of %d", c.functions, MaxFunctions)
	}
	var mins uint64
	for _, t := range c.tables {
		mins += t.min
	}
	if mins > MaxTableElements {
		return fmt.Errorf("tables of at least %d elements, over the limit of %d", mins, MaxTableElements)
	}
	return nil
}

// clampTables returns bin with every table's maximum lowered so that the
// maxima add up to at most MaxTableElements: each table may grow by an even
// share of what the minima leave, and no further than it declared. It
// returns bin itself when nothing changes.
func (c *checker) clampTables(bin []byte) []byte {
	if len(c.tables) == 0 {
		return bin
	}
	var mins uint64
	for _, t := range c.tables {
		mins += t.min
	}
	share := (MaxTableElements - mins) / uint64(len(c.tables))
	changed := false
	limits := make([][]byte, len(c.tables))
	for i, t := range c.tables {
		max := t.min + share
		if t.hasMax && t.max <= max {
			continue
		}
		changed = true
		limits[i] = binary.AppendUvarint(binary.AppendUvarint([]byte{0x01}, t.min), max)
	}
	if !changed {
		return bin
	}
	start, end := c.tableSection[0], c.tableSection[1]
	r := scanner{b: bin, pos: start + 1}
	size, _ := r.u32() // read once already
	body := make([]byte, 0, int(size)+len(c.tables)*8)
	at := r.pos
	for i, t := range c.tables {
		if limits[i] == nil {
			continue
		}
		body = append(body, bin[at:t.limitsPos]...)
		body = append(body, limits[i]...)
		at = t.limitsEnd
	}
	body = append(body, bin[at:end]...)
	out := make([]byte, 0, len(bin)+len(c.tables)*8)
	out = append(out, bin[:start]...)
	out = append(out, 4)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	return append(out, bin[end:]...)
}

// tables reads the table section, recording each table's limits.
func (r *scanner) tables() error {
	n, err := r.count("table count")
	if err != nil {
		return err
	}
	if n > MaxTables {
		return fmt.Errorf("%d tables, over the limit of %d", n, MaxTables)
	}
	for range n {
		init := false
		if r.pos < len(r.b) && r.b[r.pos] == 0x40 { // 0x40 0x00 tabletype expr
			r.pos++
			if b, err := r.byte(); err != nil || b != 0 {
				return errUnfollowed
			}
			init = true
		}
		if err := r.valtype(); err != nil {
			return err
		}
		t := table{limitsPos: r.pos}
		flags, err := r.byte()
		if err != nil {
			return err
		}
		if flags > 1 { // shared or 64-bit: wazero refuses both
			return fmt.Errorf("table limits flags %#x", flags)
		}
		if t.min, err = r.u32(); err != nil {
			return err
		}
		if flags == 1 {
			if t.max, err = r.u32(); err != nil {
				return err
			}
			t.hasMax = true
		}
		t.limitsEnd = r.pos
		if init {
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		r.c.tables = append(r.c.tables, t)
	}
	return nil
}

// codeSection reads every function body.
func (r *scanner) codeSection() error {
	n, err := r.count("function body count")
	if err != nil {
		return err
	}
	for i := range n {
		if err := r.body(); err != nil {
			return fmt.Errorf("function body %d: %w", i, err)
		}
	}
	return nil
}

// body reads one function body: its locals and its instructions, checking
// the limits of limits.go.
func (r *scanner) body() error {
	size, err := r.count("function body size")
	if err != nil {
		return err
	}
	if size > MaxFunctionSize {
		return fmt.Errorf("%d bytes, over the limit of %d", size, MaxFunctionSize)
	}
	end := r.pos + size
	var locals uint64
	err = r.vector("local declaration count", func() error {
		n, err := r.u32()
		if err != nil {
			return err
		}
		if locals += n; locals > MaxLocals {
			return fmt.Errorf("more than %d locals", MaxLocals)
		}
		return r.valtype()
	})
	if err != nil {
		return err
	}
	if r.c.locals += locals; r.c.locals > MaxModuleLocals {
		return fmt.Errorf("functions with more than %d locals together", MaxModuleLocals)
	}
	code := scanner{b: r.b[:end], pos: r.pos, c: r.c}
	if err := code.instructions(); err != nil {
		return err
	}
	r.pos = end
	return nil
}

// instructions reads a function's code up to the end of its body, checking
// nesting, br_table and ref.func.
func (r *scanner) instructions() error {
	depth := 1 // the function's own block
	for r.left() > 0 {
		at := r.pos
		op, _ := r.byte()
		var err error
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			if depth++; depth > MaxNesting {
				return fmt.Errorf("blocks nested more than %d deep", MaxNesting)
			}
			err = r.blockType()
		case op == 0x0b: // end
			depth--
		case op == 0x0e: // br_table
			err = r.brTable()
		case op == 0xd2: // ref.func
			// wazero v1.12.0 allocates a new function reference every
			// time ref.func runs, kept until the instance closes: a loop
			// of them takes a worker's memory without bound (10 million
			// took 450 MiB). Constant expressions (globals, element
			// segments) are evaluated once per instance and stay allowed.
			return fmt.Errorf("ref.func at offset %d: wazero allocates memory at every execution of it, without bound", at)
		case op == 0x0c || op == 0x0d || // br, br_if
			op == 0x10 || // call
			op >= 0x20 && op <= 0x26 || // local.*, global.*, table.get/set
			op == 0x3f || op == 0x40 || // memory.size, memory.grow
			op == 0x41 || op == 0x42 || // i32.const, i64.const
			op == 0xd0: // ref.null
			_, err = r.leb()
		case op == 0x11: // call_indirect: type, table
			err = r.lebs(2)
		case op >= 0x28 && op <= 0x3e: // loads and stores
			err = r.lebs(2)
		case op == 0x43:
			err = r.skip(4)
		case op == 0x44:
			err = r.skip(8)
		case op == 0x1c: // select t*
			err = r.vector("select type count", r.valtype)
		case op == 0xfc:
			err = r.prefixFC()
		case op == 0xfd:
			err = r.prefixFD()
		case op <= 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b ||
			op >= 0x45 && op <= 0xc4 || op == 0xd1:
			// no immediates
		default:
			return fmt.Errorf("opcode %#x at offset %d is not supported", op, at)
		}
		if err != nil {
			return err
		}
		if depth == 0 {
			return nil
		}
	}
	return errShort
}

// lebs skips n LEB128 numbers.
func (r *scanner) lebs(n int) error {
	for range n {
		if _, err := r.leb(); err != nil {
			return err
		}
	}
	return nil
}

// blockType skips a block type: empty, a value type or a type index.
func (r *scanner) blockType() error {
	if r.left() == 0 {
		return errShort
	}
	switch r.b[r.pos] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
		return nil
	}
	_, err := r.leb()
	return err
}

func (r *scanner) brTable() error {
	n, err := r.count("br_table target count")
	if err != nil {
		return err
	}
	if n > MaxBrTableTargets {
		return fmt.Errorf("br_table of %d targets, over the limit of %d", n, MaxBrTableTargets)
	}
	return r.lebs(n + 1)
}

// prefixFC skips the saturating truncations, bulk memory and table
// instructions.
func (r *scanner) prefixFC() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // trunc_sat
		return nil
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		return r.lebs(2)
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		return r.lebs(1)
	}
	return fmt.Errorf("opcode 0xfc %d is not supported", sub)
}

// prefixFD skips a SIMD instruction.
func (r *scanner) prefixFD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load_zero: memarg
		return r.lebs(2)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		return r.skip(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		return r.skip(1)
	case sub >= 84 && sub <= 91: // load_lane, store_lane: memarg, lane
		if err := r.lebs(2); err != nil {
			return err
		}
		return r.skip(1)
	case sub <= 255:
		return nil
	}
	return fmt.Errorf("opcode 0xfd %d is not supported", sub)
}
