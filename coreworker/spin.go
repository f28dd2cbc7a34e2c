package coreworker

import (
	"io"
	"syscall"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// spinReader reads the supervisor's socket. After a job's result is
// written (arm), its next read polls the socket without blocking for up
// to spin before it blocks: the CPU is the worker's own, and a lane that
// sleeps between jobs makes the next job pay for waking an idle CPU
// (50–80 µs on a VM, DESIGN.md §2a), more than the whole hop otherwise
// costs. Any frame ends the spin, so the supervisor stops a spinning lane
// that must not hold the CPU (another lane is to run) with a Park frame.
type spinReader struct {
	r     io.Reader
	fd    int           // -1: r is not a socket we can poll
	spin  time.Duration // 0: never spin
	armed bool
}

func newSpinReader(r io.Reader) *spinReader {
	s := &spinReader{r: r, fd: -1}
	if sc, ok := r.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { s.fd = int(fd) })
		}
	}
	return s
}

// arm makes the next Read spin (after a job's result).
func (s *spinReader) arm() { s.armed = s.spin > 0 && s.fd >= 0 }

// Read polls for up to spin when armed, then reads as r does.
func (s *spinReader) Read(p []byte) (int, error) {
	if s.armed && len(p) > 0 {
		s.armed = false
		if n, err, ok := ipc.Poll(s.fd, p, s.spin, nil); ok {
			return n, err
		}
	}
	return s.r.Read(p)
}
