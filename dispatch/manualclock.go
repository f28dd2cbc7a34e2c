package dispatch

import (
	"fmt"
	"sync"
	"time"
)

// ManualClock is a Clock for tests: time moves only with Advance, which
// fires the due AfterFunc callbacks synchronously, in deadline order (ties
// in the order they were armed), each at its own instant. The callbacks
// lock the dispatcher's mutex, so Advance must not be called while holding
// it (or any lock a caller of the dispatcher holds).
type ManualClock struct {
	mu     sync.Mutex
	start  time.Time
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

type manualTimer struct {
	c    *ManualClock
	at   time.Time
	seq  uint64
	f    func()
	done bool // fired or stopped
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{start: start, now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run when Advance passes d from now.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.seq++
	c.timers = append(c.timers, t)
	return t
}

// Stop disarms t and reports whether it was armed.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			break
		}
	}
	return true
}

// Advance moves the clock d forward, firing every timer due by then.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		idx := -1
		for i, t := range c.timers {
			if t.at.After(end) {
				continue
			}
			if idx < 0 || t.at.Before(c.timers[idx].at) || (t.at.Equal(c.timers[idx].at) && t.seq < c.timers[idx].seq) {
				idx = i
			}
		}
		if idx < 0 {
			break
		}
		t := c.timers[idx]
		c.timers = append(c.timers[:idx], c.timers[idx+1:]...)
		t.done = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// AdvanceTo moves the clock to its start plus at.
func (c *ManualClock) AdvanceTo(at time.Duration) {
	d := c.start.Add(at).Sub(c.Now())
	if d < 0 {
		panic(fmt.Sprintf("ManualClock: AdvanceTo %v is in the past", at))
	}
	c.Advance(d)
}

// Pending returns the number of armed timers.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
