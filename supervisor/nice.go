package supervisor

import (
	"sync"
	"time"
)

// The supervisor's nice on the housekeeping CPUs follows how many calls it
// has in hand (RATIONALE: "Why does the supervisor's nice change?").
//
// Under EEVDF a task woken on a CPU preempts the one running there when
// that one has had more than its share, and at nice -5 the supervisor's
// share is three times a nice-0 client's: a client on the same CPU is
// always over it. A client sending a request in two writes (Python's
// http.client: head, then body) is then preempted by the head, and the
// supervisor reads half a request, sleeps and is woken again by the body,
// on 98 % of calls against 59 % for a plain server at nice 0. Alone with
// its client the supervisor has nothing to win by its weight; with calls
// queueing it has: 128 connections on its CPU get three quarters of it at
// -5, half at 0. So it runs at nice 0 while it serves one call at a time,
// and at -5 from the moment a second one arrives until calmAfter has
// passed with no two at once.
const (
	busyNice  = supervisorNice
	aloneNice = 0
	calmAfter = time.Second
)

// niceState decides the supervisor's nice from the calls in hand: pure
// logic, its clock passed in.
type niceState struct {
	inHand int
	busyAt time.Time // the last time two calls or more were in hand
	want   int
}

// begin counts a call in and returns the nice wanted from now.
func (n *niceState) begin(now time.Time) int {
	n.inHand++
	switch {
	case n.inHand > 1:
		n.busyAt, n.want = now, busyNice
	case n.want != aloneNice && now.Sub(n.busyAt) >= calmAfter:
		n.want = aloneNice
	}
	return n.want
}

// end counts a call out.
func (n *niceState) end() { n.inHand-- }

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

// begin counts a call in; end, which it returns, counts it out.
func (g *niceGovernor) begin() (end func()) {
	if g == nil || g.apply == nil {
		return func() {}
	}
	g.mu.Lock()
	want := g.st.begin(g.now())
	if want != g.applied && !g.applying {
		g.applying = true
		go g.run()
	}
	g.mu.Unlock()
	return g.end
}

func (g *niceGovernor) end() {
	g.mu.Lock()
	g.st.end()
	g.mu.Unlock()
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
