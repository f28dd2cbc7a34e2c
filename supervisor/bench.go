package supervisor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// benchClient sends requests to benchd one at a time and waits for their
// answers, killing benchd when one takes longer than its limit.
//
// Every request carries a fresh id and benchd's answers echo it (Loaded,
// Progress, Calibrated). An answer is handed only to the request waiting
// for that id: one that comes after its request gave up, or that nobody
// asked for, is dropped, never taken as the answer to the next request.
type benchClient struct {
	s    *Supervisor
	mu   sync.Mutex // one request at a time; held across the wait
	last uint64     // the last request id; mu held

	rmu     sync.Mutex
	cur     chan any               // the waiting request's replies; nil when idle
	curID   uint64                 // the waiting request's id
	curGen  int                    // the benchd generation it was sent to
	downGen int                    // the last benchd generation that exited
	gen     int                    // benchd generation the loaded set belongs to
	loaded  map[string]*ipc.Loaded // module → benchd's answer to its compile in that generation
}

// lost is benchd's exit reason, delivered to a waiting request.
type lost struct{ why string }

// answerID is the request id an answer from benchd carries.
func answerID(v any) (uint64, bool) {
	switch v := v.(type) {
	case *ipc.Loaded:
		return v.ID, true
	case *ipc.Calibrated:
		return v.ID, true
	case *ipc.Progress:
		return v.ID, true
	}
	return 0, false
}

// loadOf is the request to load module m: its Load frame is made, with
// the bytes read from disk, only once the request's turn has come, so
// that registers waiting for benchd do not each hold a module in memory.
type loadOf struct{ m *Module }

// withID returns a copy of req carrying id; the caller's value is left as
// it was, so a request can be sent again.
func withID(req any, id uint64) (any, error) {
	switch r := req.(type) {
	case loadOf:
		f, err := r.m.loadFrame()
		if err != nil {
			return nil, err
		}
		f.ID = id
		return f, nil
	case *ipc.Load:
		c := *r
		c.ID = id
		return &c, nil
	case *ipc.Calibrate:
		c := *r
		c.ID = id
		return &c, nil
	}
	return nil, fmt.Errorf("benchd request %T carries no id", req)
}

// reply hands an answer from benchd to the request waiting for its id, and
// drops it otherwise.
func (b *benchClient) reply(v any) {
	id, _ := answerID(v)
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.cur == nil || id != b.curID {
		// An answer to a request that gave up (over its limit: benchd is
		// being killed) or to a load nobody waits for.
		var waiting any = "none"
		if b.cur != nil {
			waiting = b.curID
		}
		b.s.log.Debug("dropped a benchd answer: not the waiting request's", "answer", fmt.Sprintf("%T", v), "id", id, "waiting", waiting)
		return
	}
	if _, ok := v.(*ipc.Progress); ok && len(b.cur) >= cap(b.cur)-1 {
		return // progress beyond the buffer is dropped: the answer must fit
	}
	select {
	case b.cur <- v:
	default:
	}
}

// deliver decodes a Calibrated or Progress frame for the waiting request.
func (b *benchClient) deliver(k ipc.Kind, conn *ipc.Conn) error {
	var v any
	switch k {
	case ipc.KindCalibrated:
		v = &ipc.Calibrated{}
	default:
		v = &ipc.Progress{}
	}
	if err := conn.Decode(v); err != nil {
		return err
	}
	b.reply(v)
	return nil
}

// lost tells the request waiting on the benchd generation that exited that
// it is gone, and forgets what that benchd had compiled; s.mu held.
func (b *benchClient) lost(why string) {
	gen := b.s.benchd.gen
	b.rmu.Lock()
	defer b.rmu.Unlock()
	b.downGen = max(b.downGen, gen)
	b.loaded = nil
	if b.cur != nil && b.curGen == gen {
		select {
		case b.cur <- lost{why}:
		default:
		}
	}
}

