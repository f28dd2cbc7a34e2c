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
	dies map[int]bool
	// cuts[n], when not 0, is a thread at which the n-th listing stops
	// and which then ends, as /proc/PID/task does with a thread that
	// exits just after it was listed.
	cuts []int
	// partial[n] makes the n-th listing stop after the first thread and
	// say it is incomplete, as readTasks does when it went past a thread
	// that had exited.
	partial []bool
	lists   int
	sleeps  int
}

type fakeClone struct {
	creator, child int
	val            int           // the creator's value when the clone began
	ends           time.Duration // when child is listed
	atSet          bool          // instead: as soon as walk changes creator
}

// finish ends the clones in flight for which end says so and whose
// creator is still there.
func (f *fakeTasks) finish(end func(c fakeClone) bool) {
	for i := range f.clones {
		c := &f.clones[i]
		if _, ok := f.val[c.creator]; ok && c.ends >= 0 && end(*c) {
			f.val[c.child] = c.val
			c.ends = -1
		}
	}
}

func (f *fakeTasks) list() ([]int, bool, error) {
	f.finish(func(c fakeClone) bool { return !c.atSet && c.ends <= f.t })
	tids := slices.Sorted(maps.Keys(f.val))
	n := f.lists
	f.lists++
	if n < len(f.cuts) && f.cuts[n] != 0 {
		tids = tids[:slices.Index(tids, f.cuts[n])+1]
		delete(f.val, f.cuts[n])
	}
	if n < len(f.partial) && f.partial[n] {
		return tids[:1], false, nil
	}
	return tids, true, nil
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
			f.finish(func(c fakeClone) bool { return c.creator == tid })
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
		f.finish(func(c fakeClone) bool { return c.atSet && c.creator == tid })
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
		{name: "a listing stops at a thread that ends, before a late thread",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 1}, cuts: []int{0, 2},
				clones: []fakeClone{{creator: 1, child: 5, val: 0, atSet: true}}}, sleeps: -1},
		{name: "a listing that leaves a late thread out, and says so",
			f: &fakeTasks{val: map[int]int{1: 0, 2: 1}, partial: []bool{false, true},
				clones: []fakeClone{{creator: 1, child: 5, val: 0, atSet: true}}}, sleeps: -1},
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
			f.finish(func(fakeClone) bool { return true })
			for tid, v := range f.val {
				if v != 1 {
					t.Errorf("thread %d has the old value after the walk returned at %v; threads %v", tid, took, f.val)
				}
			}
		})
	}
}

// TestReadTasksSaysWhenIncomplete lists a process that keeps creating and
// ending threads, three listings at a time: a thread in the first and the
// third was alive all through the second, so the second must have it,
// unless it says it is incomplete or its last thread is gone (walk lists
// again then). /proc/PID/task leaves such threads out about once in a
// thousand listings here.
func TestReadTasksSaysWhenIncomplete(t *testing.T) {
	cmd := helperDoing(t, "churn", nil)
	pid := cmd.Process.Pid
	time.Sleep(50 * time.Millisecond) // past the runtime's start
	type listing struct {
		tids    []int
		trusted bool
	}
	list := func() listing {
		tids, complete, err := readTasks(pid)
		if err != nil {
			t.Fatal(err)
		}
		if complete && len(tids) > 0 {
			if _, err := unix.SchedGetAttr(tids[len(tids)-1], 0); err != nil {
				complete = false // gone: the listing may have stopped at it
			}
		}
		return listing{tids, complete}
	}
	prev, cur := list(), list()
	left, n := 0, 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); n++ {
		next := list()
		for _, tid := range prev.tids {
			if !slices.Contains(cur.tids, tid) && slices.Contains(next.tids, tid) {
				left++
				if cur.trusted {
					t.Errorf("thread %d, alive all through, left out of a listing taken as complete: %v, then %v, then %v",
						tid, prev.tids, cur.tids, next.tids)
				}
			}
		}
		prev, cur = cur, next
	}
	t.Logf("%d listings; %d live threads left out, each in one that said so", n, left)
}
