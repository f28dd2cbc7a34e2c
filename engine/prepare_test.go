package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// A prepared instance is what the next call without input runs in, and
// the call is the same as one that instantiates: a fresh instance, start
// functions run, the instantiation reported.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Config{})
	m := compile(t, e, "counter.wasm")
	prepared := func() *prepared {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.prep
	}
	for i, export := range []string{"incr", "incr_mem", "incr"} {
		if err := m.Prepare(ctx, 0); err != nil {
			t.Fatal(err)
		}
		p := prepared()
		if p == nil {
			t.Fatalf("call %d: nothing prepared", i)
		}
		if err := m.Prepare(ctx, 0); err != nil || prepared() != p {
			t.Fatalf("call %d: a second Prepare made another instance (%v)", i, err)
		}
		res, err := m.Call(ctx, export, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Results, []uint64{1}) {
			t.Errorf("%s in a prepared instance: %v, want [1] (a fresh instance)", export, res.Results)
		}
		if res.Instantiate < p.took {
			t.Errorf("reported instantiation %v, below the prepared instance's %v", res.Instantiate, p.took)
		}
		if prepared() != nil {
			t.Errorf("call %d did not take the prepared instance", i)
		}
	}

	// A call with input, or another output limit, instantiates its own.
	if err := m.Prepare(ctx, 0); err != nil {
		t.Fatal(err)
	}
	p := prepared()
	if _, err := m.CallIO(ctx, "incr", nil, IO{Stdin: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CallIO(ctx, "incr", nil, IO{OutputLimit: 7}); err != nil {
		t.Fatal(err)
	}
	if prepared() != p {
		t.Error("a call with input or another output limit took the prepared instance")
	}

	r := compile(t, e, "reactor.wasm")
	if err := r.Prepare(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Call(ctx, "ready", nil); err != nil || !slices.Equal(res.Results, []uint64{42}) {
		t.Errorf("reactor in a prepared instance: %v, %v; want [42] (_initialize ran)", res.Results, err)
	}
}

// Closing a module with a prepared instance discards it and frees the
// code; a Prepare after Close fails.
func TestPrepareClose(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Config{})
	m, err := e.Compile(ctx, fixture(t, "counter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prepare(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	active, prep := m.active, m.prep
	m.mu.Unlock()
	if active != 0 || prep != nil {
		t.Errorf("after Close: %d active, prepared %v; want 0 and none", active, prep != nil)
	}
	if err := m.Prepare(ctx, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Prepare after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Call(ctx, "incr", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close: %v, want ErrClosed", err)
	}
}
