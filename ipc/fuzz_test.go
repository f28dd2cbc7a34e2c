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
		{KindJob, &Job{ID: 2, Module: []byte("m"), Export: []byte("_start"), Stdin: []byte{0, 255}, Args: []byte("a\x00"), Env: []byte("K=v\x00")}},
		{KindResult, &Result{ID: 2, Stdout: []byte{0, 255}, StdoutBytes: 9, Exited: true, ExitCode: 3}},
		{KindLoad, &Load{ID: 1, Name: "a", Wasm: []byte("\x00asm")}},
		{KindLoaded, &Loaded{ID: 1, Exports: []Export{{Name: "f"}}}},
		{KindCalibrate, &Calibrate{ID: 2, Module: "a", Export: "f", Params: []uint64{30}}},
		{KindProgress, &Progress{ID: 2, Runs: 10}},
		{KindCalibrated, &Calibrated{ID: 2, Runs: 10, MedianNs: 5, Results: []uint64{1}, Clock: ClockWall}},
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
			case KindCalibrate:
				v = &Calibrate{}
			case KindProgress:
				v = &Progress{}
			case KindCalibrated:
				v = &Calibrated{}
			default:
				continue
			}
			if err := c.Decode(v); err != nil {
				return // the caller closes the connection
			}
		}
	})
}
