package supervisor

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// send writes at once when the outbox is idle, without its goroutine; a
// frame sent while a large one is being written is queued, without
// waiting, and goes out after it; after
// a failed write the failure is reported once and frames are dropped.
func TestOutboxSendOrder(t *testing.T) {
	sup, lane := socketPair(t)
	var failed atomic.Int32
	out := newOutbox(ipc.NewConn(sup, 0), func() { failed.Add(1); sup.Close() })
	peer := ipc.NewConn(lane, 0)

	// Idle, and no run goroutine: send alone delivers.
	out.send(ipc.KindJob, &ipc.Job{ID: 1})
	var j ipc.Job
	nextFrame(t, peer, ipc.KindJob, &j)
	if j.ID != 1 {
		t.Fatalf("job %d, want 1", j.ID)
	}

	// A module larger than the socket's buffer keeps run writing until
	// the peer reads it; a job sent meanwhile must not overtake it.
	go out.run()
	big := &ipc.Load{ID: 7, Name: "big", Wasm: make([]byte, 8<<20)}
	out.push(ipc.KindLoad, big)
	deadline := time.Now().Add(5 * time.Second)
	for {
		out.mu.Lock()
		busy := out.writing
		out.mu.Unlock()
		if busy || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sent := make(chan struct{})
	go func() { out.send(ipc.KindJob, &ipc.Job{ID: 2}); close(sent) }()
	select {
	case <-sent: // queued behind the load: the caller is not held
	case <-time.After(5 * time.Second):
		t.Fatal("send waited for a large frame the peer does not read")
	}
	var l ipc.Load
	nextFrame(t, peer, ipc.KindLoad, &l)
	if l.ID != 7 || len(l.Wasm) != len(big.Wasm) {
		t.Fatalf("load %d of %d bytes", l.ID, len(l.Wasm))
	}
	nextFrame(t, peer, ipc.KindJob, &j)
	if j.ID != 2 {
		t.Fatalf("job %d after the load, want 2", j.ID)
	}

	// The peer goes away: the failure is reported once, nothing blocks.
	lane.Close()
	for i := range 50 {
		out.send(ipc.KindJob, &ipc.Job{ID: uint64(10 + i)})
		out.push(ipc.KindPark, &ipc.Park{})
	}
	for time.Now().Before(deadline) && failed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := failed.Load(); n != 1 {
		t.Fatalf("failure reported %d times, want once", n)
	}
	out.close()
}
