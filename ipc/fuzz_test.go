package ipc

import (
	"bytes"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the frame reader and to every payload
// decoder. It must never panic, and the cap must hold.
func FuzzRead(f *testing.F) {
	for _, m := range []struct {
		k Kind
		v any
	}{
		{KindHello, &Hello{Version: Version, Role: "benchd"}},
		{KindJob, &Job{ID: 1, Module: []byte("fib.wasm"), Export: []byte("fib"), Params: []uint64{30}}},
		{KindResult, &Result{ID: 1, Results: []uint64{5}, Trap: "x"}},
		{KindLoad, &Load{Name: "a", Wasm: []byte("\x00asm")}},
		{KindLoaded, &Loaded{Exports: []Export{{Name: "f"}}}},
	} {
		var p pipe
		NewConn(&p, 0).Write(m.k, m.v)
		f.Add(p.Bytes())
	}
	f.Add([]byte{0, 0, 0, 1, 0x90})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewConn(&pipe{*bytes.NewBuffer(data)}, 1<<16)
		for {
			k, err := c.Read()
			if err != nil {
				return
			}
			var v any
			switch k {
			case KindHello:
				v = &Hello{}
			case KindJob:
				v = &Job{}
			case KindResult:
				v = &Result{}
			case KindLoad:
				v = &Load{}
			case KindLoaded:
				v = &Loaded{}
			default:
				continue
			}
			if err := c.Decode(v); err != nil {
				return // the caller closes the connection
			}
		}
	})
}
