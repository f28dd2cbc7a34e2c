package supervisor

import "testing"

func TestNext(t *testing.T) {
	tests := []struct {
		from   State
		ev     Event
		wanted bool
		quick  bool
		to     State
		ok     bool
	}{
		{Stopped, EvStart, true, false, Starting, true},
		{Exited, EvStart, true, false, Starting, true},
		{Fatal, EvStart, true, false, Starting, true},
		{Running, EvStart, true, false, Running, false},
		{Starting, EvUp, true, false, Running, true},
		{Running, EvUp, true, false, Running, false},
		{Running, EvExit, true, false, Exited, true},
		{Running, EvExit, true, true, Backoff, true},
		{Starting, EvExit, true, false, Backoff, true},
		{Running, EvExit, false, false, Stopped, true},
		{Stopping, EvExit, true, false, Stopped, true},
		{Backoff, EvRetry, true, false, Starting, true},
		{Running, EvRetry, true, false, Running, false},
		{Running, EvStop, true, false, Stopping, true},
		{Backoff, EvStop, true, false, Stopped, true},
		{Stopped, EvStop, true, false, Stopped, false},
		{Backoff, EvGiveUp, true, false, Fatal, true},
		{Running, EvGiveUp, true, false, Running, false},
	}
	for _, tt := range tests {
		got, ok := Next(tt.from, tt.ev, tt.wanted, tt.quick)
		if got != tt.to || ok != tt.ok {
			t.Errorf("Next(%v, %d, wanted=%v, quick=%v): got %v %v, want %v %v", tt.from, tt.ev, tt.wanted, tt.quick, got, ok, tt.to, tt.ok)
		}
	}
	// Every state and event: the result is a valid state, and a refused
	// transition leaves the state alone.
	for s := Stopped; s <= Fatal; s++ {
		for e := EvStart; e <= EvGiveUp; e++ {
			for _, w := range []bool{false, true} {
				got, ok := Next(s, e, w, false)
				if got.String() == "UNKNOWN" || (!ok && got != s) {
					t.Errorf("Next(%v, %d, %v): got %v %v", s, e, w, got, ok)
				}
			}
		}
	}
}

func TestRing(t *testing.T) {
	var r ring
	if got, n := r.last(5); len(got) != 0 || n != 0 {
		t.Fatalf("empty ring: got %v %d", got, n)
	}
	for i := 0; i < ringLines+3; i++ {
		r.add(string(rune('a' + i%26)))
	}
	got, total := r.last(2)
	if total != ringLines+3 || len(got) != 2 {
		t.Fatalf("got %v total %d, want 2 lines total %d", got, total, ringLines+3)
	}
	want := []string{string(rune('a' + (ringLines+1)%26)), string(rune('a' + (ringLines+2)%26))}
	if got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
	r.add(string(make([]byte, ringLineMax+10)))
	if got, _ := r.last(1); len(got[0]) > ringLineMax+4 {
		t.Errorf("long line kept %d bytes, want at most %d", len(got[0]), ringLineMax+4)
	}
}
