package supervisor

// Issue 14, "Hostile tenants": the supervisor's part. The HTTP layer's
// limits are tested in httpapi, the server's (timeouts, connection cap) in
// integration/hostile_http_test.go.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// TestNameLimitsAgree: /call refuses a wasm_name longer than the longest
// module name, which needs both limits to be the same.
func TestNameLimitsAgree(t *testing.T) {
	if MaxNameLen != httpapi.MaxNameLen {
		t.Errorf("got supervisor.MaxNameLen %d, httpapi.MaxNameLen %d; want them equal", MaxNameLen, httpapi.MaxNameLen)
	}
}

// TestRegisterInvalidName: a name no module can have is the client's
// mistake, a 400 that says why; it was a 404 Error_Invalid_wasm_name, the
// answer for a valid name that is not registered, which stays a 404.
func TestRegisterInvalidName(t *testing.T) {
	r := newStoreRig(t)
	for _, name := range []string{"fib\u202e.wasm", "cafe\u0301.wasm", "../etc", ".hidden", "f\u0456b.wasm"} {
		_, err := r.register(regOpts{}, httpapi.Upload{Name: name, Wasm: wasmOf("v1")})
		if status, code := httpapi.StatusOf(err); err == nil || status != http.StatusBadRequest {
			t.Errorf("register %+q: got %v (%d %s), want 400", name, err, status, code)
		}
	}
	r.agree(nil)
	if _, err := r.s.Module("nope.wasm"); !is404(err) {
		t.Errorf("GET /modules/nope.wasm: got %v, want 404", err)
	}
	if err := r.s.DeleteModule("nope.wasm"); !is404(err) {
		t.Errorf("DELETE /modules/nope.wasm: got %v, want 404", err)
	}
}

func is404(err error) bool {
	status, code := httpapi.StatusOf(err)
	return err != nil && status == http.StatusNotFound && code == "Error_Invalid_wasm_name"
}

// unameState returns the state /uname shows for name, "" if it knows none.
func unameState(t *testing.T, s *Supervisor, name string) string {
	t.Helper()
	v, err := s.Timeline(name)
	if err != nil {
		return ""
	}
	return v.(Timeline).State
}

// TestUnameRecordsRefusals: a refused call is kept for /uname with its
// reason, as a finished one is. A refused scc1 once showed an older,
// finished scc1.
func TestUnameRecordsRefusals(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.autoAnswer(hms)
	if _, err := r.call("scc1", 1, 0, 0).wait(); err != nil {
		t.Fatalf("scc1: got %v, want a result", err)
	}
	if got := unameState(t, r.s, "scc1"); got != "done" {
		t.Fatalf("scc1: got state %q, want done", got)
	}
	// C not below D: refused before admission.
	r.call("scc1", 1, 5*hms, 5*hms).refused(apierr.InvalidDeadline)
	if got := unameState(t, r.s, "scc1"); !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, "expected_deadline") {
		t.Errorf("scc1 refused after a finished scc1: got state %q, want refused with its reason", got)
	}
	v, _ := r.s.Timeline("scc1")
	tl := v.(Timeline)
	if tl.ID != 0 || tl.Module != "m.wasm" || tl.Export != "f" || tl.DeadlineMs != 5 || len(tl.Events) != 2 ||
		tl.Events[1].What != "refused" || tl.Events[1].Detail != "Error_Invalid_deadline" {
		t.Errorf("refused scc1: got %+v, want no task id, its module, export, deadline, and a refused event with its code", tl)
	}
	// Every kind of refusal: no such module, no such export.
	spec := r.spec("scc2", 1, 0, 0)
	spec.Module = "nope.wasm"
	if _, err := r.s.Call(context.Background(), spec); apierr.CodeOf(err) != apierr.InvalidWasmName {
		t.Fatalf("scc2: got %v, want InvalidWasmName", err)
	}
	if got := unameState(t, r.s, "scc2"); !strings.Contains(got, "nope.wasm") {
		t.Errorf("scc2: got state %q, want refused: no module nope.wasm", got)
	}
	// A call without a name of its own is not kept: nobody can ask for it.
	spec = r.spec("anon", 1, 0, 0)
	spec.Export = "nope"
	r.s.Call(context.Background(), spec)
	if got := unameState(t, r.s, "anon"); got != "" {
		t.Errorf("anon: got state %q, want none", got)
	}
	// And a later success shows again.
	if _, err := r.call("scc1", 1, 0, 0).wait(); err != nil || unameState(t, r.s, "scc1") != "done" {
		t.Errorf("scc1 again: got %v, state %q; want done", err, unameState(t, r.s, "scc1"))
	}
}

