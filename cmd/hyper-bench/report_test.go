package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeResult is a result with two classes whose latencies are lat and 2*lat.
func fakeResult(scenario, label string, rate float64, lat time.Duration) *Result {
	classes := []Class{{Name: "long", DeadlineMs: 100}, {Name: "short", DeadlineMs: 20}}
	tallies := make([]tally, 2)
	for i := range 100 {
		for ci := range tallies {
			d := time.Duration(ci+1) * lat * time.Duration(1+i%10)
			tallies[ci].add(200, []byte(`{"status":"Success","deadline_met":true}`), nil, d, 0)
		}
	}
	tallies[1].add(503, []byte(`{"status":"Error_Unschedulable"}`), nil, 0, 0)
	r := &Result{Scenario: scenario, Label: label, Mode: "open", Rate: rate, Command: []string{"hyper-bench", "run", "-label", label},
		Workload: Workload{Classes: classes}}
	r.Classes, r.Total = aggregate(classes, tallies, time.Duration(float64(time.Second)*201/rate))
	return r
}

func TestRenderReport(t *testing.T) {
	rs := []*Result{
		fakeResult("overload", "hyper-sched", 400, time.Millisecond),
		fakeResult("overload", "hyper-sched", 100, time.Millisecond),
		fakeResult("overload", "go-baseline", 100, 2*time.Millisecond),
		fakeResult("overload", "go-baseline", 400, 3*time.Millisecond),
		fakeResult("overhead", "<script>", 10, time.Millisecond),
	}
	html := string(renderReport(rs, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	for _, want := range []string{"Scenario: overhead", "Scenario: overload", "Goodput, all classes", "client&#39;s clock", "On time: short",
		"p99 latency: long", "&lt;script&gt;", "2026-01-02T03:04:05Z"} {
		if !strings.Contains(html, want) {
			t.Errorf("report does not contain %q", want)
		}
	}
	if strings.Contains(html, "<script>") {
		t.Errorf("report contains an unescaped label")
	}
	// overhead: 1 CDF; overload: 4 CDFs + 2 goodput + 2 classes × (on time, p99).
	if got, want := strings.Count(html, "<svg"), 1+4+6; got != want {
		t.Errorf("got %d plots, want %d", got, want)
	}
	for _, s := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(html, -1) {
		wellFormed(t, s)
	}
	// Scenarios in name order, results by label then offered load.
	if i, j := strings.Index(html, "Scenario: overhead"), strings.Index(html, "Scenario: overload"); i > j {
		t.Errorf("scenarios out of order")
	}
	if i, j := strings.Index(html, "open, 100.0/s"), strings.Index(html, "open, 400.0/s"); i < 0 || i > j {
		t.Errorf("results out of order")
	}
}

func TestProgressLine(t *testing.T) {
	c := progressCounts{sent: 10, ok: 5, rejected: 2, missed: 1, errors: 1, inflight: 1}
	if got, want := progressLine(12500*time.Millisecond, c, false), "  12.5s  sent 10  ok 5  rejected 2  missed 1  errors 1  in flight 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := progressLine(time.Second, c, true); !strings.Contains(got, "(warm-up)") {
		t.Errorf("got %q, want it marked warm-up", got)
	}
}

func TestCPUModel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: x\n", "Intel(R) Xeon(R) Processor"},
		{"processor\t: 0\nCPU part\t: 0xd0c\n", "0xd0c"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := cpuModel([]byte(tt.in)); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in           string
		rate, factor float64
		err          bool
	}{
		{"250", 250, 0, false},
		{"0.5", 0.5, 0, false},
		{"2x", 0, 2, false},
		{"0.5x", 0, 0.5, false},
		{"0x", 0, 0, true},
		{"-3", 0, 0, true},
		{"x", 0, 0, true},
		{"fast", 0, 0, true},
		{"NaN", 0, 0, true},
	}
	for _, tt := range tests {
		rate, factor, err := parseRate(tt.in)
		if rate != tt.rate || factor != tt.factor || (err != nil) != tt.err {
			t.Errorf("parseRate(%q): got %v %v %v, want %v %v error %v", tt.in, rate, factor, err, tt.rate, tt.factor, tt.err)
		}
	}
}

func TestCapacity(t *testing.T) {
	tests := []struct {
		workers int
		classes []PreparedClass
		want    float64
	}{
		{1, []PreparedClass{{Fraction: 0.5, CostMs: 10}, {Fraction: 0.5, CostMs: 2}}, 1000.0 / 6},
		{2, []PreparedClass{{Fraction: 1, CostMs: 4}}, 500},
		{1, []PreparedClass{{Fraction: 1, CostMs: 0}}, 0},
		{1, nil, 0},
	}
	for _, tt := range tests {
		if got := capacity(tt.workers, tt.classes); got != tt.want {
			t.Errorf("capacity(%d, %+v): got %v, want %v", tt.workers, tt.classes, got, tt.want)
		}
	}
}
