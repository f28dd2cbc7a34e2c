package httpapi

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawGet sends GET /healthz on c and returns the answer, its body read.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// TestLimitListener: connections beyond the cap get a 503 that names the
// limit, then EOF; a connection that closes frees its place. Without a cap
// every idle keep-alive connection holds a descriptor for good (20,500 of
// them took every descriptor of the daemon).
func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, 2, nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, okAnswer{Status: "Success"})
	})}
	go srv.Serve(lim)
	t.Cleanup(func() { srv.Close() })
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	// Two keep-alive connections take the two places.
	a, abr := dial()
	b, bbr := dial()
	for _, c := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{a, abr}, {b, bbr}} {
		if resp, body := rawGet(t, c.c, c.br); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the cap: got %d %s, want 200", resp.StatusCode, body)
		}
	}
	// The third is refused, clearly, and closed.
	c, cbr := dial()
	resp, body := rawGet(t, c, cbr)
	var ans errorBody
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("refusal body is not JSON: %q", body)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || ans.Status != "Error_Unschedulable" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(ans.Error, "limit of 2 connections") || !strings.Contains(ans.Error, "--max-connections") {
		t.Errorf("over the cap: got %d %v %s, want 503 Error_Unschedulable, Retry-After 1, naming the limit of 2 and --max-connections",
			resp.StatusCode, resp.Header, body)
	}
	if !resp.Close {
		t.Errorf("over the cap: got no Connection: close")
	}
	if n, err := cbr.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("over the cap, after the answer: got %d bytes, %v; want EOF", n, err)
	}
	// a leaves: its place is free once the server has seen it go.
	a.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		d, dbr := dial()
		resp, body := rawGet(t, d, dbr)
		if resp.StatusCode == http.StatusOK {
			break
		}
		d.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after a closed: got %d %s, want 200", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Close()
	srv.Close()
	if n := lim.(*limitListener).open.Load(); n != 0 {
		t.Errorf("after every connection closed: got %d counted open, want 0", n)
	}
}

// TestLimitListenerSilentClient: a connection over the cap that sends
// nothing is closed unanswered after refuseWait, and holds no place.
func TestLimitListenerSilentClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, 1, nil).(*limitListener)
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(lim)
	defer srv.Close()
	a, err := net.Dial("tcp", ln.Addr().String()) // takes the one place, silent
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetDeadline(time.Now().Add(10 * refuseWait))
	n, err := b.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Errorf("silent connection over the cap: got %d bytes, %v; want EOF", n, err)
	}
	if got := lim.open.Load(); got != 1 {
		t.Errorf("got %d counted open, want 1 (a)", got)
	}
}
