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
	// Each call's function prepared as expected, another one's, none, and
	// one the module lacks: the call is the same.
	for i, c := range []struct{ export, expected string }{
		{"incr", "incr"}, {"incr_mem", "incr"}, {"incr", ""}, {"incr", "nosuch"}, {"incr_mem", "incr_mem"},
	} {
		export := c.export
		if err := m.Prepare(ctx, 0, c.expected); err != nil {
			t.Fatal(err)
		}
		p := prepared()
		if p == nil {
			t.Fatalf("call %d: nothing prepared", i)
		}
		if ready := p.fn != nil; ready != (c.expected == "incr" || c.expected == "incr_mem") {
			t.Errorf("call %d: prepared for %q, function made: %v", i, c.expected, ready)
		}
		if err := m.Prepare(ctx, 0, c.expected); err != nil || prepared() != p {
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
	if err := m.Prepare(ctx, 0, ""); err != nil {
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

	// A call of another export than the prepared one calls its own.
	f := compile(t, e, "fib.wasm")
	if err := f.Prepare(ctx, 0, "fib_r"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.Call(ctx, "add", []uint64{2, 3}); err != nil || !slices.Equal(res.Results, []uint64{5}) {
		t.Errorf("add(2, 3) in an instance prepared for fib_r: %v, %v; want [5]", res.Results, err)
	}
	if err := f.Prepare(ctx, 0, "add"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.Call(ctx, "add", []uint64{2, 3}); err != nil || !slices.Equal(res.Results, []uint64{5}) {
		t.Errorf("add(2, 3) in an instance prepared for it: %v, %v; want [5]", res.Results, err)
	}

	r := compile(t, e, "reactor.wasm")
	if err := r.Prepare(ctx, 0, ""); err != nil {
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
	if err := m.Prepare(ctx, 0, ""); err != nil {
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
	if err := m.Prepare(ctx, 0, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Prepare after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Call(ctx, "incr", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close: %v, want ErrClosed", err)
	}
}
