package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// totalName is the name of the row that sums every class.
const totalName = "total"

// Result is what `hyper-bench run` writes: one run's settings, machine and
// numbers. Rates are per second of the measured window (DurationS);
// latencies are milliseconds.
type Result struct {
	Scenario string    `json:"scenario,omitempty"` // groups results in a report, e.g. "overload"
	Label    string    `json:"label"`              // the system under test, e.g. "hyper-sched"
	Command  []string  `json:"command"`
	Started  time.Time `json:"started"`
	URL      string    `json:"url"`
	Mode     string    `json:"mode"`              // "open" or "closed"
	Rate     float64   `json:"rate,omitempty"`    // open loop: calls/s asked for
	Clients  int       `json:"clients,omitempty"` // closed loop
	// Cameras and FPS are the cameras mode's load: Cameras sources of FPS
	// calls per second each (Rate is their product).
	Cameras int     `json:"cameras,omitempty"`
	FPS     float64 `json:"fps,omitempty"`
	// LoadFactor is the rate as a multiple of the prepared capacity, when
	// -rate was given as "Nx"; CapacityPerS is that capacity.
	LoadFactor   float64 `json:"load_factor,omitempty"`
	CapacityPerS float64 `json:"capacity_per_s,omitempty"`
	DurationS    float64 `json:"duration_s"`
	WarmupS      float64 `json:"warmup_s"`
	Seed         uint64  `json:"seed"`

	Workload  Workload      `json:"workload"`
	Machine   Machine       `json:"machine"`
	Generator GeneratorInfo `json:"generator"`
	Classes   []ClassResult `json:"classes"`
	Total     ClassResult   `json:"total"`
}

// GeneratorInfo says how well the load generator kept its schedule. In open
// loop a send is late when it left more than 1 ms after its intended time
// (the generator, not the server, was the bottleneck); latencies still count
// from the intended time, so lateness never hides server queueing.
type GeneratorInfo struct {
	LateSends    int64   `json:"late_sends"`
	MaxSendLagMs float64 `json:"max_send_lag_ms"`
	MaxInflight  int64   `json:"max_inflight"`
}

// ClassResult is one class's numbers (or the total's).
type ClassResult struct {
	Name       string  `json:"name"`
	DeadlineMs float64 `json:"deadline_ms,omitempty"`

	// Counts by outcome; Sent = OK + Rejected + Missed + Errors.
	Sent     int64 `json:"sent"`
	OK       int64 `json:"ok"`
	Rejected int64 `json:"rejected"`
	Missed   int64 `json:"missed"`
	// Missed504 is the part of Missed answered 504 (killed at deadline).
	Missed504 int64            `json:"missed_504"`
	Errors    int64            `json:"errors"`
	ErrorKind map[string]int64 `json:"error_kinds,omitempty"`
	// ClientLate counts OK answers whose latency seen by the client
	// exceeded the deadline: met at the server, late at the client.
	ClientLate int64 `json:"client_late"`

	OfferedPerS    float64 `json:"offered_per_s"`    // Sent / window
	ThroughputPerS float64 `json:"throughput_per_s"` // 200 answers (OK + 200-missed) / window
	GoodputPerS    float64 `json:"goodput_per_s"`    // OK / window
	// ClientGoodputPerS is (OK - ClientLate) / window: answers on time by
	// the client's clock too. It is the stricter figure when a server
	// starts its deadline clock late (after its own accept and read queues).
	ClientGoodputPerS float64 `json:"client_goodput_per_s"`

	// Latency is of 200 answers, from the intended send time (open loop)
	// or the send (closed loop) to the last byte of the answer.
	Latency Summary `json:"latency_ms"`
	// Server is the server's own arrival→result time of the same answers,
	// when it reports one (timings_us.total).
	Server Summary `json:"server_total_ms"`
	// Exec is the export's run time the server reports (timings_us.exec)
	// for the same answers: the work, without queueing or HTTP.
	Exec Summary `json:"server_exec_ms"`

	Hist       *Hist `json:"latency_hist"`
	ServerHist *Hist `json:"server_hist"`
}

