package supervisor

import (
	"sync"

	"golang.org/x/sys/unix"
)

// fdReserveSize is how many descriptors the supervisor keeps for starting
// its children. A start needs seven (a socketpair, a stderr pipe, exec's
// status pipe, a pidfd); the rest covers a cgroup directory and a retry.
const fdReserveSize = 16

// fdReserve holds descriptors (of /dev/null) that nothing uses, released
// only when a child's start fails for want of descriptors: however many
// connections the HTTP server holds, a worker killed at its deadline can
// still be respawned. It is taken again after the start, as soon as
// descriptors are free.
type fdReserve struct {
	mu  sync.Mutex
	fds []int
}

// fill opens descriptors until the reserve is full or none is left.
func (r *fdReserve) fill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.fds) < fdReserveSize {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		r.fds = append(r.fds, fd)
	}
}

// release closes the reserve, reporting whether it held any.
func (r *fdReserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	held := len(r.fds) > 0
	r.fds = r.fds[:0]
	return held
}

// retry runs f; if it fails for want of descriptors (or memory) while
// the reserve holds some, it frees the reserve and runs f again. The
// reserve is taken again afterwards, as far as descriptors are free.
func (r *fdReserve) retry(f func() error) error {
	err := f()
	if err != nil && isResourceErr(err) && r.release() {
		err = f()
	}
	r.fill()
	return err
}
