package engine

import (
	"context"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// prepared is an instance of a module made before its call
// ([Module.Prepare]): instantiated with an empty IO, its start functions
// run, never called. It holds a reference on its module (acquire) until it
// is used or discarded.
type prepared struct {
	inst  api.Module
	mem   allocator
	out   output
	limit int           // the output limit it was made with
	took  time.Duration // its instantiation, and fn's making
	// fn is export's function, made ahead: making one allocates its call
	// stack (10 KiB with wazero), most of a short call's cost. A call of
	// another export makes its own.
	export string
	fn     api.Function
}

// Prepare makes the instance the module's next call without input will
// run in, if there is none yet, so that the call does not wait for
// instantiation: a worker does it after a call, while it waits for the
// next. The call is no different from one that instantiates: a fresh
// instance whose start functions ran with the same empty stdin, argv and
// environment, its output (a start function's included) the call's, and
// Result.Instantiate still reports the instantiation it did not wait for,
// so that estimates do not depend on whether an instance was ready.
// outputLimit is as IO.OutputLimit; a call with another limit, or with
// input, instantiates as usual and leaves the prepared instance for the
// next. export, when the module has it, is the function the next call is
// expected to call (the last one's): it is made ready too. An error is the
// instantiation's, and nothing is kept.
func (m *Module) Prepare(ctx context.Context, outputLimit int, export string) error {
	m.mu.Lock()
	have := m.prep != nil
	m.mu.Unlock()
	if have {
		return nil
	}
	if !m.acquire() {
		return ErrClosed
	}
	p := &prepared{limit: m.outputLimit(outputLimit)}
	p.out.stdout.limit, p.out.stderr.limit = p.limit, p.limit
	cfg := m.e.inst.WithStdout(&p.out.stdout).WithStderr(&p.out.stderr)
	t0 := time.Now()
	inst, err := m.e.rt.InstantiateModule(p.mem.context(ctx), m.compiled, cfg)
	if err != nil {
		p.mem.free()
		m.release()
		return classify(err, false)
	}
	p.inst = inst
	if _, ok := m.byName[export]; ok {
		p.export, p.fn = export, inst.ExportedFunction(export)
	}
	p.took = time.Since(t0)
	m.mu.Lock()
	keep := m.prep == nil && !m.dead
	if keep {
		m.prep = p
	}
	m.mu.Unlock()
	if !keep {
		m.discard(p)
	}
	return nil
}

// takePrepared returns the prepared instance for a call with io whose
// output limit is limit, if it can run in it; the caller then owns it.
func (m *Module) takePrepared(io IO, limit int) *prepared {
	if len(io.Stdin) > 0 || len(io.Args) > 0 || len(io.Env) > 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.prep
	if p == nil || p.limit != limit {
		return nil
	}
	m.prep = nil
	return p
}

// discard closes a prepared instance that will not be called and drops
// its reference on m.
func (m *Module) discard(p *prepared) {
	_ = p.inst.Close(context.Background()) // it never ran: only memory to release
	p.mem.free()
	m.release()
}

// outputLimit is the output limit of a call given limit (IO.OutputLimit).
func (m *Module) outputLimit(limit int) int {
	if limit > 0 {
		return limit
	}
	return m.e.cfg.StdoutLimit
}
