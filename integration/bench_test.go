package integration

import (
	"encoding/json"
	"io"
	"math/rand"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCallNoop measures POST /call of a no-op export end to end, one
// client over a keep-alive connection: HTTP, admission, the IPC round trip
// to the worker process, a fresh instance, and the answer. Compare with
// engine's BenchmarkCall/noop, the same call made in one process.
//
//	go test -run XXX -bench CallNoop -benchtime 5000x ./integration/
func BenchmarkCallNoop(b *testing.B) {
	for _, bc := range []struct {
		name string
		body string
	}{
		{"best-effort", `{"wasm_name":"fib.wasm","export_func":"noop"}`},
		{"deadline", `{"wasm_name":"fib.wasm","export_func":"noop","expected_deadline":"50"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := start(b, b.TempDir(), strings.Fields(os.Getenv("HS_BENCH_FLAGS"))...)
			if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
				b.Fatalf("register: %d %s", a.code, a.raw)
			}
			call := timedCall(b, d, bc.body)
			reportLatency(b, 200, call)
		})
	}
}

// BenchmarkOverload offers the prototype's two job classes — fib_r(30)
// with a 100 ms deadline and fib_r(27) with a 20 ms deadline, equal shares
// — as Poisson arrivals at twice what the worker cores can run, once with
// deadlines (admission + EDF) and once as plain best-effort calls (FIFO, no
// admission; a call "meets" its deadline if it is answered in time). It
// reports misses among admitted calls and goodput: calls per second that
// were answered within their deadline.
//
//	go test -c -o /tmp/it.test ./integration/ && cd integration &&
//	taskset -c 0 /tmp/it.test -test.run XXX -test.bench Overload -test.benchtime 1x
//
// The load generator is kept on the housekeeping CPU (taskset) so that it
// does not compete with the worker, as isolcpus= would ensure in production.
func BenchmarkOverload(b *testing.B) {
	d := start(b, b.TempDir())
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		b.Fatalf("register: %d %s", a.code, a.raw)
	}
	type class struct {
		n        string
		deadline time.Duration
		est      time.Duration
	}
	classes := []class{{"30", 100 * time.Millisecond, 0}, {"27", 20 * time.Millisecond, 0}}
	for i, c := range classes {
		a := d.post("/test", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["`+c.n+`"]}`)
		if a.code != 200 {
			b.Fatalf("test: %d %s", a.code, a.raw)
		}
		classes[i].est = time.Duration(a.body["estimate_ms"].(float64) * float64(time.Millisecond))
	}
	// Cores, not lanes: a core's lanes share its CPU.
	workers := len(d.workerCPUs())
	capacity := float64(workers) / ((classes[0].est + classes[1].est).Seconds() / 2) // jobs/s
	rate := 2 * capacity
	run := 10 * time.Second
	for _, mode := range []string{"edf-admission", "fifo"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				r := overload(b, d, classes[0].n, classes[1].n, classes[0].deadline, classes[1].deadline, mode == "fifo", rate, run,
					map[string]time.Duration{classes[0].n: classes[0].est, classes[1].n: classes[1].est})
				b.ReportMetric(rate, "offered/s")
				b.ReportMetric(capacity, "capacity/s")
				b.ReportMetric(float64(r.met)/run.Seconds(), "goodput/s")
				b.ReportMetric(float64(r.admittedMissed), "admitted-missed")
				b.ReportMetric(float64(r.killed), "killed")
				b.ReportMetric(float64(r.serverLate), "server-late")
				b.ReportMetric(float64(r.rejected), "rejected")
				b.ReportMetric(float64(r.sent), "sent")
				if r.ran > 0 {
					b.ReportMetric(100*float64(r.overEstimate)/float64(r.ran), "runs-over-estimate-%")
					b.ReportMetric(100*float64(r.overAdmission)/float64(r.ran), "runs-over-admission-estimate-%")
				}
			}
		})
	}
}

type overloadResult struct {
	sent, met, rejected, other int
	// admittedMissed counts admitted calls answered late as the client saw
	// it; killed and serverLate split out those the daemon itself saw late.
	admittedMissed, killed, serverLate int
	// ran counts successful runs; overEstimate those whose instantiate +
	// exec exceeded the calibrated estimate of their class.
	ran, overEstimate int
	// overAdmission counts runs longer than the estimate their admission
	// used (the answer's estimate_ms: calibrated, then refined online).
	overAdmission int
}

