package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

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
