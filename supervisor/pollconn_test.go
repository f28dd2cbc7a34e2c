package supervisor

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// A kick wakes a reader blocked on a live lane's socket to poll, and the
// deadline it uses never reaches the reader; before the lane is live a
// deadline is the caller's, as during start-up.
func TestPollConnKick(t *testing.T) {
	sup, lane := socketPair(t)
	pc := newPollConn(sup, 100*time.Microsecond)
	if pc.rc == nil {
		t.Skip("the socket offers no raw access (syscall.Conn)")
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := pc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("before live: got %v, want the deadline's error", err)
	}
	pc.SetReadDeadline(time.Time{})
	pc.live.Store(true)

	conn, peer := ipc.NewConn(pc, 0), ipc.NewConn(lane, 0)
	got := make(chan error, 1)
	go func() {
		for range 20 {
			k, err := conn.Read()
			if err == nil && k != ipc.KindResult {
				err = errors.New("not a result frame")
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	for i := range 20 {
		time.Sleep(time.Duration(i%3) * time.Millisecond) // blocked, or still polling
		pc.kick()
		pc.kick() // a second kick changes nothing
		if err := peer.Write(ipc.KindResult, &ipc.Result{ID: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not get 20 results")
	}
}

// livePollConn returns the supervisor's end of a socketpair as a live
// pollConn, and the lane's end.
func livePollConn(t *testing.T) (*pollConn, net.Conn) {
	sup, lane := socketPair(t)
	pc := newPollConn(sup, 100*time.Microsecond)
	if pc.rc == nil {
		t.Skip("the socket offers no raw access (syscall.Conn)")
	}
	pc.live.Store(true)
	return pc, lane
}

// Reading through a kicked pollConn allocates nothing.
func TestPollConnAllocs(t *testing.T) {
	pc, lane := livePollConn(t)
	buf := make([]byte, 8)
	msg := []byte("12345678")
	if n := testing.AllocsPerRun(50, func() {
		pc.arm()
		if _, err := lane.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Read(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a polled read: %v allocations, want 0", n)
	}
}

// After a kick the socket is not read for quiet, even when the answer is
// already in: no answer can be back sooner than the fastest round trip,
// and a read before it is a system call for nothing.
func TestPollConnQuiet(t *testing.T) {
	pc, lane := livePollConn(t)
	var quiet atomic.Int64
	quiet.Store(int64(20 * time.Millisecond))
	pc.quiet = &quiet
	conn, peer := ipc.NewConn(pc, 0), ipc.NewConn(lane, 0)
	if err := peer.Write(ipc.KindResult, &ipc.Result{ID: 1}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	pc.kick()
	if k, err := conn.Read(); err != nil || k != ipc.KindResult {
		t.Fatalf("read: kind %v, %v", k, err)
	}
	if d := time.Since(t0); d < 20*time.Millisecond {
		t.Errorf("the answer was read %v after the kick, within its quiet 20ms", d)
	}
}
