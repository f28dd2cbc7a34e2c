package integration

import (
	"os"
	"slices"
	"testing"
	"time"
)

// TestSupervisorNiceFollowsLoad runs the daemon and watches its supervisor's
// threads: nice -5 at start, 0 once it serves a best-effort call alone, -5
// with a deadline call in hand or two calls at once, 0 again a second after
// (supervisor/nice.go), on every thread and in /status.
func TestSupervisorNiceFollowsLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE): the supervisor gives itself nice -5")
	}
	d := start(t, t.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	pid := d.cmd.Process.Pid
	waitNice := func(when string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			nices := threadNices(pid)
			st := d.get("/status")
			if len(nices) > 0 && !slices.ContainsFunc(nices, func(n int) bool { return n != want }) &&
				st.body["supervisor_nice"] == float64(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: supervisor threads at nice %v, /status supervisor_nice %v; want %d", when, nices, st.body["supervisor_nice"], want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	call := func(body string) {
		t.Helper()
		if a := d.post("/call", body); a.code != 200 {
			t.Fatalf("call %s: %d %s", body, a.code, a.raw)
		}
	}
	const lone = `{"wasm_name":"fib.wasm","export_func":"noop","params":[]}`

	waitNice("at start", -5)
	call(lone)
	waitNice("after a best-effort call alone", 0)
	call(fibCall("", "20", 5*time.Second))
	waitNice("after a deadline call", -5)
	time.Sleep(1100 * time.Millisecond) // calmAfter
	call(lone)
	waitNice("a second after the deadline call", 0)

	// Two best-effort calls at once: a long one, and a short one meanwhile.
	done := make(chan answer)
	go func() { done <- d.post("/call", fibCall("", "36", 0)) }()
	for d.get("/status").body["in_flight"] == float64(0) {
		time.Sleep(time.Millisecond)
	}
	call(lone)
	if a := <-done; a.code != 200 {
		t.Fatalf("fib_r(36): %d %s", a.code, a.raw)
	}
	waitNice("after two calls at once", -5)
}
