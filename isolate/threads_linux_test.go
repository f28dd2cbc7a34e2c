package isolate

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeTasks is a simulated process for walk: threads with one attribute
// value each, clones in flight, and a clock that moves only when walk
// sleeps. A clone copies its creator's value when it begins (here: before
// the walk) and its thread is listed only when it ends, which is how the
// kernel does it (copy_process: dup_task_struct first, the thread list
// last).
type fakeTasks struct {
	t      time.Duration
	val    map[int]int  // the listed threads and their values
	busy   map[int]bool // computing: never asleep, CPU time grows with the clock
	clones []fakeClone
	// dies: a thread that ends (its clone first) when walk looks at it
	// after listing it, as a short-lived thread does.
	dies   map[int]bool
	sleeps int
}

type fakeClone struct {
	creator, child int
	val            int           // the creator's value when the clone began
	ends           time.Duration // when child is listed
}

func (f *fakeTasks) finish(upTo time.Duration, creator int) {
	for i := range f.clones {
		c := &f.clones[i]
		if c.ends >= 0 && (c.ends <= upTo || c.creator == creator) {
			if _, ok := f.val[c.creator]; ok || c.creator == creator {
				f.val[c.child] = c.val
				c.ends = -1
			}
		}
	}
}

func (f *fakeTasks) list() ([]int, error) {
	f.finish(f.t, 0)
	return slices.Sorted(maps.Keys(f.val)), nil
}

func (f *fakeTasks) probe(tid int) threadProbe {
	if _, ok := f.val[tid]; !ok {
		return threadProbe{gone: true}
	}
	for _, c := range f.clones {
		if c.creator == tid && c.ends > f.t {
			// Inside the clone: waiting for a CPU or asleep in the
			// kernel, no CPU time.
			return threadProbe{cpu: time.Millisecond}
		}
	}
	if f.busy[tid] {
		return threadProbe{cpu: time.Millisecond + f.t}
	}
	return threadProbe{out: true, cpu: time.Millisecond}
}

func (f *fakeTasks) sleep(d time.Duration) { f.sleeps++; f.t += d }

func (f *fakeTasks) now() time.Time { return time.Unix(0, 0).Add(f.t) }

func (f *fakeTasks) done(want int) func(int) (bool, error) {
	return func(tid int) (bool, error) {
		if f.dies[tid] {
			f.finish(f.t, tid)
			delete(f.val, tid)
			delete(f.dies, tid)
		}
		v, ok := f.val[tid]
		if !ok {
			return false, unix.ESRCH
		}
		return v == want, nil
	}
}

func (f *fakeTasks) set(want int) func(int) error {
	return func(tid int) error {
		if _, ok := f.val[tid]; !ok {
			return unix.ESRCH
		}
		f.val[tid] = want
		return nil
	}
}

// TestWalkClonesInFlight runs walk on simulated processes with clones in
// flight, which copied a creator's old value but are listed only later:
// once walk returns, no thread that exists then or appears afterwards may
// have the old value, however long the clone takes; walk says so when it
// cannot tell.
func TestWalkClonesInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       *fakeTasks
		wantErr string
		sleeps  int // at most; -1: any
	}{
		{name: "nothing to change, nothing in flight: one pass",
			f: &fakeTasks{val: map[int]int{1: 1, 2: 1, 3: 1}}},
		{name: "a creator waits 5 ms for a CPU inside its clone",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 0, 3: 0},
				clones: []fakeClone{{creator: 1, child: 4, val: 0, ends: 5 * time.Millisecond}}}, sleeps: -1},
		{name: "the late thread was cloning too",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 0},
				clones: []fakeClone{{creator: 1, child: 4, val: 0, ends: 5 * time.Millisecond},
					{creator: 4, child: 5, val: 0, ends: 8 * time.Millisecond}}}, sleeps: -1},
		{name: "a creator asleep 300 ms inside its clone (cgroup migration, reclaim)",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 0},
				clones: []fakeClone{{creator: 2, child: 7, val: 0, ends: 300 * time.Millisecond}}}, sleeps: -1},
		{name: "a thread computing, never asleep",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 0}, busy: map[int]bool{2: true}}, sleeps: -1},
		{name: "a thread ends after its listing, its clone listed after that pass",
			f: &fakeTasks{val: map[int]int{1: 1, 2: 1, 6: 0}, dies: map[int]bool{6: true},
				clones: []fakeClone{{creator: 6, child: 9, val: 0, ends: time.Hour}}}, sleeps: -1},
		{name: "a clone that does not end: an error, not a silent escape",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 0},
				clones: []fakeClone{{creator: 1, child: 3, val: 0, ends: time.Hour}}},
			wantErr: "thread 1: ", sleeps: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			err := walk(f, f.done(1), f.set(1))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.sleeps >= 0 && f.sleeps > tc.sleeps {
				t.Errorf("slept %d times, want at most %d", f.sleeps, tc.sleeps)
			}
			took := f.t
			f.t += time.Hour // every clone in flight ends
			f.list()
			for tid, v := range f.val {
				if v != 1 {
					t.Errorf("thread %d has the old value after the walk returned at %v; threads %v", tid, took, f.val)
				}
			}
		})
	}
}
