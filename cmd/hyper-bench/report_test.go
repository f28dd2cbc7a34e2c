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
	// overhead: 1 step × 2 classes; overload: 2 steps × 2 classes + 2
	// goodput + 2 classes × (on time, p99).
	if got, want := strings.Count(html, "<svg"), 2+4+6; got != want {
		t.Errorf("got %d plots, want %d", got, want)
	}
	for _, s := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(html, -1) {
		wellFormed(t, s)
	}
	// Scenarios in name order, steps by offered load.
	if i, j := strings.Index(html, "Scenario: overhead"), strings.Index(html, "Scenario: overload"); i > j {
		t.Errorf("scenarios out of order")
	}
	if i, j := strings.Index(html, "<h4>open loop, 100.0/s"), strings.Index(html, "<h4>open loop, 400.0/s"); i < 0 || i > j {
		t.Errorf("steps out of order")
	}
}

// svgs returns the report's plots whose title starts with prefix.
func svgs(html, prefix string) []string {
	var out []string
	for _, s := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(html, -1) {
		if strings.Contains(s, `font-weight="bold">`+prefix) {
			out = append(out, s)
		}
	}
	return out
}

// legend returns a plot's legend: each series' name, colour and dash, in
// order. Legend samples are the lines right of the plot area; their text
// follows each.
func legend(svg string) (names, looks []string) {
	re := regexp.MustCompile(`<line x1="\d+" y1="[\d.]+" x2="\d+" y2="[\d.]+" stroke="([^"]+)" stroke-width="2"( stroke-dasharray="[^"]*")?/><text [^>]*>([^<]*)</text>`)
	for _, m := range re.FindAllStringSubmatch(svg, -1) {
		names = append(names, m[3])
		looks = append(looks, m[1]+m[2])
	}
	return names, looks
}

func TestCDFOverlay(t *testing.T) {
	one := func(label string, lat time.Duration) *Result {
		r := fakeResult("overhead", label, 10, lat)
		r.Mode, r.Rate, r.Clients = "closed", 0, 1
		r.Classes = r.Classes[:1]
		r.Total = r.Classes[0]
		return r
	}
	x := func(label string, rate, factor float64) *Result {
		r := fakeResult("lanes", label, rate, time.Millisecond)
		r.LoadFactor = factor
		return r
	}
	rs := []*Result{
		one("node-baseline", 3*time.Millisecond), one("hyper-sched", time.Millisecond), one("go-baseline", 2*time.Millisecond),
		// Each system prepared on its own: the same factor at different rates.
		x("hyper-sched", 530.7, 1), x("hyper-sched-lanes1", 502.5, 1), x("hyper-sched", 1061.4, 2), x("hyper-sched-lanes1", 1005, 2),
	}
	html := string(renderReport(rs, time.Time{}))

	// overhead: one step, one class: one plot with one line per system,
	// named by system, in name order.
	p := svgs(html, "long, 1 client")
	if len(p) != 1 {
		t.Fatalf("got %d overhead CDF plots, want 1", len(p))
	}
	c := wellFormed(t, p[0])
	if got, want := c["polyline"], 3; got != want {
		t.Errorf("got %d lines, want %d (one per system)", got, want)
	}
	names, looks := legend(p[0])
	if got, want := strings.Join(names, ","), "go-baseline,hyper-sched,node-baseline"; got != want {
		t.Errorf("got legend %s, want %s", got, want)
	}
	seen := map[string]bool{}
	for _, l := range looks {
		if seen[l] {
			t.Errorf("two systems drawn alike: %s", l)
		}
		seen[l] = true
	}
	// The deadline is marked.
	if !strings.Contains(p[0], ">D 100 ms<") {
		t.Errorf("overhead CDF does not mark the deadline")
	}

	// lanes: steps by factor, so the two systems share a plot per class
	// although their rates differ; the heading gives each rate.
	for _, title := range []string{"long, 1x", "short, 1x", "long, 2x", "short, 2x"} {
		p := svgs(html, title)
		if len(p) != 1 {
			t.Errorf("got %d plots titled %q, want 1", len(p), title)
			continue
		}
		names, _ := legend(p[0])
		if got, want := strings.Join(names, ","), "hyper-sched,hyper-sched-lanes1"; got != want {
			t.Errorf("%s: got legend %s, want %s", title, got, want)
		}
	}
	if want := "<h4>open loop, 2x each system&#39;s own capacity: hyper-sched 1061.4/s, hyper-sched-lanes1 1005.0/s</h4>"; !strings.Contains(html, want) {
		t.Errorf("report does not contain %s", want)
	}

	// A system looks the same in every plot of the page.
	look := map[string]string{}
	for _, s := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(html, -1) {
		names, looks := legend(s)
		for i, n := range names {
			if l, ok := look[n]; ok && l != looks[i] {
				t.Errorf("%s drawn as %s and as %s", n, l, looks[i])
			}
			look[n] = looks[i]
		}
	}
}

func TestSystemNames(t *testing.T) {
	a := fakeResult("s", "hyper-sched", 100, time.Millisecond)
	b := fakeResult("s", "hyper-sched", 100, 2*time.Millisecond)
	b.Started = a.Started.Add(time.Minute)
	c := fakeResult("s", "", 100, time.Millisecond)
	sc := scenarios([]*Result{b, c, a})
	if len(sc) != 1 || len(sc[0].steps) != 1 {
		t.Fatalf("got %+v, want one scenario of one step", sc)
	}
	var got []string
	for _, r := range sc[0].steps[0].runs {
		got = append(got, r.name)
	}
	// The second run of a system at a step is told apart, in start order.
	if want := "(no label),hyper-sched,hyper-sched #2"; strings.Join(got, ",") != want {
		t.Errorf("got %s, want %s", strings.Join(got, ","), want)
	}
	if r := sc[0].steps[0].runs[1]; r.Result != a {
		t.Errorf("got the later run first")
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
