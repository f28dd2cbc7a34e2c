package integration

// Issue 14, "Hostile tenants": the HTTP server's own bounds, on the real
// daemon. /call is open to anyone who can reach the daemon, so holding
// connections must cost a client more than it costs the daemon:
//
//   - idle keep-alive connections are closed after --idle-timeout (20,500 of
//     them once took every descriptor);
//   - a request body sent too slowly is cut at --read-timeout (100 bodies
//     sent at 1 B/s were all still open at 75 s), while a call that runs
//     longer than --read-timeout is answered;
//   - connections beyond --max-connections are answered a 503 that names
//     the limit, and closed;
//   - and through all of it the daemon stays healthy and serves calls.
//
//	go test -race -run 'TestHostile' ./integration/
//
// The bounds on what a request may carry are tested in httpapi and
// supervisor (TestDecodeCallLimits, TestValidNameHostile, …).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileWait bounds every wait for the daemon to close a connection: far
// beyond the timeouts the tests set, so a pass says nothing about timing
// and a failure means the connection was never closed.
const hostileWait = 30 * time.Second

// rawConn is one TCP connection to the daemon, spoken to by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, d *daemon) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends GET path (HTTP/1.1, so keep-alive) and returns the answer with
// its body read.
func (c *rawConn) get(path string) (*http.Response, []byte) {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(hostileWait))
	defer c.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: hyper-sched\r\n\r\n", path); err != nil {
		c.t.Fatalf("GET %s: write: %v", path, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("GET %s: read answer: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, body
}

// closed waits up to hostileWait for the daemon to close the connection,
// reading and returning whatever it sent first; it reports whether the
// connection was closed (EOF or reset) rather than still open.
func (c *rawConn) closed() (bool, []byte) {
	c.c.SetReadDeadline(time.Now().Add(hostileWait))
	got, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, got
	}
	return true, got
}

// TestHostileIdleConnectionsClosed: keep-alive connections left idle are
// closed by the daemon after --idle-timeout; it serves on meanwhile.
func TestHostileIdleConnectionsClosed(t *testing.T) {
	d := start(t, t.TempDir(), "--idle-timeout", "1s")
	conns := make([]*rawConn, 20)
	for i := range conns {
		conns[i] = dialRaw(t, d)
		if resp, body := conns[i].get("/healthz"); resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("connection %d: got %d (close %v) %s, want 200 keep-alive", i, resp.StatusCode, resp.Close, body)
		}
	}
	for i, c := range conns {
		if closed, got := c.closed(); !closed {
			t.Fatalf("connection %d: still open %v after its answer, want it closed after --idle-timeout 1s", i, hostileWait)
		} else if len(got) > 0 {
			t.Errorf("connection %d: got %q before the close, want nothing", i, got)
		}
	}
	if a := d.get("/healthz"); a.code != http.StatusOK {
		t.Errorf("healthz: got %d %s, want 200", a.code, a.raw)
	}
}