func overload(b *testing.B, d *daemon, n1, n2 string, d1, d2 time.Duration, fifo bool, rate float64, run time.Duration, est map[string]time.Duration) overloadResult {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var res overloadResult
	var wg sync.WaitGroup
	rng := rand.New(rand.NewSource(1))
	t0 := time.Now()
	next := t0
	for next.Sub(t0) < run {
		next = next.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		time.Sleep(time.Until(next))
		n, dl := n1, d1
		if rng.Intn(2) == 1 {
			n, dl = n2, d2
		}
		body := `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["` + n + `"]`
		if !fifo {
			body += `,"expected_deadline":"` + strconv.FormatInt(dl.Milliseconds(), 10) + `"`
		}
		body += `}`
		res.sent++
		wg.Add(1)
		go func(sent time.Time, n string) {
			defer wg.Done()
			resp, err := c.Post(d.url+"/call", "application/json", strings.NewReader(body))
			took := time.Since(sent)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.other++
				return
			}
			var a map[string]any
			json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if tm, ok := a["timings_us"].(map[string]any); ok && resp.StatusCode == 200 {
				res.ran++
				used := time.Duration(tm["instantiate"].(float64)+tm["exec"].(float64)) * time.Microsecond
				if used > est[n] {
					res.overEstimate++
				}
				if e, ok := a["estimate_ms"].(float64); ok && used > time.Duration(e*float64(time.Millisecond)) {
					res.overAdmission++
				}
			}
			switch {
			case resp.StatusCode == 200 && took <= dl:
				res.met++
			case resp.StatusCode == 503 && a["status"] == "Error_Unschedulable":
				res.rejected++
			case !fifo && (resp.StatusCode == 200 || resp.StatusCode == 504):
				res.admittedMissed++
				if resp.StatusCode == 504 {
					res.killed++
				} else if a["deadline_met"] == false {
					res.serverLate++
				}
			default:
				res.other++
			}
		}(next, n)
	}
	wg.Wait()
	return res
}

// BenchmarkCallDuringCalibration measures /call latency of the noop export
// with benchd idle and while benchd calibrates a slow call (spin, ~2 s of
// runs): the worker's latency should not move.
//
//	go test -run XXX -bench CallDuringCalibration -benchtime 2000x ./integration/
func BenchmarkCallDuringCalibration(b *testing.B) {
	d := start(b, b.TempDir(), "--calibration-budget", "5s")
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm", "loop.wasm": "loop.wasm"}, nil); a.code != 200 {
		b.Fatalf("register: %d %s", a.code, a.raw)
	}
	call := timedCall(b, d, `{"wasm_name":"fib.wasm","export_func":"noop","expected_deadline":"50"}`)
	for range 200 {
		call()
	}
	for _, mode := range []string{"benchd-idle", "benchd-calibrating"} {
		b.Run(mode, func(b *testing.B) {
			done := make(chan struct{})
			if mode == "benchd-calibrating" {
				go func() {
					defer close(done)
					for {
						select {
						case <-done:
							return
						default:
						}
						d.post("/test", `{"wasm_name":"loop.wasm","export_func":"spin","params":["3000000"]}`)
					}
				}()
				time.Sleep(100 * time.Millisecond)
			}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				lat = append(lat, call())
			}
			if mode == "benchd-calibrating" {
				done <- struct{}{}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// timedCall returns a function that posts body to /call on one keep-alive
// connection and returns how long the answer took.
func timedCall(b *testing.B, d *daemon, body string) func() time.Duration {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	return func() time.Duration {
		t0 := time.Now()
		resp, err := c.Post(d.url+"/call", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("call: got %d", resp.StatusCode)
		}
		return time.Since(t0)
	}
}

// reportLatency warms up with warm calls (connection, learned estimate,
// caches), times b.N more and reports their p50 and p99.
func reportLatency(b *testing.B, warm int, call func() time.Duration) {
	b.Helper()
	for range warm {
		call()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		lat = append(lat, call())
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
