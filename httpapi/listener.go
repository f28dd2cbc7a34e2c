package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/internal/rawsock"
)

// Refusals of connections over the cap: how many at most are answered at
// once (each holds a descriptor until its client has read the answer, or
// refuseWait), and how long one may take. Beyond refusers, a connection is
// closed unanswered: answering must not cost more than the cap saves.
const (
	refusers    = 64
	refuseWait  = 2 * time.Second
	refuseHead  = 8 << 10 // request bytes read before answering
	refuseEvery = time.Minute
)

// RefuseReserve is how many descriptors a LimitListener may hold beyond its
// cap: the connections it is refusing.
const RefuseReserve = refusers

// LimitListener returns ln, serving at most max connections at once. A
// connection beyond them is not left waiting in the accept queue (where a
// client sees a hang) nor closed unexplained: once its request has arrived
// it is answered "503 Error_Unschedulable" with Retry-After and a JSON body
// that names the limit, then closed. Refusals are logged at most once a
// minute, with their count.
//
// A connection counts from its Accept until its Close; http.Server closes
// every connection it took, idle ones included.
func LimitListener(ln net.Listener, max int, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := classes[apierr.Unschedulable]
	body, _ := json.Marshal(errorBody{Status: c.code, RetryAfterMs: 1000,
		Error: fmt.Sprintf("hyper-sched has its limit of %d connections open (--max-connections); try again in a moment", max)})
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		c.status, http.StatusText(c.status), len(body))
	b.Write(body)
	return &limitListener{Listener: ln, max: int64(max), log: log, refusal: b.Bytes(), refusing: make(chan struct{}, refusers)}
}

type limitListener struct {
	net.Listener
	max      int64
	log      *slog.Logger
	refusal  []byte        // the whole 503 answer
	refusing chan struct{} // a slot per refusal in progress
	open     atomic.Int64
	refused  atomic.Int64 // since the last log line
	logged   atomic.Int64 // when the last refusal was logged, Unix ns
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: rawsock.Wrap(c), l: l}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

// refuse answers c, a connection over the cap, in the background, or closes
// it at once when refusers are busy already.
func (l *limitListener) refuse(c net.Conn) {
	l.refused.Add(1)
	if now, last := time.Now().UnixNano(), l.logged.Load(); now-last >= int64(refuseEvery) && l.logged.CompareAndSwap(last, now) {
		l.log.Warn("http: connection limit reached; refusing connections with 503 (--max-connections)",
			"max_connections", l.max, "refused", l.refused.Swap(0))
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseWait))
		// Answer once the request head is in: an HTTP client takes an
		// answer that comes before its request for a broken connection.
		if !readHead(c) {
			return
		}
		if _, err := c.Write(l.refusal); err != nil {
			return
		}
		// Close our side first and read what the client still sends:
		// closing with unread data would reset the connection, and a
		// reset can destroy the answer before the client reads it.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, refuseHead))
	}()
}

// readHead reads from c until it has a blank line (the end of an HTTP/1
// request head), refuseHead bytes, or an error; it reports whether the
// client sent anything.
func readHead(c net.Conn) bool {
	buf := make([]byte, 0, 1024)
	for len(buf) < refuseHead {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, []byte("\r\n\r\n")) || bytes.Contains(buf, []byte("\n\n")) {
			return true
		}
		if err != nil {
			return len(buf) > 0
		}
	}
	return true
}

// countedConn is a connection within the cap; its first Close frees its
// place.
type countedConn struct {
	net.Conn
	l      *limitListener
	closed sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite shuts down the writing side, as http.Server does before it
// closes a connection whose request it did not read to its end.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
