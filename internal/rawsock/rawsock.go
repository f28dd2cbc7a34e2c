// Package rawsock reads and writes sockets with system calls the Go runtime
// is not told of.
//
// Every system call made through package syscall enters the runtime's
// syscall state, and entering it wakes the runtime's sysmon thread whenever
// that sleeps; it sleeps as soon as no goroutine runs, which for a daemon
// is between two requests. Awake, sysmon checks on the process every 20 µs
// for a millisecond. On a CPU the daemon shares with its clients each of
// those wake-ups is a context switch they wait for (docs/benchmarks.md:
// the supervisor's sysmon ran twice a call). A send or receive with
// MSG_DONTWAIT cannot block, so the runtime need not know of it: Conn makes
// them raw and waits in the runtime's poller, as net.Conn does, when one
// would block. Deadlines and Close work as on the net.Conn it wraps.
package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIO bounds one system call's copy: the runtime cannot hand the
// process's CPU to another goroutine during a raw call, so a large body is
// moved in pieces of a few microseconds each.
const maxIO = 64 << 10

// Recv is recv(fd, p, MSG_DONTWAIT) as a raw system call. It does not
// allocate (unix.Recvfrom allocates a sockaddr on every call).
func Recv(fd int, p []byte) (int, error) {
	return call(unix.SYS_RECVFROM, fd, p, unix.MSG_DONTWAIT)
}

// Send is send(fd, p, MSG_DONTWAIT|MSG_NOSIGNAL) as a raw system call: a
// peer that closed makes it fail with EPIPE, not raise SIGPIPE.
func Send(fd int, p []byte) (int, error) {
	return call(unix.SYS_SENDTO, fd, p, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
}

// SendSome sends p with Send, in pieces of at most 64 KiB, until all of it
// is sent, the socket is full (EAGAIN) or another error stops it: it
// returns how much was sent, and the error that stopped it (nil: all).
func SendSome(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := Send(fd, p[n:min(len(p), n+maxIO)])
		switch {
		case err == nil:
			n += m
		case err != unix.EINTR:
			return n, err
		}
	}
	return n, nil
}

func call(trap uintptr, fd int, p []byte, flags uintptr) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := unix.RawSyscall6(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)), flags, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Conn is a socket connection whose Read and Write are raw system calls.
// Its other methods are the wrapped connection's.
type Conn struct {
	net.Conn
	rc syscall.RawConn
	// One read and one write at a time, each with its arguments, results
	// and the function the RawConn calls made once: a closure over locals
	// would be allocated on every call.
	rmu, wmu sync.Mutex
	r, w     op
}

type op struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// Wrap returns c as a Conn, or c itself when it has no descriptor to make
// raw calls on (syscall.Conn), as with an in-memory pipe.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{Conn: c, rc: rc}
	rw.r.fn = rw.recv
	rw.w.fn = rw.send
	return rw
}

// recv is one try of Read: false asks the poller to wait until the socket
// is readable.
func (c *Conn) recv(fd uintptr) bool {
	for {
		n, err := Recv(int(fd), c.r.p)
		switch {
		case err == nil && n == 0:
			c.r.err = io.EOF
		case err == nil:
			c.r.n = n
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		default:
			c.r.err = c.opError("read", err)
		}
		return true
	}
}

// send writes all of c.w.p, in pieces: false asks the poller to wait
// until the socket is writable again.
func (c *Conn) send(fd uintptr) bool {
	n, err := SendSome(int(fd), c.w.p[c.w.n:])
	c.w.n += n
	switch {
	case err == unix.EAGAIN:
		return false
	case err != nil:
		c.w.err = c.opError("write", err)
	}
	return true
}

// Read reads as net.Conn does: io.EOF at the peer's close, deadlines as set.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.r = op{p: p[:min(len(p), maxIO)], fn: c.r.fn}
	err := c.rc.Read(c.r.fn)
	n, rerr := c.r.n, c.r.err
	c.r.p = nil
	if err != nil {
		return 0, named(err, "read")
	}
	return n, rerr
}

// Write writes all of p unless an error or deadline stops it, as net.Conn
// does.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w = op{p: p, fn: c.w.fn}
	err := c.rc.Write(c.w.fn)
	n, werr := c.w.n, c.w.err
	c.w.p = nil
	if err != nil {
		return n, named(err, "write")
	}
	return n, werr
}

// CloseWrite shuts down the writing side when the wrapped connection can
// (TCP, Unix sockets).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn is the wrapped connection's.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(),
		Err: os.NewSyscallError(op, err)}
}

// named gives an error of the RawConn (a deadline, a closed connection) the
// operation net.Conn would have named: "read", not "raw-read".
func named(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op // the RawConn made it for this call alone
	}
	return err
}