// TestHostileSlowBody: a request whose body comes too slowly is answered
// 400 and closed at --read-timeout, while a call that runs longer than
// --read-timeout is answered in full, and other clients are served.
func TestHostileSlowBody(t *testing.T) {
	d := start(t, t.TempDir(), "--read-timeout", "1s", "--best-effort-cap", "10s")
	if a := d.register(map[string]string{"sleep.wasm": "sleep.wasm"}, nil); a.code != http.StatusOK {
		t.Fatalf("register sleep.wasm: %d %s", a.code, a.raw)
	}
	// The read timeout ends with the request's body, not with its answer.
	if a := d.post("/call", `{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["2500"]}`); a.code != http.StatusOK || a.str("result") != "[I32(0)]" {
		t.Fatalf("a call of 2.5 s with --read-timeout 1s: got %d %s, want 200 [I32(0)]", a.code, a.raw)
	}

	// Slow clients: a head that promises 100 kB, then a byte every 100 ms.
	const slow = 20
	stop := make(chan struct{})
	var writers sync.WaitGroup
	conns := make([]*rawConn, slow)
	for i := range conns {
		conns[i] = dialRaw(t, d)
		c := conns[i].c
		if _, err := io.WriteString(c, "POST /call HTTP/1.1\r\nHost: hyper-sched\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		writers.Add(1)
		go func() {
			defer writers.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return // the daemon closed it
					}
				}
			}
		}()
	}
	defer func() { close(stop); writers.Wait() }()
	// Served meanwhile.
	if a := d.get("/healthz"); a.code != http.StatusOK {
		t.Errorf("healthz with %d slow clients: got %d %s, want 200", slow, a.code, a.raw)
	}
	for i, c := range conns {
		closed, got := c.closed()
		if !closed {
			t.Fatalf("slow client %d: still open after %v, want it cut at --read-timeout 1s (got %q)", i, hostileWait, got)
		}
		// The answer comes first, unless the close reset the connection
		// before it was read.
		if len(got) > 0 {
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Errorf("slow client %d: got %q, want an HTTP answer: %v", i, got, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "read timeout") {
				t.Errorf("slow client %d: got %d %s, want 400 naming the read timeout", i, resp.StatusCode, body)
			}
		}
	}
	if a := d.post("/call", `{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["1"]}`); a.code != http.StatusOK {
		t.Errorf("a call after the slow clients: got %d %s, want 200", a.code, a.raw)
	}
}

// TestHostileConnectionCap: with --max-connections 8 held by idle
// keep-alive connections, every other connection is answered 503 with a
// JSON body that names the limit, then closed; once the 8 leave, the
// daemon serves again.
func TestHostileConnectionCap(t *testing.T) {
	const max = 8
	d := start(t, t.TempDir(), "--max-connections", fmt.Sprint(max))
	transport := http.DefaultTransport.(*http.Transport) // start's and client's
	// Take every place. The daemon frees the places of the test's own
	// pooled connections once it sees them closed: retry until the 8 are
	// ours.
	var held []*rawConn
	for attempt := 0; len(held) < max; attempt++ {
		if attempt == 100 {
			t.Fatalf("could not hold %d connections; log:\n%s", max, d.logs())
		}
		for _, c := range held {
			c.c.Close()
		}
		held = held[:0]
		transport.CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
		for range max {
			c := dialRaw(t, d)
			if resp, _ := c.get("/healthz"); resp.StatusCode != http.StatusOK {
				c.c.Close()
				break
			}
			held = append(held, c)
		}
	}
	for i := range 20 {
		c := dialRaw(t, d)
		resp, body := c.get("/healthz")
		var a struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("connection %d over the cap: body %q is not JSON", i, body)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || a.Status != "Error_Unschedulable" || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(a.Error, fmt.Sprintf("limit of %d connections", max)) || !strings.Contains(a.Error, "--max-connections") {
			t.Fatalf("connection %d over the cap: got %d %v %s, want 503 Error_Unschedulable with Retry-After, naming the limit of %d and --max-connections",
				i, resp.StatusCode, resp.Header, body, max)
		}
		if closed, got := c.closed(); !closed || len(got) > 0 {
			t.Errorf("connection %d over the cap: got closed %v, then %q; want closed after the answer", i, closed, got)
		}
	}
	// The held connections still work.
	if resp, body := held[0].get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("a held connection: got %d %s, want 200", resp.StatusCode, body)
	}
	for _, c := range held {
		c.c.Close()
	}
	deadline := time.Now().Add(hostileWait)
	for {
		resp, err := client.Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz after the held connections closed: got %v %v; log:\n%s", resp, err, d.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != http.StatusOK {
		t.Fatalf("register fib.wasm: %d %s", a.code, a.raw)
	}
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","param_type":"i32","params":["20"]}`); a.code != http.StatusOK || a.str("result") != "[I32(6765)]" {
		t.Errorf("a call after the refusals: got %d %s, want 200 [I32(6765)]", a.code, a.raw)
	}
	if !strings.Contains(d.logs(), "connection limit reached") {
		t.Errorf("log: got no line about the connection limit; log:\n%s", d.logs())
	}
}
