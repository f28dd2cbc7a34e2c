package supervisor

import "sync"

// ring keeps the last lines a child wrote to stderr, for status and tail.
// It is bounded by line count and line length so a chatty child costs a
// fixed amount of memory.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
	total uint64 // lines ever written, for tail -f
}

const (
	ringLines   = 500
	ringLineMax = 2048
)

func (r *ring) add(line string) {
	if len(line) > ringLineMax {
		line = line[:ringLineMax] + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines == nil {
		r.lines = make([]string, ringLines)
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % ringLines
	r.full = r.full || r.next == 0
	r.total++
}

// last returns up to n most recent lines, oldest first, and the total count.
func (r *ring) last(n int) ([]string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := r.next
	if r.full {
		size = ringLines
	}
	n = min(n, size)
	out := make([]string, 0, n)
	for i := n; i > 0; i-- {
		out = append(out, r.lines[(r.next-i+ringLines)%ringLines])
	}
	return out, r.total
}

// lastSince returns the most recent line if it came after the since-th
// line ever written, else "".
func (r *ring) lastSince(since uint64) string {
	lines, total := r.last(1)
	if total <= since || len(lines) == 0 {
		return ""
	}
	return lines[0]
}