// TestUnameBounded: refusals take slots of the same bounded ring as
// finished calls; a name refused twice is kept until its last refusal
// leaves the ring.
func TestUnameBounded(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	refuse := func(name string) {
		spec := r.spec(name, 1, 0, 0)
		spec.Module = "nope.wasm"
		if _, err := r.s.Call(context.Background(), spec); err == nil {
			t.Fatalf("%s: got no error, want a refusal", name)
		}
	}
	refuse("twice")
	refuse("twice")
	for i := range 63 { // 64 slots: the first "twice" is evicted
		refuse(fmt.Sprintf("other-%d", i))
	}
	if unameState(t, r.s, "twice") == "" {
		t.Errorf("twice: forgotten while its last refusal is among the last 64")
	}
	for i := range 200 {
		refuse(fmt.Sprintf("flood-%d", i))
	}
	r.s.mu.Lock()
	n := len(r.s.recent.m)
	r.s.mu.Unlock()
	if n > 64 || unameState(t, r.s, "twice") != "" || unameState(t, r.s, "other-0") != "" {
		t.Errorf("after 200 more refusals: got %d names kept (twice: %q), want at most 64, the oldest gone", n, unameState(t, r.s, "twice"))
	}
}

// TestWarmStartExcludesQueue: /warm-start-latency's start_latency is the
// prototype's "arrival to queued on a worker" and sched_latency its
// "admission + instantiate"; the time a call then waits behind others is
// queue_latency, apart. start_latency once ran to the job's start, 2.6 to
// 28 ms under load.
func TestWarmStartExcludesQueue(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	if got, want := r.s.WarmStart(), "cnt: 0, start_latency: 0µs, sched_latency: 0µs, queue_latency: 0µs"; got != want {
		t.Errorf("before any call: got %q, want %q", got, want)
	}
	// a starts at once; b arrives with it, is admitted 1 ms later (its
	// arrival to admission), and waits 4 ms behind a.
	r.seed(1, 2*hms)
	r.seed(2, 2*hms)
	a := r.call("a", 1, 0, 100*hms)
	specB := r.spec("b", 2, 0, 100*hms)
	r.clk.Advance(hms)
	b := &honCall{r: r, name: "b", done: make(chan struct{})}
	go func() { b.res, b.err = r.s.Call(context.Background(), specB); close(b.done) }()
	honWait(t, "b queued", func() bool {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		tk := r.s.names["b"]
		return tk != nil && tk.core >= 0
	})
	r.clk.Advance(4 * hms)
	answer := func(name string, inst time.Duration) {
		t.Helper()
		r.mu.Lock()
		j := r.jobs[name]
		r.mu.Unlock()
		if !r.s.disp.Result(0, j.l.li, j.l, j.id, &ipc.Result{ID: j.id, InstNs: inst.Nanoseconds(), ExecNs: hms.Nanoseconds()}) {
			t.Fatalf("the result of %s was dropped", name)
		}
	}
	answer("a", 20*time.Microsecond)
	if _, err := a.wait(); err != nil {
		t.Fatal(err)
	}
	honWait(t, "b started", func() bool { return r.isStarted("b") })
	answer("b", 40*time.Microsecond)
	if _, err := b.wait(); err != nil {
		t.Fatal(err)
	}
	// start: (0 + 1 ms) / 2; sched: (0 + 20 µs + 1 ms + 40 µs) / 2;
	// queue: (0 + 4 ms) / 2.
	if got, want := r.s.WarmStart(), "cnt: 2, start_latency: 500µs, sched_latency: 530µs, queue_latency: 2000µs"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestConnectionCap: --max-connections is lowered to what RLIMIT_NOFILE
// leaves beside the daemon's own descriptors, never below 1.
func TestConnectionCap(t *testing.T) {
	reserve := fdReserveSize + httpapi.RefuseReserve + 8*7 + 128
	for _, tt := range []struct {
		want   int
		nofile uint64
		got    int
	}{
		{4096, 1 << 20, 4096},
		{4096, 524288, 4096},
		{4096, 1024, 1024 - reserve}, // systemd's default soft limit, were it not raised
		{10, 1024, 10},
		{4096, uint64(reserve), 1},
		{4096, 0, 1},
		{4096, ^uint64(0), 4096}, // RLIM_INFINITY
	} {
		if got := capConnections(tt.want, 7, tt.nofile); got != tt.got {
			t.Errorf("capConnections(%d, 7 children, nofile %d): got %d, want %d", tt.want, tt.nofile, got, tt.got)
		}
	}
	if got, nofile := connectionCap(4096, 7); got < 1 || got > 4096 || (nofile > 0 && uint64(got) >= nofile) {
		t.Errorf("connectionCap(4096) with this process's RLIMIT_NOFILE %d: got %d", nofile, got)
	}
}

// TestConfigHTTPLimits: the HTTP server's limits have defaults and may not
// be negative.
func TestConfigHTTPLimits(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnections != 4096 || c.IdleTimeout != 90*time.Second || c.ReadTimeout != 30*time.Second {
		t.Errorf("defaults: got %d %v %v, want 4096 90s 30s", c.MaxConnections, c.IdleTimeout, c.ReadTimeout)
	}
	for _, bad := range []Config{{MaxConnections: -1}, {IdleTimeout: -time.Second}, {ReadTimeout: -time.Second}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: got no error, want one", bad)
		}
	}
}

