package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressCounts is one reading of the live counters.
type progressCounts struct {
	sent, ok, rejected, missed, errors, inflight int64
}

func (l *live) read() progressCounts {
	return progressCounts{sent: l.sent.Load(), ok: l.ok.Load(), rejected: l.rejected.Load(),
		missed: l.missed.Load(), errors: l.errors.Load(), inflight: l.inflight.Load()}
}

// progressLine formats one progress report. warmup marks a reading taken
// before the measured window.
func progressLine(elapsed time.Duration, c progressCounts, warmup bool) string {
	phase := ""
	if warmup {
		phase = " (warm-up)"
	}
	return fmt.Sprintf("%6.1fs%s  sent %d  ok %d  rejected %d  missed %d  errors %d  in flight %d",
		elapsed.Seconds(), phase, c.sent, c.ok, c.rejected, c.missed, c.errors, c.inflight)
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress writes progress lines to w until stop is closed, then the final
// line. On a terminal it rewrites one line twice a second; elsewhere (a log,
// a CI job) it writes a line every 5 seconds.
func progress(w io.Writer, l *live, start time.Time, warmup time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tty := isTerminal(w)
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	write := func(final bool) {
		el := time.Since(start)
		line := progressLine(el, l.read(), el < warmup)
		switch {
		case tty && final:
			fmt.Fprintf(w, "\r%s\033[K\n", line)
		case tty:
			fmt.Fprintf(w, "\r%s\033[K", line)
		default:
			fmt.Fprintln(w, line)
		}
	}
	for {
		select {
		case <-t.C:
			write(false)
		case <-stop:
			write(true)
			return
		}
	}
}

// plural returns "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
