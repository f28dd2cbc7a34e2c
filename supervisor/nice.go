package supervisor

import (
	"sync"
	"time"
)

// The supervisor's nice on the housekeeping CPUs follows the calls it has
// in hand (RATIONALE: "Why does the supervisor's nice change with its
// load?"). Under EEVDF a woken task preempts the running one when that one
// has had more than its share, and at nice -5 a nice-0 client sharing the
// CPU always has: a client that writes a request in two pieces is
// preempted by the first, and the supervisor reads half a request, sleeps
// and is woken again. Serving best-effort calls one at a time, the
// supervisor gains nothing by its weight; with calls queueing it needs it
// to keep up, and with a deadline call in hand to read its answer in time
// beside a busy neighbour. So it runs at nice 0 while it serves one
// best-effort call at a time, and at -5 from the moment a second call or
// one with a deadline arrives until calmAfter has passed without either.
const (
	busyNice  = supervisorNice
	aloneNice = 0
	calmAfter = time.Second
)

// niceState decides the supervisor's nice from the calls in hand: pure
// logic, its clock passed in.
type niceState struct {
	inHand int
	busyAt time.Time // the last time two calls, or one with a deadline, were in hand
	want   int
}

// begin counts a call in, one with a deadline or not, and returns the
// nice wanted from now.
func (n *niceState) begin(now time.Time, deadline bool) int {
	n.inHand++
	switch {
	case n.inHand > 1 || deadline:
		n.busyAt, n.want = now, busyNice
	case n.want != aloneNice && now.Sub(n.busyAt) >= calmAfter:
		n.want = aloneNice
	}
	return n.want
}

// end counts a call out: the calm after a deadline call starts at its end.
func (n *niceState) end(now time.Time, deadline bool) {
	n.inHand--
	if deadline {
		n.busyAt = now
	}
}

// niceGovernor applies niceState's decisions to the supervisor's threads,
// from a goroutine of its own: renicing every thread takes a few system
// calls a thread and may wait for threads being created (isolate.SetNice),
// which a call must not wait through.
type niceGovernor struct {
	mu       sync.Mutex
	st       niceState
	applied  int
	applying bool
	now      func() time.Time
	apply    func(nice int) error // nil: the governor is off
	failed   func(nice int, err error)
}

// newNiceGovernor starts at busyNice, the nice the supervisor was given at
// start; apply nil turns it off (the nice could not be set at all).
func newNiceGovernor(apply func(int) error, failed func(int, error)) *niceGovernor {
	return &niceGovernor{st: niceState{want: busyNice}, applied: busyNice, now: time.Now, apply: apply, failed: failed}
}

// begin counts a call in, one with a deadline or not; end counts it out.
func (g *niceGovernor) begin(deadline bool) {
	if g == nil || g.apply == nil {
		return
	}
	g.mu.Lock()
	g.st.begin(g.now(), deadline)
	g.startLocked()
	g.mu.Unlock()
}

func (g *niceGovernor) end(deadline bool) {
	if g == nil || g.apply == nil {
		return
	}
	g.mu.Lock()
	g.st.end(g.now(), deadline)
	g.mu.Unlock()
}

// startLocked starts applying the wanted nice if it is not the applied one
// and no one is applying it yet; g.mu held.
func (g *niceGovernor) startLocked() {
	if g.st.want != g.applied && !g.applying {
		g.applying = true
		go g.run()
	}
}

// run applies the wanted nice until it is the applied one. A failure is
// reported and taken as applied: the next change tries again.
func (g *niceGovernor) run() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.st.want != g.applied {
		want := g.st.want
		g.mu.Unlock()
		err := g.apply(want)
		g.mu.Lock()
		if err != nil && g.failed != nil {
			g.failed(want, err)
		}
		g.applied = want
	}
	g.applying = false
}

// nice returns the nice applied last.
func (g *niceGovernor) nice() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.applied
}