// Summary is a latency distribution's figures in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func summarize(h *Hist) Summary {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Summary{Count: h.Count(), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}

// tally accumulates one class's calls. It is not safe for concurrent use;
// the collector locks around it.
type tally struct {
	sent, ok, rejected, missed, missed504, errors, clientLate int64
	errKinds                                                  map[string]int64
	lat, server, exec                                         Hist
}

// add counts one finished call. code is 0 for a transport error err.
// deadline is the class's D (0: none); lat is the client-side latency.
func (t *tally) add(code int, body []byte, err error, lat, deadline time.Duration) Outcome {
	t.sent++
	var v verdict
	if err != nil {
		v = verdict{outcome: Failed, kind: errKind(err)}
	} else {
		v = classify(code, body)
	}
	switch v.outcome {
	case OK:
		t.ok++
		if deadline > 0 && lat > deadline {
			t.clientLate++
		}
	case Rejected:
		t.rejected++
	case Missed:
		t.missed++
		if code != 200 {
			t.missed504++
		}
	case Failed:
		t.errors++
		if t.errKinds == nil {
			t.errKinds = map[string]int64{}
		}
		t.errKinds[v.kind]++
	}
	if err == nil && code == 200 && v.outcome != Failed {
		t.lat.Record(lat)
		if v.server > 0 {
			t.server.Record(v.server)
		}
		if v.exec > 0 {
			t.exec.Record(v.exec)
		}
	}
	return v.outcome
}

func (t *tally) merge(o *tally) {
	t.sent += o.sent
	t.ok += o.ok
	t.rejected += o.rejected
	t.missed += o.missed
	t.missed504 += o.missed504
	t.errors += o.errors
	t.clientLate += o.clientLate
	for k, n := range o.errKinds {
		if t.errKinds == nil {
			t.errKinds = map[string]int64{}
		}
		t.errKinds[k] += n
	}
	t.lat.Merge(&o.lat)
	t.server.Merge(&o.server)
	t.exec.Merge(&o.exec)
}

// result turns a tally into a ClassResult over a window.
func (t *tally) result(name string, deadlineMs float64, window time.Duration) ClassResult {
	per := func(n int64) float64 {
		if window <= 0 {
			return 0
		}
		return float64(n) / window.Seconds()
	}
	lat, server, exec := t.lat, t.server, t.exec
	return ClassResult{
		Name: name, DeadlineMs: deadlineMs,
		Sent: t.sent, OK: t.ok, Rejected: t.rejected, Missed: t.missed, Missed504: t.missed504,
		Errors: t.errors, ErrorKind: t.errKinds, ClientLate: t.clientLate,
		OfferedPerS: per(t.sent), ThroughputPerS: per(t.ok + t.missed - t.missed504), GoodputPerS: per(t.ok), ClientGoodputPerS: per(t.ok - t.clientLate),
		Latency: summarize(&lat), Server: summarize(&server), Exec: summarize(&exec), Hist: &lat, ServerHist: &server,
	}
}

// aggregate builds the per-class and total results.
func aggregate(classes []Class, tallies []tally, window time.Duration) ([]ClassResult, ClassResult) {
	var total tally
	out := make([]ClassResult, len(classes))
	for i, c := range classes {
		out[i] = tallies[i].result(c.Name, c.DeadlineMs, window)
		total.merge(&tallies[i])
	}
	return out, total.result(totalName, 0, window)
}

// writeResult writes r as indented JSON to path, atomically.
func writeResult(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write result: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// readResult reads a result file.
func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	// report draws each class's latency CDF; a file without one draws none.
	for i := range r.Classes {
		if r.Classes[i].Hist == nil {
			r.Classes[i].Hist = &Hist{}
		}
	}
	return &r, nil
}

// sortedKinds returns an error-kind map as "kind: n" strings, largest first.
func sortedKinds(m map[string]int64) []string {
	type kv struct {
		k string
		n int64
	}
	var l []kv
	for k, n := range m {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || (l[i].n == l[j].n && l[i].k < l[j].k) })
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = fmt.Sprintf("%s: %d", e.k, e.n)
	}
	return out
}
