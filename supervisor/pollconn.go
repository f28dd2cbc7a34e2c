package supervisor

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hyper-sched/hyper-sched/internal/rawsock"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// resultSpin bounds how long the supervisor polls a lane's socket for the
// result of a job it just sent: the round trip of a short job. Past it the
// reader blocks as usual.
const resultSpin = 100 * time.Microsecond

// pollConn is the supervisor's end of a lane's socket. Its reader (the
// lane's serveChild) is parked in the runtime's poller while the lane is
// idle; when a job is sent, kick wakes it to poll the socket for up to
// spin, yielding to the supervisor's other goroutines between tries, so
// that the housekeeping CPU is still awake when the answer comes: a
// thread asleep in epoll_wait makes every short job pay for waking its
// CPU (DESIGN.md §2a).
type pollConn struct {
	net.Conn
	rc    syscall.RawConn // nil: no polling
	spin  time.Duration
	armed atomic.Bool
	// live is set once the lane is up and its frames are served: from
	// then on the read deadline is kick's alone (start-up sets its own).
	live atomic.Bool
	// quiet (ns, nil: 0) is how long after a kick no answer can be in yet:
	// half the fastest round trip measured (probe). The poll does not read the
	// socket before from, the kick's time plus quiet, and leaves the CPU
	// to the supervisor's other goroutines meanwhile: a read that cannot
	// find anything is a system call the HTTP side could have used.
	quiet *atomic.Int64
	from  atomic.Int64 // ipc.Monotonic ns
	// The poll's arguments and results, and the function rc.Read calls,
	// made once: a closure over locals would be allocated on every read.
	// Only the one reading goroutine uses them.
	buf  []byte
	n    int
	err  error
	got  bool
	poll func(fd uintptr) bool
}

func newPollConn(nc net.Conn, spin time.Duration) *pollConn {
	pc := &pollConn{Conn: nc, spin: spin}
	pc.poll = func(fd uintptr) bool {
		for from := pc.from.Load(); from > 0 && ipc.Monotonic() < from; {
			runtime.Gosched()
		}
		pc.n, pc.err, pc.got = ipc.Poll(int(fd), pc.buf, pc.spin, runtime.Gosched)
		return true
	}
	if sc, ok := nc.(syscall.Conn); ok && spin > 0 {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.rc = rc
		}
	}
	// Its frames, job frames out and answers in, are raw system calls
	// too: a call through package syscall would wake the supervisor's
	// sysmon on every job (rawsock).
	pc.Conn = rawsock.Wrap(nc)
	return pc
}

// kick makes the reader poll for the answer to a job just sent: a read in
// progress is cut short by a deadline in the past, and Read starts over
// polling.
func (pc *pollConn) kick() {
	if pc.rc == nil || !pc.live.Load() {
		return
	}
	if pc.quiet != nil {
		pc.from.Store(ipc.Monotonic() + pc.quiet.Load())
	}
	pc.armed.Store(true)
	pc.Conn.SetReadDeadline(time.Unix(1, 0))
}

// arm makes the next Read poll first, for a caller that reads the answer
// itself (the start-up probe).
func (pc *pollConn) arm() {
	if pc.rc != nil {
		pc.armed.Store(true)
	}
}

// Read polls first when kicked, then reads as the socket does. Once live,
// a deadline error is a kick's: no one else sets read deadlines on a
// lane's socket once it is up.
func (pc *pollConn) Read(p []byte) (int, error) {
	for {
		if pc.armed.Swap(false) {
			if pc.live.Load() {
				pc.Conn.SetReadDeadline(time.Time{}) // kick's
			}
			pc.buf, pc.got = p, false
			rerr := pc.rc.Read(pc.poll)
			pc.buf = nil
			if rerr != nil {
				if pc.live.Load() && errors.Is(rerr, os.ErrDeadlineExceeded) {
					// A kick's deadline, set after we cleared it: poll
					// again for the job it kicked for.
					pc.armed.Store(true)
					continue
				}
				return 0, rerr
			}
			if pc.got {
				return pc.n, pc.err
			}
		}
		n, err := pc.Conn.Read(p)
		if pc.rc != nil && pc.live.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			pc.Conn.SetReadDeadline(time.Time{})
			continue
		}
		return n, err
	}
}
