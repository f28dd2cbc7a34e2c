package supervisor

import (
	"context"
	"log/slog"
	"strings"
)

// LogRing keeps the supervisor's last log lines, bounded like a child's
// stderr ring (500 lines of at most 2 KiB), for hyper-schedctl maintail: the
// daemon logs to stderr (the journal under systemd), which the control
// socket cannot read back. The zero value is ready to use.
type LogRing struct {
	r ring
}

// Handler returns a handler that passes every record to next and also
// writes it, in slog's text format, as one line into the ring. It records
// exactly the levels next is enabled for.
func (l *LogRing) Handler(next slog.Handler) slog.Handler {
	return &teeHandler{next: next, text: slog.NewTextHandler(ringWriter{&l.r}, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

// Last returns up to n most recent lines, oldest first.
func (l *LogRing) Last(n int) []string {
	lines, _ := l.r.last(n)
	return lines
}

type teeHandler struct {
	next slog.Handler
	text slog.Handler
}

func (h *teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	h.text.Handle(ctx, r) // writes to memory; cannot fail
	return err
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{next: h.next.WithAttrs(as), text: h.text.WithAttrs(as)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{next: h.next.WithGroup(name), text: h.text.WithGroup(name)}
}

// ringWriter adds each write of the text handler, one record, as a line.
type ringWriter struct{ r *ring }

func (w ringWriter) Write(p []byte) (int, error) {
	w.r.add(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
