package ipc

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestCheckLengths: every valid payload passes; a length that exceeds the
// bytes left fails, wherever it is nested.
func TestCheckLengths(t *testing.T) {
	valid := []any{
		nil, true, 7, -3, 1 << 40, 3.5, float32(1.5), "", "hello", []byte{1, 2, 3},
		[]any{1, "a", []any{nil, map[string]any{"k": []int{1, 2}}}},
		map[string]any{"exports": []map[string]any{{"name": "fib", "params": []uint8{1, 2}}}},
		Calibrated{ID: 9, Module: "m", Results: []uint64{1, 2, 3}, Clock: "wall"},
		make([]int, 70000), string(make([]byte, 70000)),
	}
	for _, v := range valid {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkLengths(b); err != nil {
			t.Errorf("%T: %v", v, err)
		}
		if err := checkLengths(b[:len(b)-1]); len(b) > 1 && err == nil {
			t.Errorf("%T cut by one byte: passed", v)
		}
	}
	for name, b := range map[string][]byte{
		"array32 of 3.7e9":           {0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0x01},
		"nested map32":               {0x91, 0x81, 0xa1, 'k', 0xdf, 0x7f, 0xff, 0xff, 0xff},
		"str32 past the end":         {0xdb, 0x00, 0x01, 0x00, 0x00, 'a'},
		"bin16 cut header":           {0xc5, 0x01},
		"unknown code":               {0xc1},
		"the FuzzRead crash, Loaded": []byte("\x86\xa2id\xcf\x00\x00\x00\x00\x00\x00\x00\a\xa4\x04\x00me\xa8fib.wasm\xa6sha256\xa2ab\xaacompile_ns\xd3\x00\x00\x00\x00\x00\x00\x00\x05\xa7exports\xdd\xdd\xdd\xdd\xdd"),
	} {
		if err := checkLengths(b); err == nil {
			t.Errorf("%s: passed", name)
		} else if name != "unknown code" && !errors.Is(err, errLengths) {
			t.Errorf("%s: %v, want errLengths", name, err)
		}
	}
}
