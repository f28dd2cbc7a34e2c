package ipc

import (
	"errors"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/internal/rawsock"
)

// Poll reads from the socket fd into p without blocking, again and again
// until data comes or spin has passed, calling yield (if not nil) between
// tries; ok is false when nothing came. It is how a process that expects
// a frame soon waits for it on a CPU it may keep busy: a thread that
// sleeps instead makes the frame pay for waking the CPU, 50–80 µs on a VM
// (DESIGN.md §2a), more than the whole hop otherwise costs. n == 0 with
// io.EOF is the peer's close.
func Poll(fd int, p []byte, spin time.Duration, yield func()) (n int, err error, ok bool) {
	var end time.Time
	for i := 0; ; i++ {
		n, err = rawsock.Recv(fd, p)
		switch {
		case err == nil && n == 0 && len(p) > 0:
			return 0, io.EOF, true
		case err == nil:
			return n, nil, true
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return 0, err, true
		}
		// The clock is read every 16 tries: a try is ~0.5 µs, a clock
		// read costs as much again.
		if i&15 == 0 {
			now := time.Now()
			if end.IsZero() {
				end = now.Add(spin)
			} else if now.After(end) {
				return 0, nil, false
			}
		}
		if yield != nil {
			yield()
		}
	}
}
