package httpapi

import (
	"io"
	"sync"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// inputBudget bounds the bytes of call bodies the handlers hold at once —
// being read, then held as the input of a call until it is answered — so
// that --max-input does not multiply by the connection cap: 4,096
// connections each holding a 2 MiB body would be 8 GiB. A body's first
// freeBody bytes are free, the size every /call body had before calls had
// input. Over the budget a call is answered 503 with Retry-After.
type inputBudget struct {
	max int64

	mu   sync.Mutex
	used int64
}

// freeBody is the part of every body the budget does not count.
const freeBody = DefaultMaxBody

// inputRetry is the Retry-After of a call refused for want of budget:
// calls in flight hold it for their run, milliseconds to seconds.
const inputRetry = time.Second

// DefaultInputInFlight returns the default budget for maxInput: room for
// 64 inputs of 1 MiB, or 4 of the largest input, whichever is more.
func DefaultInputInFlight(maxInput int) int64 { return max(64<<20, 4*int64(maxInput)) }

func (b *inputBudget) take(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		e := apierr.New(apierr.Unschedulable, "call inputs in flight hold %s of the %s the daemon takes at once, and this one needs %s more; try again in %v",
			mib(b.used), mib(b.max), mib(n), inputRetry)
		e.RetryAfter = inputRetry
		return e
	}
	b.used += n
	return nil
}

func (b *inputBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inFlight returns the bytes held.
func (b *inputBudget) inFlight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// budgetBody is a request body that takes budget for what it reads beyond
// freeBody: all of a declared length at once, so that a body that cannot
// fit is refused before it is read, else a chunk ahead at a time. release
// gives it all back, once the call is answered.
type budgetBody struct {
	io.ReadCloser
	b     *inputBudget
	read  int64
	taken int64
}

// budgetChunk is how much budget an undeclared body takes at a time.
const budgetChunk = 256 << 10

// wrap wraps body; declared is its Content-Length (-1: unknown).
func (b *inputBudget) wrap(body io.ReadCloser, declared int64) (*budgetBody, error) {
	bb := &budgetBody{ReadCloser: body, b: b}
	if n := declared - freeBody; n > 0 {
		if err := b.take(n); err != nil {
			return nil, err
		}
		bb.taken = n
	}
	return bb, nil
}

func (bb *budgetBody) Read(p []byte) (int, error) {
	if need := bb.read + int64(len(p)) - freeBody - bb.taken; need > 0 {
		n := max(need, budgetChunk)
		if err := bb.b.take(n); err != nil {
			if err = bb.b.take(need); err != nil {
				return 0, err
			}
			n = need
		}
		bb.taken += n
	}
	n, err := bb.ReadCloser.Read(p)
	bb.read += int64(n)
	return n, err
}

// release gives the body's budget back; later calls do nothing.
func (bb *budgetBody) release() {
	bb.b.give(bb.taken)
	bb.taken = 0
}
