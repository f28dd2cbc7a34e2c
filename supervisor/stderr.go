package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// stderrLineMax is the longest stderr line forwarded whole; the rest of a
// longer line is counted and dropped, and forwarding goes on with the next
// line (a Scanner would stop for good at its limit).
const stderrLineMax = 64 << 10

// readLines calls emit for every line of r, newline stripped, until EOF or
// a read error, which it returns (nil at EOF). A line longer than limit is
// cut to limit bytes and emit is told how many bytes were dropped. A last line
// without a newline is emitted too: a crashing child's final words rarely
// end in one.
func readLines(r io.Reader, limit int, emit func(line string, cut int)) error {
	br := bufio.NewReaderSize(r, 4096)
	var (
		buf []byte
		cut int
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if room := limit - len(buf); len(chunk) <= room {
			buf = append(buf, chunk...)
		} else {
			buf = append(buf, chunk[:max(room, 0)]...)
			cut += len(chunk) - max(room, 0)
		}
		switch {
		case err == nil:
			if cut > 0 && len(buf) > 0 && buf[len(buf)-1] != '\n' {
				cut-- // the newline was cut off with the rest
			}
			emit(trimEOL(buf), cut)
			buf, cut = buf[:0], 0
		case errors.Is(err, bufio.ErrBufferFull):
			// A long line: go on reading it.
		default:
			if len(buf) > 0 || cut > 0 {
				emit(trimEOL(buf), cut)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func trimEOL(b []byte) string {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b)
}

// forward copies a child's stderr lines into the supervisor's log, tagged
// with the child's name, and into its ring for status and tail, until every
// writer has closed the pipe (the child and anything it left behind). It
// closes r and then done.
func forward(c *child, r io.ReadCloser, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	err := readLines(r, stderrLineMax, func(line string, cut int) {
		if cut > 0 {
			line += fmt.Sprintf(" … [%d bytes cut]", cut)
		}
		c.errs.add(line)
		c.log.Info("child stderr", "line", line)
	})
	if err != nil {
		c.log.Warn("read child stderr", "err", err)
	}
}