// TestRecordFinished: a call is recorded for /uname and
// /warm-start-latency after its answer, by the next admission (two at a
// time) or by whoever reads the records, in the order the calls finished.
func TestRecordFinished(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.autoAnswer(hms)
	for _, name := range []string{"rf1", "rf2", "rf3", "rf1"} {
		if _, err := r.call(name, 1, 0, 0).wait(); err != nil {
			t.Fatalf("%s: got %v, want a result", name, err)
		}
	}
	unrecorded := func() int {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		return len(r.s.unrecorded)
	}
	// Each admission recorded up to two of the calls before it: rf1 none,
	// rf2 one, rf3 one, the second rf1 one. Its own is left.
	if n := unrecorded(); n != 1 {
		t.Errorf("after four calls in a row: %d unrecorded, want 1 (the last)", n)
	}
	if !strings.HasPrefix(r.s.WarmStart(), "cnt: 4,") {
		t.Errorf("warm-start-latency: got %q, want cnt: 4", r.s.WarmStart())
	}
	if n := unrecorded(); n != 0 {
		t.Errorf("after /warm-start-latency: %d unrecorded, want 0", n)
	}
	// The second rf1 is the one /uname shows: recorded after the first.
	if _, err := r.call("rf4", 1, 0, 0).wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rf1", "rf4"} {
		v, err := r.s.Timeline(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tl := v.(Timeline); tl.State != "done" || (name == "rf1" && tl.ID != 4) {
			t.Errorf("%s: got task %d %q, want done (rf1: the second, task 4)", name, tl.ID, tl.State)
		}
	}
}
