package coreworker

import (
	"errors"
	"io"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
		if n, err, ok := s.poll(p); ok {
			return n, err
		}
	}
	return s.r.Read(p)
}

// poll reads without blocking until data comes or spin has passed; ok is
// false when nothing came.
func (s *spinReader) poll(p []byte) (n int, err error, ok bool) {
	var end time.Time
	for i := 0; ; i++ {
		n, _, err = unix.Recvfrom(s.fd, p, unix.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF, true
		case err == nil:
			return n, nil, true
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return 0, err, true
		}
		// The clock is read every 16 polls: a poll is ~0.5 µs, a clock
		// read costs as much again.
		if i&15 == 0 {
			now := time.Now()
			if end.IsZero() {
				end = now.Add(s.spin)
			} else if now.After(end) {
				return 0, nil, false
			}
		}
	}
}
