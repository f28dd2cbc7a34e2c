package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Modules for the limit tests, encoded by hand: a few bytes can declare
// what costs wazero gigabytes or minutes.

func leb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, leb(uint64(len(body)))...), body...)
}

// repeat is a vector of n copies of entry.
func repeat(n int, entry []byte) []byte {
	return append(leb(uint64(n)), bytes.Repeat(entry, n)...)
}

// module is a module with one function type () -> i32, the given sections
// before the code section and the given function bodies.
func module(sections [][]byte, bodies ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, []byte{1, 0x60, 0, 1, 0x7f})...)
	if len(bodies) > 0 {
		m = append(m, section(3, repeat(len(bodies), []byte{0}))...)
	}
	for _, s := range sections {
		m = append(m, s...)
	}
	if len(bodies) > 0 {
		code := leb(uint64(len(bodies)))
		for _, b := range bodies {
			code = append(append(code, leb(uint64(len(b)))...), b...)
		}
		m = append(m, section(10, code)...)
	}
	return m
}

// body is a function body with locals (declarations) and code, which must
// leave an i32; the final end is added.
func body(locals []byte, code ...byte) []byte {
	return append(append(locals, code...), 0x0b)
}

var noLocals = []byte{0}

func TestTableLimit(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "tablegrow.wasm")
	// Two tables share MaxTableElements: each may grow by half of what the
	// minima (1 and 0) leave.
	share := uint64(MaxTableElements-1) / 2
	for _, tt := range []struct {
		export string
		n      uint64
		want   uint64
	}{
		{"size", 0, 1},
		{"grow", 10, 1},
		{"grow", share, 1},
		{"grow", share + 1, i32(-1)}, // not a trap: refused like memory.grow
		{"grow_other", share, 0},
		{"grow_other", share + 1, i32(-1)},
		{"grow_other", 99_000_000, i32(-1)}, // under its declared maximum
		// wazero would allocate 32 GiB for this one, and a worker died of
		// "fatal error: runtime: out of memory": it stays last.
		{"grow", i32(-16), i32(-1)},
	} {
		var params []uint64
		if tt.export != "size" {
			params = []uint64{tt.n}
		}
		res, err := m.Call(context.Background(), tt.export, params)
		if err != nil {
			t.Fatalf("%s(%d): %v", tt.export, int32(tt.n), err)
		}
		if !slices.Equal(res.Results, []uint64{tt.want}) {
			t.Errorf("%s(%d): got %#x, want %#x", tt.export, int32(tt.n), res.Results, tt.want)
		}
	}
}

