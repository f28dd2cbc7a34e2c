package coreworker

import (
	"io"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/internal/rawsock"
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

func newSpinReader(r io.Reader) *spinReader { return &spinReader{r: r, fd: socketFD(r)} }

// socketFD is v's descriptor, or -1 when v has none (not a syscall.Conn).
func socketFD(v any) int {
	fd := -1
	if sc, ok := v.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(d uintptr) { fd = int(d) })
		}
	}
	return fd
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

// socketWriter writes the lane's frames to the supervisor's socket with
// raw send(2)s (rawsock.Send), which the Go runtime is not told of: a write
// through package os enters the runtime's syscall state, which wakes the
// lane's sysmon whenever that sleeps (rawsock), on every result. What the
// socket cannot take at once (a large result, a supervisor slow to read)
// goes on through w, which blocks.
type socketWriter struct {
	w  io.Writer
	fd int // -1: w is not a socket
}

func newSocketWriter(w io.Writer) *socketWriter { return &socketWriter{w: w, fd: socketFD(w)} }

func (s *socketWriter) Write(p []byte) (int, error) {
	if s.fd < 0 {
		return s.w.Write(p)
	}
	n, err := rawsock.SendSome(s.fd, p)
	switch {
	case err == unix.EAGAIN:
		m, err := s.w.Write(p[n:])
		return n + m, err
	case err != nil:
		return n, err
	}
	return n, nil
}
