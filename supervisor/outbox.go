package supervisor

import (
	"sync"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// outbox serialises the frames to one child generation on its own
// goroutine. Pushing never blocks, so the supervisor can queue frames while
// holding its lock, and frames leave in push order: a module's Load always
// precedes the first Job that uses it.
type outbox struct {
	mu     sync.Mutex
	q      []frame
	sig    chan struct{}
	closed bool
}

type frame struct {
	k ipc.Kind
	v any
}

func newOutbox() *outbox { return &outbox{sig: make(chan struct{}, 1)} }

// push queues a frame; after close it is dropped.
func (o *outbox) push(k ipc.Kind, v any) {
	o.mu.Lock()
	if !o.closed {
		o.q = append(o.q, frame{k, v})
	}
	o.mu.Unlock()
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
	select {
	case o.sig <- struct{}{}:
	default:
	}
}

// run writes queued frames to conn until close or a write error.
func (o *outbox) run(conn *ipc.Conn) error {
	for range o.sig {
		o.mu.Lock()
		q, closed := o.q, o.closed
		o.q = nil
		o.mu.Unlock()
		if closed {
			return nil
		}
		for _, f := range q {
			if err := conn.Write(f.k, f.v); err != nil {
				o.close()
				return err
			}
		}
	}
	return nil
}