// TestClampTables checks the rewritten table section table by table.
func TestClampTables(t *testing.T) {
	limits := func(flags byte, v ...uint64) []byte {
		b := []byte{0x70, flags}
		for _, x := range v {
			b = append(b, leb(x)...)
		}
		return b
	}
	half := uint64(MaxTableElements-10) / 2
	tests := []struct {
		name string
		in   [][]byte // table entries
		want [][]byte // nil: unchanged
	}{
		{"max under the limit", [][]byte{limits(1, 5, 10)}, nil},
		{"no max", [][]byte{limits(0, 5)}, [][]byte{limits(1, 5, MaxTableElements)}},
		{"max over the limit", [][]byte{limits(1, 0, 1<<32-1)}, [][]byte{limits(1, 0, MaxTableElements)}},
		{"shared", [][]byte{limits(0, 4), limits(1, 6, 8)},
			[][]byte{limits(1, 4, 4+half), limits(1, 6, 8)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := func(entries [][]byte) []byte {
				return section(4, append(leb(uint64(len(entries))), bytes.Join(entries, nil)...))
			}
			in := module([][]byte{sec(tt.in)})
			got, err := precheck(in)
			if err != nil {
				t.Fatalf("precheck: %v", err)
			}
			want := in
			if tt.want != nil {
				want = module([][]byte{sec(tt.want)})
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got %x, want %x", got, want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	nested := func(n int) []byte {
		code := bytes.Repeat([]byte{0x02, 0x40}, n)
		code = append(code, bytes.Repeat([]byte{0x0b}, n)...)
		return body(noLocals, append(code, 0x41, 0)...)
	}
	brTable := func(n int) []byte {
		code := append([]byte{0x02, 0x40, 0x41, 0, 0x0e}, repeat(n, []byte{0})...)
		return body(noLocals, append(code, 0, 0x0b, 0x41, 0)...)
	}
	many := func(n int, b []byte) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = b
		}
		return out
	}
	locals := append([]byte{1}, leb(MaxLocals)...)
	locals = append(locals, 0x7f)
	tests := []struct {
		name string
		wasm []byte
		msg  string
	}{
		{"table minimum", module([][]byte{section(4, append([]byte{1, 0x70, 0}, leb(MaxTableElements+1)...))}),
			"tables of at least 262145 elements"},
		{"tables", module([][]byte{section(4, repeat(MaxTables+1, []byte{0x70, 0, 0}))}), "tables, over the limit"},
		{"globals", module([][]byte{section(6, repeat(MaxGlobals+1, []byte{0x7f, 0, 0x41, 0, 0x0b}))}), "globals, over the limit"},
		{"data segments", module([][]byte{section(11, repeat(MaxDataSegments+1, []byte{1, 0}))}), "data segments, over the limit"},
		{"elements", module([][]byte{section(9, append([]byte{1, 1, 0}, repeat(MaxTableElements+1, []byte{0})...))}, body(noLocals, 0x41, 0)),
			"element segments hold more than"},
		{"module locals", module(nil, many(MaxModuleLocals/MaxLocals+1, body(locals, 0x41, 0))...), "locals together"},
		{"br_table", module(nil, brTable(MaxBrTableTargets+1)), "br_table of 16385 targets"},
		{"nesting", module(nil, nested(MaxNesting)), "nested more than"},
		{"ref.func", fixture(t, "reffunc.wasm"), "ref.func"},
		{"unknown opcode", module(nil, body(noLocals, 0x12, 0)), "opcode 0x12"}, // return_call
	}
	e := newEngine(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Compile(context.Background(), tt.wasm)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
	// Just under the limits compiles.
	for _, wasm := range [][]byte{module(nil, nested(MaxNesting-2)), module(nil, brTable(1000))} {
		m, err := e.Compile(context.Background(), wasm)
		if err != nil {
			t.Fatalf("under the limits: %v", err)
		}
		m.Close(context.Background())
	}
}

func TestNotBinary(t *testing.T) {
	fib := fixture(t, "fib.wasm")
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"wat", fixture(t, "fib.wat"), "WebAssembly text format (.wat)"},
		{"wat with BOM and comments", []byte("\uFEFF (; block ;)\n;; line\n  (module)"), "wat2wasm"},
		{"module field", []byte("(func)"), "text format"},
		{"other", []byte("hello"), `not a WebAssembly binary: it begins "hell"`},
		{"component", append([]byte("\x00asm\x0d\x00\x01\x00"), fib[8:]...), "component"},
		{"version", append([]byte("\x00asm\x02\x00\x00\x00"), fib[8:]...), "binary version 2"},
	}
	e := newEngine(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Compile(context.Background(), tt.in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
}

// TestGoModule: Go's wasip1 modules declare their table without a maximum;
// the engine gives it one and the module runs as before, indirect calls
// (JSON through reflection) included.
func TestGoModule(t *testing.T) {
	wasm := fixture(t, "gowasm.wasm")
	out, err := precheck(wasm)
	if err != nil {
		t.Fatalf("precheck: %v", err)
	}
	if bytes.Equal(out, wasm) {
		t.Fatal("precheck left the table without a maximum")
	}
	e := newEngine(t, Config{})
	m := compile(t, e, "gowasm.wasm")
	res, err := m.Call(context.Background(), "jsonlen", []uint64{100})
	if err != nil || !slices.Equal(res.Results, []uint64{0x592}) {
		t.Fatalf("jsonlen(100): got %v, %v, want [0x592]", res.Results, err)
	}
}
