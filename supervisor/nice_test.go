package supervisor

import (
	"errors"
	"testing"
	"time"
)

func TestNiceState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	n := niceState{want: busyNice}
	steps := []struct {
		name     string
		at       time.Duration // after t0
		begin    bool          // else end
		deadline bool
		want     int
	}{
		{"a lone call at start relaxes", 0, true, false, aloneNice},
		{"a second call in hand", time.Millisecond, true, false, busyNice},
		{"one ends", 2 * time.Millisecond, false, false, busyNice},
		{"the other ends", 3 * time.Millisecond, false, false, busyNice},
		{"a lone call within calmAfter stays busy", calmAfter, true, false, busyNice},
		{"", calmAfter + time.Millisecond, false, false, busyNice},
		{"a lone call calmAfter after the last two", calmAfter + time.Millisecond, true, false, aloneNice},
		{"", calmAfter + 2*time.Millisecond, false, false, aloneNice},
		{"lone calls stay alone", 10 * calmAfter, true, false, aloneNice},
		{"a call while one is in hand", 10 * calmAfter, true, false, busyNice},
		{"", 10 * calmAfter, false, false, busyNice},
		{"", 10 * calmAfter, false, false, busyNice},
		{"a lone call with a deadline", 20 * calmAfter, true, true, busyNice},
		{"it ends, a long run later", 22 * calmAfter, false, true, busyNice},
		{"a lone call just under calmAfter after its end", 23*calmAfter - time.Millisecond, true, false, busyNice},
		{"", 23 * calmAfter, false, false, busyNice},
		{"a lone call calmAfter after its end", 23 * calmAfter, true, false, aloneNice},
		{"", 23 * calmAfter, false, false, aloneNice},
	}
	for _, s := range steps {
		got := n.want
		if s.begin {
			got = n.begin(t0.Add(s.at), s.deadline)
		} else {
			n.end(t0.Add(s.at), s.deadline)
		}
		if got != s.want {
			t.Fatalf("%s (%v): nice %d, want %d", s.name, s.at, got, s.want)
		}
	}
	if n.inHand != 0 {
		t.Fatalf("%d calls left in hand", n.inHand)
	}
}

func TestNiceGovernor(t *testing.T) {
	applied := make(chan int, 10)
	var failures []int
	g := newNiceGovernor(func(n int) error {
		applied <- n
		if n == busyNice {
			return errors.New("EPERM")
		}
		return nil
	}, func(n int, err error) { failures = append(failures, n) })
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	next := func(want int) {
		t.Helper()
		select {
		case n := <-applied:
			if n != want {
				t.Fatalf("applied nice %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nice %d never applied", want)
		}
	}

	g.begin(false) // alone: relax
	next(aloneNice)
	g.end(false)
	g.begin(false)
	g.begin(false) // two in hand
	next(busyNice)
	g.end(false)
	g.end(false)
	now = now.Add(calmAfter)
	g.begin(false)
	g.end(false)
	next(aloneNice)
	for {
		g.mu.Lock()
		if !g.applying {
			break // locked
		}
		g.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	defer g.mu.Unlock()
	if g.applied != aloneNice {
		t.Fatalf("nice %d applied last, want %d", g.applied, aloneNice)
	}
	if len(failures) != 1 || failures[0] != busyNice {
		t.Fatalf("failures reported: %v, want [%d]", failures, busyNice)
	}
	select {
	case n := <-applied:
		t.Fatalf("nice %d applied with nothing changed", n)
	default:
	}
}

func TestNiceGovernorOff(t *testing.T) {
	var g *niceGovernor
	g.begin(false) // a supervisor without one (tests, no CAP_SYS_NICE)
	g.end(false)
	g = newNiceGovernor(nil, nil)
	g.begin(false)
	g.end(false)
	if g.applying {
		t.Fatal("a governor without apply started applying")
	}
}
