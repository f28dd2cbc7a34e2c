package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// TestReloadSameBytesThenUnload: loading the same bytes twice under one name
// takes two engine references (Compile returns the same Module), so the
// reload must release the first or Unload leaves the module compiled.
func TestReloadSameBytesThenUnload(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join("..", "testdata", "fib.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(ctx, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	s := &Session{Engine: eng, Log: slog.New(slog.DiscardHandler), mods: map[string]*engine.Module{}}

	load := &ipc.Load{Name: "fib.wasm", Wasm: wasm}
	feed(t, s, frame{ipc.KindLoad, load}, frame{ipc.KindLoad, load})
	m, ok := s.Module([]byte("fib.wasm"))
	if !ok {
		t.Fatal("fib.wasm is not loaded")
	}
	if _, err := m.Call(ctx, "noop", nil); err != nil {
		t.Fatalf("call before unload: %v", err)
	}
	feed(t, s, frame{ipc.KindUnload, &ipc.Unload{Name: "fib.wasm"}})
	if _, ok := s.Module([]byte("fib.wasm")); ok {
		t.Fatal("fib.wasm is still loaded after unload")
	}
	if _, err := m.Call(ctx, "noop", nil); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("call after unload: got %v, want %v (module still referenced)", err, engine.ErrClosed)
	}
}

// TestLoadedEchoesID: a Loaded carries its Load's id, by which the
// supervisor tells benchd's answer to its request from a late one.
func TestLoadedEchoesID(t *testing.T) {
	ctx := context.Background()
	eng, err := engine.New(ctx, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	s := &Session{Engine: eng, Log: slog.New(slog.DiscardHandler), mods: map[string]*engine.Module{}}
	for _, l := range []*ipc.Load{{ID: 9, Name: "bad", Wasm: []byte("not wasm")}, {Name: "zero", Wasm: []byte("not wasm")}} {
		if got := s.load(ctx, l); got.ID != l.ID || got.Err == "" {
			t.Errorf("load %s: got id %d, err %q; want id %d and an error", l.Name, got.ID, got.Err, l.ID)
		}
	}
}

type frame struct {
	k ipc.Kind
	v any
}

// feed serves frames to s as the supervisor would send them, then closes
// the connection; the session's answers are dropped.
func feed(t *testing.T, s *Session, frames ...frame) {
	t.Helper()
	var in bytes.Buffer
	w := ipc.NewConn(&in, 0)
	for _, f := range frames {
		if err := w.Write(f.k, f.v); err != nil {
			t.Fatal(err)
		}
	}
	s.Conn = ipc.NewConn(struct {
		io.Reader
		io.Writer
	}{&in, io.Discard}, 0)
	err := s.serve(context.Background(), func(_ context.Context, _ *Session, k ipc.Kind) error {
		return fmt.Errorf("unexpected %v frame", k)
	})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// costly is a module that takes wazero a while to compile: one br_table of
// 10,000 targets (about 0.1 s and 30 MiB), within engine's static limits.
func costly() []byte {
	const n = 10_000
	code := binary.AppendUvarint([]byte{0, 0x02, 0x40, 0x41, 0, 0x0e}, n)
	code = append(code, bytes.Repeat([]byte{0}, n+1)...)
	code = append(code, 0x0b, 0x41, 0, 0x0b)
	sec := binary.AppendUvarint([]byte{1}, uint64(len(code))) // one body
	sec = append(sec, code...)
	m := []byte("\x00asm\x01\x00\x00\x00\x01\x05\x01\x60\x00\x01\x7f\x03\x02\x01\x00\x0a")
	m = binary.AppendUvarint(m, uint64(len(sec)))
	return append(m, sec...)
}

// TestCompileBudget: a compile over its budget is answered at once with an
// error naming the budget, and the process is ended to stop the compile.
func TestCompileBudget(t *testing.T) {
	ctx := context.Background()
	wasm := costly()
	for _, tt := range []struct {
		name   string
		budget func(int) (time.Duration, int64)
		want   string
	}{
		// Memory first: a later compile of the same module may reuse what
		// the process already holds.
		{"memory", func(int) (time.Duration, int64) { return time.Hour, 1 }, "of memory"},
		{"cpu", func(int) (time.Duration, int64) { return time.Nanosecond, 1 << 40 }, "of CPU"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eng, err := engine.New(ctx, engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(ctx)
			var out bytes.Buffer
			exited := false
			s := &Session{Conn: ipc.NewConn(&out, 0), Engine: eng, Log: slog.New(slog.DiscardHandler),
				mods:   map[string]*engine.Module{},
				budget: Budget{For: tt.budget, Exit: func() { exited = true }, Every: time.Millisecond}}
			if got := s.load(ctx, &ipc.Load{ID: 7, Name: "costly", Wasm: wasm}); got != nil {
				t.Fatalf("load answered %+v itself, want the watcher's answer only", got)
			}
			if !exited {
				t.Error("the process was not ended")
			}
			if _, ok := s.Module([]byte("costly")); ok {
				t.Error("the module over budget is loaded")
			}
			c := ipc.NewConn(&out, 0)
			k, err := c.Read()
			var l ipc.Loaded
			if err == nil {
				err = c.Decode(&l)
			}
			if err != nil || k != ipc.KindLoaded {
				t.Fatalf("answer: %v %v, want a loaded frame", k, err)
			}
			if l.ID != 7 || !strings.Contains(l.Err, tt.want) || !strings.Contains(l.Err, "too costly to compile") {
				t.Errorf("got id %d, err %q; want id 7 and an error mentioning %q", l.ID, l.Err, tt.want)
			}
		})
	}
	// Within budget, the same module loads.
	eng, err := engine.New(ctx, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	s := &Session{Engine: eng, Log: slog.New(slog.DiscardHandler), mods: map[string]*engine.Module{},
		budget: Budget{For: func(int) (time.Duration, int64) { return time.Hour, 1 << 40 }}}
	if got := s.load(ctx, &ipc.Load{Name: "costly", Wasm: wasm}); got == nil || got.Err != "" {
		t.Fatalf("load within budget: %+v", got)
	}
}
