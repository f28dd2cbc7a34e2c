package supervisor

import (
	"sync"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// outbox serialises the frames to one child generation. Frames leave in
// the order they are given, so a module's Load always precedes the first
// Job that uses it. push never blocks: the supervisor queues frames while
// holding its lock, and the outbox's goroutine (run) writes them. send,
// for the small frames of the call path, writes in the caller's goroutine
// when nothing is queued or being written: handing a job to another
// goroutine costs a wake-up on every call.
type outbox struct {
	conn    *ipc.Conn
	mu      sync.Mutex
	q       []frame
	writing bool // a writer (run or send) owns conn
	sig     chan struct{}
	closed  bool
	// failed is called once, outside mu, when a write fails: the
	// connection is out of sync and must be closed.
	failed func()
	once   sync.Once
}

type frame struct {
	k ipc.Kind
	v any
}

func newOutbox(conn *ipc.Conn, failed func()) *outbox {
	return &outbox{conn: conn, sig: make(chan struct{}, 1), failed: failed}
}

// push queues a frame for run; after close it is dropped.
func (o *outbox) push(k ipc.Kind, v any) {
	o.mu.Lock()
	if !o.closed {
		o.q = append(o.q, frame{k, v})
	}
	o.mu.Unlock()
	o.wake()
}

// send writes a small frame at once when nothing is queued or being
// written, else queues it behind the others. It may block only as long as
// the peer takes to make room in the socket buffer for it, which a lane
// that is sent a job (idle, not stopped) does at once.
func (o *outbox) send(k ipc.Kind, v any) {
	if !o.trySend(k, v) {
		o.push(k, v)
	}
}

// trySend is send for a caller that reuses v: it writes v at once and
// reports true, or, when that would put it behind other frames, leaves it
// and reports false. After close it drops v and reports true.
func (o *outbox) trySend(k ipc.Kind, v any) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return true
	}
	if o.writing || len(o.q) > 0 {
		o.mu.Unlock()
		return false
	}
	o.writing = true
	o.mu.Unlock()
	err := o.conn.Write(k, v)
	o.mu.Lock()
	o.writing = false
	more := len(o.q) > 0
	o.mu.Unlock()
	if err != nil {
		o.fail()
		return true
	}
	if more {
		o.wake() // queued while we wrote
	}
	return true
}

func (o *outbox) wake() {
	select {
	case o.sig <- struct{}{}:
	default:
	}
}

// close stops run and drops whatever is queued.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.q = nil
	o.mu.Unlock()
	o.wake()
}

// fail closes the outbox after a write error and reports it once.
func (o *outbox) fail() {
	o.close()
	o.once.Do(o.failed)
}

// run writes queued frames until close or a write error.
func (o *outbox) run() {
	for range o.sig {
		for {
			o.mu.Lock()
			if o.closed {
				o.mu.Unlock()
				return
			}
			if o.writing || len(o.q) == 0 {
				o.mu.Unlock()
				break // send wakes us again when it is done
			}
			q := o.q
			o.q, o.writing = nil, true
			o.mu.Unlock()
			for _, f := range q {
				if err := o.conn.Write(f.k, f.v); err != nil {
					o.fail()
					return
				}
			}
			o.mu.Lock()
			o.writing = false
			o.mu.Unlock()
		}
	}
}
