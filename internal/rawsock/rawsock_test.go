package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair is a connected loopback TCP pair: the first wrapped, the second
// as net returns it.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	w := Wrap(a)
	if _, ok := w.(*Conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *Conn", a, w)
	}
	t.Cleanup(func() { w.Close(); d.Close() })
	return w, d
}

// unixPair is a connected socketpair as the supervisor has with a lane.
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := Wrap(conn(fds[0])), conn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestRoundTrip(t *testing.T) {
	for name, pair := range map[string]func(*testing.T) (net.Conn, net.Conn){"tcp": tcpPair, "unix": unixPair} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t)
			// Larger than the socket buffers and than maxIO, so that both
			// sides wait in the poller and move it in pieces.
			want := make([]byte, 8<<20)
			for i := range want {
				want[i] = byte(i * 7)
			}
			var wg sync.WaitGroup
			wg.Add(2)
			var werr, perr error
			go func() { // a writes; b echoes back what it read
				defer wg.Done()
				if n, err := a.Write(want); err != nil || n != len(want) {
					werr = errors.Join(err, errors.New("short write"))
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, len(want))
				if _, err := io.ReadFull(b, buf); err != nil {
					perr = err
					return
				}
				_, perr = b.Write(buf)
			}()
			got := make([]byte, 0, len(want))
			buf := make([]byte, 100<<10)
			for len(got) < len(want) {
				n, err := a.Read(buf)
				if err != nil {
					t.Fatalf("read after %d bytes: %v", len(got), err)
				}
				got = append(got, buf[:n]...)
			}
			wg.Wait()
			if werr != nil || perr != nil {
				t.Fatalf("write: %v; peer: %v", werr, perr)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes read differ from bytes written")
			}
			// The peer's close is io.EOF, as net.Conn says it.
			b.Close()
			if n, err := a.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("read after the peer's close = %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	a, b := tcpPair(t)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := a.Read(make([]byte, 10))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline = %d, %v; want a timeout", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("deadline error %#v does not name the read", err)
	}
	// A deadline cleared lets the read wait for data again.
	a.SetReadDeadline(time.Time{})
	go func() { time.Sleep(10 * time.Millisecond); b.Write([]byte("late")) }()
	buf := make([]byte, 10)
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read = %q, %v", buf[:n], err)
	}
	// A write that cannot finish (the peer does not read) stops at its
	// deadline with what it wrote.
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err = a.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 64<<20 {
		t.Fatalf("write past its deadline = %d, %v; want part of it and a timeout", n, err)
	}
}

func TestClosed(t *testing.T) {
	a, b := tcpPair(t)
	// Writing to a peer that is gone fails (EPIPE or ECONNRESET); it does
	// not raise SIGPIPE, which would end the test binary.
	b.(*net.TCPConn).SetLinger(0)
	b.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write to a closed peer: %v; want EPIPE or ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || oe.Net != "tcp" {
		t.Fatalf("write error %#v is not a net.OpError naming the write", err)
	}
	a.Close()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v; want net.ErrClosed", err)
	}
}

func TestCloseWrite(t *testing.T) {
	a, b := tcpPair(t)
	if err := a.(*Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peer read after CloseWrite = %d, %v; want EOF", n, err)
	}
}

func TestWrapWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := Wrap(a); w != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want the pipe itself", w)
	}
}

// TestNoAllocations: a read and a write on the call path allocate nothing.
func TestNoAllocations(t *testing.T) {
	a, b := unixPair(t)
	msg, buf := []byte("job frame"), make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per round trip, want 0", allocs)
	}
}
