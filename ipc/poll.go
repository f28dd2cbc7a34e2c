package ipc

import (
	"errors"
	"io"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
		n, err = recvNow(fd, p)
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

// recvNow is recv(fd, p, MSG_DONTWAIT): unix.Recvfrom allocates a
// sockaddr on every call, which a poll makes thousands of times a job.
// It is a raw system call, one the runtime is not told of: it cannot
// block, and every call the runtime is told of wakes its sysmon thread
// when that sleeps. A lane polling through syscall.Syscall woke it every
// ~120 µs, and each time lost its CPU to it for ~20 µs: a job arriving
// then waited (perf sched timehist, docs/benchmarks.md).
func recvNow(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(ptr), uintptr(len(p)),
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