// do sends one request (a *ipc.Load or *ipc.Calibrate, sent with a fresh id)
// and returns benchd's answer to it. progress, if not nil, sees its Progress
// frames. After limit, benchd is killed (and restarted by its supervise
// loop) and do fails.
func (b *benchClient) do(ctx context.Context, k ipc.Kind, req any, limit time.Duration, progress func(*ipc.Progress)) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err // the caller went while it waited for its turn
	}
	b.last++
	id := b.last
	req, err := withID(req, id)
	if err != nil {
		return nil, err
	}
	out, gen, err := b.s.benchdUp(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan any, 16)
	b.rmu.Lock()
	if b.downGen >= gen {
		// It exited between benchdUp and now: nothing will answer.
		b.rmu.Unlock()
		return nil, apierr.New(apierr.WorkerLost, "benchd exited before the request was sent; it is being restarted")
	}
	b.cur, b.curID, b.curGen = ch, id, gen
	if b.gen != gen || b.loaded == nil {
		b.gen, b.loaded = gen, map[string]*ipc.Loaded{}
	}
	b.rmu.Unlock()
	defer func() {
		b.rmu.Lock()
		b.cur, b.curID = nil, 0
		b.rmu.Unlock()
	}()
	out.push(k, req)
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case v := <-ch:
			switch v := v.(type) {
			case *ipc.Progress:
				if progress != nil {
					progress(v)
				}
				continue
			case lost:
				return nil, apierr.New(apierr.WorkerLost, "benchd exited during the request (%s); it is being restarted", v.why)
			}
			return v, nil
		case <-timer.C:
			b.s.killBenchd(gen)
			return nil, apierr.New(apierr.DeadlineExceeded, "benchd did not finish within %v; it was killed and is being restarted", limit)
		}
	}
}

// ensureLoaded compiles m in benchd unless this generation has it, and
// returns benchd's answer: its exports and compile time. A module compiled
// already is answered from what benchd said then; callers never get a nil
// Loaded without an error.
func (b *benchClient) ensureLoaded(ctx context.Context, m *Module) (*ipc.Loaded, error) {
	b.rmu.Lock()
	l := b.loaded[m.Name]
	b.rmu.Unlock()
	if l != nil && l.SHA256 == m.SHA256 {
		return l, nil
	}
	v, err := b.do(ctx, ipc.KindLoad, loadOf{m}, compileLimit, nil)
	if err != nil {
		return nil, err
	}
	l, ok := v.(*ipc.Loaded)
	if !ok {
		return nil, fmt.Errorf("benchd answered a load with %T", v)
	}
	if l.Err != "" {
		return l, apierr.New(apierr.InvalidWasm, "%s", l.Err)
	}
	b.rmu.Lock()
	if b.loaded != nil {
		c := *l
		c.SHA256 = m.SHA256 // what was sent, whatever benchd echoed
		b.loaded[m.Name] = &c
	}
	b.rmu.Unlock()
	return l, nil
}

// forget drops m from what benchd is believed to have compiled.
func (b *benchClient) forget(name string) {
	b.rmu.Lock()
	delete(b.loaded, name)
	b.rmu.Unlock()
}

// compileLimit bounds a compile in benchd. A large Go module compiles in a
// few seconds under wazero's compiler; a start function that never returns
// is not run at compile time, so this only guards against a stuck benchd.
const compileLimit = 60 * time.Second

// benchdUp waits until benchd is RUNNING and returns its outbox and
// generation.
func (s *Supervisor) benchdUp(ctx context.Context) (*outbox, int, error) {
	var (
		out      *outbox
		gen      int
		state    State
		shutting bool
	)
	settled := func() bool { // s.mu held
		c := s.benchd
		if c.state == Running && c.out != nil {
			out, gen = c.out, c.gen
		}
		state, shutting = c.state, s.shutting
		return out != nil || shutting
	}
	s.waitChild(ctx.Done(), 30*time.Second, settled)
	switch {
	case out != nil:
		return out, gen, nil
	case shutting:
		return nil, 0, apierrShutdown()
	case ctx.Err() != nil:
		return nil, 0, ctx.Err()
	}
	return nil, 0, apierr.New(apierr.WorkerLost, "benchd is not running (%s)", state)
}

// killBenchd kills generation gen of benchd.
func (s *Supervisor) killBenchd(gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.benchd
	if c.gen == gen && c.proc != nil {
		c.log.Warn("killing benchd: request over its limit")
		c.kill(c.proc, "")
	}
}
