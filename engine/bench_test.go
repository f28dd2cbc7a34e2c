package engine

import (
	"context"
	"encoding/binary"
	"testing"
)

func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	e := newEngine(b, Config{})
	for _, bb := range []struct {
		name, file, export string
		params             []uint64
	}{
		{"noop", "fib.wasm", "noop", nil},
		{"fib20", "fib.wasm", "fib_r", []uint64{20}},
		// A module with a memory: instantiation maps and unmaps it.
		{"memory", "memgrow.wasm", "grow", []uint64{0}},
	} {
		m := compile(b, e, bb.file)
		b.Run(bb.name, func(b *testing.B) {
			var inst, exec int64
			for b.Loop() {
				res, err := m.Call(ctx, bb.export, bb.params)
				if err != nil {
					b.Fatal(err)
				}
				inst += int64(res.Instantiate)
				exec += int64(res.Exec)
			}
			b.ReportMetric(float64(inst)/float64(b.N), "inst-ns/op")
			b.ReportMetric(float64(exec)/float64(b.N), "exec-ns/op")
		})
	}
}

// withCustomSection returns wasm with a custom section holding n appended,
// so that every n gives bytes no cache has seen but the same code.
func withCustomSection(wasm []byte, n uint64) []byte {
	payload := binary.AppendUvarint([]byte{1, 'x'}, n)
	out := append([]byte(nil), wasm...)
	out = append(out, 0, byte(len(payload)))
	return append(out, payload...)
}

func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	wasm := fixture(b, "fib.wasm")
	b.Run("cold", func(b *testing.B) {
		e := newEngine(b, Config{})
		var n uint64
		for b.Loop() {
			n++
			m, err := e.Compile(ctx, withCustomSection(wasm, n))
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
	})
	b.Run("cached", func(b *testing.B) {
		// Every Compile misses the Engine's own map and wazero's in-memory
		// copy (both released by Close) and loads from the on-disk cache.
		e := newEngine(b, Config{CacheDir: b.TempDir()})
		m, err := e.Compile(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
		for b.Loop() {
			m, err := e.Compile(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
	})
}

// BenchmarkCallIO is the engine's share of a call's input and output cost:
// 1 MiB through stdin and back out of stdout, against a no-op of the same
// module (go test -bench CallIO -benchmem ./engine/).
func BenchmarkCallIO(b *testing.B) {
	ctx := context.Background()
	e := newEngine(b, Config{})
	m := compile(b, e, "echo.wasm")
	mib := make([]byte, 1<<20)
	for i := range mib {
		mib[i] = byte(i)
	}
	for _, bb := range []struct {
		name, export string
		in           []byte
	}{{"noop", "noop", nil}, {"echo-1MiB", "_start", mib}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				res, err := m.CallIO(ctx, bb.export, nil, IO{Stdin: bb.in, OutputLimit: 1 << 20})
				if err != nil || len(res.Stdout) != len(bb.in) {
					b.Fatal(err, len(res.Stdout))
				}
			}
		})
	}
}
