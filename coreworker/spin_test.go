package coreworker

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a Unix stream socketpair as blocking
// files, as a lane is given its end (fd 3).
func socketPair(t *testing.T) (mine, theirs *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs = os.NewFile(uintptr(fds[0]), "lane"), os.NewFile(uintptr(fds[1]), "supervisor")
	t.Cleanup(func() { mine.Close(); theirs.Close() })
	return mine, theirs
}

// A socketWriter delivers every byte, in order: a frame the socket takes
// at once, and one so large that the raw send stops short and the rest
// goes through the blocking write while the peer reads slowly.
func TestSocketWriter(t *testing.T) {
	mine, theirs := socketPair(t)
	blocking := &countingFile{File: mine}
	w := newSocketWriter(blocking)
	if w.fd < 0 {
		t.Fatal("no descriptor found for a socket file")
	}
	small := []byte("a result frame")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB, far over the socket's buffer
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 64<<10)
		for b.Len() < len(small)+len(big) {
			n, err := theirs.Read(buf)
			if err != nil {
				break
			}
			b.Write(buf[:n])
			time.Sleep(100 * time.Microsecond) // slower than the writer
		}
		got <- b.Bytes()
	}()
	for _, p := range [][]byte{small, big} {
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write of %d bytes: %d, %v", len(p), n, err)
		}
	}
	if b := <-got; !bytes.Equal(b, append(small, big...)) {
		t.Fatalf("the peer read %d bytes, not the %d written in order", len(b), len(small)+len(big))
	}
	if blocking.n == 0 || blocking.n >= len(big) {
		t.Errorf("%d of the %d bytes went through the blocking write: want the raw sends to stop short, and only then", blocking.n, len(small)+len(big))
	}

	// A closed peer is an error (EPIPE), not a SIGPIPE that ends the lane.
	theirs.Close()
	if _, err := w.Write(small); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Write to a closed peer: %v, want EPIPE", err)
	}

	// A writer without a descriptor is written to as it is.
	var b bytes.Buffer
	if n, err := newSocketWriter(&b).Write(small); n != len(small) || err != nil || b.String() != string(small) {
		t.Errorf("Write to a bytes.Buffer: %d, %v, %q", n, err, b.String())
	}
}

// countingFile counts the bytes written through its Write; its descriptor
// is the file's.
type countingFile struct {
	*os.File
	n int
}

func (c *countingFile) Write(p []byte) (int, error) {
	n, err := c.File.Write(p)
	c.n += n
	return n, err
}
