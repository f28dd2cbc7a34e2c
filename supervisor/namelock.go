package supervisor

import (
	"context"
	"slices"
	"sync"
)

// nameLocks are one lock per module name, made when first wanted and
// dropped when nobody holds or waits for it, so that changes of one module
// apply in one order while other modules' go on. A wait can be given up
// (ctx), which a sync.Mutex cannot.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	token chan struct{} // holds one value while the name is locked
	refs  int           // holders and waiters; nameLocks.mu held
}

// lock takes name's lock, waiting until ctx ends. contended, if not nil, is
// called before a wait.
func (l *nameLocks) lock(ctx context.Context, name string, contended func()) error {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*nameLock{}
	}
	e := l.m[name]
	if e == nil {
		e = &nameLock{token: make(chan struct{}, 1)}
		l.m[name] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.token <- struct{}{}:
		return nil
	default:
	}
	if contended != nil {
		contended()
	}
	select {
	case e.token <- struct{}{}:
		return nil
	case <-ctx.Done():
		l.drop(name, e)
		return ctx.Err()
	}
}

// unlock releases name's lock, which the caller holds.
func (l *nameLocks) unlock(name string) {
	l.mu.Lock()
	e := l.m[name]
	l.mu.Unlock()
	<-e.token
	l.drop(name, e)
}

// drop forgets one holder or waiter of e.
func (l *nameLocks) drop(name string, e *nameLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, name)
	}
}

// lock takes the locks of names, each once, in sorted order so that two
// writers wanting some of the same names never wait for each other, and
// returns their release. It waits as long as ctx allows; on an error it
// holds none.
func (st *store) lock(ctx context.Context, names ...string) (unlock func(), err error) {
	sorted := slices.Compact(slices.Sorted(slices.Values(names)))
	var held []string
	unlock = func() {
		for i := len(held) - 1; i >= 0; i-- {
			st.locks.unlock(held[i])
		}
		held = nil
	}
	for _, name := range sorted {
		if err := st.locks.lock(ctx, name, func() { st.step("lockwait", name) }); err != nil {
			unlock()
			return func() {}, err
		}
		held = append(held, name)
	}
	return unlock, nil
}
