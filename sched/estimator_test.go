package sched

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bare is an estimator config without margins: estimate == percentile.
var bare = EstimatorConfig{Margin: -1, MarginNs: -1}

func mustEstimator(t testing.TB, cfg EstimatorConfig) *Estimator {
	t.Helper()
	e, err := NewEstimator(cfg)
	if err != nil {
		t.Fatalf("NewEstimator(%+v): %v", cfg, err)
	}
	return e
}

func seq(lo, hi int64) []int64 {
	var out []int64
	for v := lo; v <= hi; v++ {
		out = append(out, v)
	}
	return out
}

func TestEstimatorLearned(t *testing.T) {
	tests := []struct {
		name string
		cfg  EstimatorConfig
		runs []int64
		want int64
	}{
		{"one run", bare, []int64{700}, 700},
		{"few runs: p99 is the max", bare, []int64{5, 90, 7, 12}, 90},
		{"window keeps the last runs", EstimatorConfig{Window: 4, Margin: -1, MarginNs: -1},
			[]int64{10, 20, 300, 40, 5, 1, 2, 3}, 5},
		{"window of 100: p99 is the 99th", EstimatorConfig{Window: 100, Margin: -1, MarginNs: -1}, seq(1, 100), 99},
		{"window of 200: p99 is the 198th", EstimatorConfig{Window: 200, Margin: -1, MarginNs: -1}, seq(1, 200), 198},
		{"p50", EstimatorConfig{Window: 200, Percentile: 0.5, Margin: -1, MarginNs: -1}, seq(1, 200), 100},
		{"p50 of a full default window", EstimatorConfig{Percentile: 0.5, Margin: -1, MarginNs: -1}, seq(1, 100), 68},
		{"default margins: max*1.1 + 50µs", EstimatorConfig{}, []int64{1000}, 1100 + 50_000},
		{"relative margin rounds up", EstimatorConfig{Margin: 0.5, MarginNs: 7}, []int64{3}, 5 + 7},
		{"at least 1 ns", bare, []int64{0}, 1},
		{"saturates", EstimatorConfig{}, []int64{math.MaxInt64}, math.MaxInt64},
		{"negative runs are ignored", bare, []int64{40, -1000, -1}, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEstimator(t, tt.cfg)
			for _, r := range tt.runs {
				e.Observe("k", r)
			}
			got, ok := e.Learned("k")
			if !ok || got != tt.want {
				t.Fatalf("Learned after %v: got %d, %v, want %d, true", tt.runs, got, ok, tt.want)
			}
		})
	}
}

// TestNth checks quickselect on the inputs that defeat naive pivots.
func TestNth(t *testing.T) {
	const n = 257
	shapes := map[string]func(i int) int64{
		"sorted":     func(i int) int64 { return int64(i) },
		"reversed":   func(i int) int64 { return int64(n - i) },
		"equal":      func(i int) int64 { return 7 },
		"organ pipe": func(i int) int64 { return int64(min(i, n-i)) },
		"two values": func(i int) int64 { return int64(i % 2) },
		"sawtooth":   func(i int) int64 { return int64(i % 10) },
	}
	for name, f := range shapes {
		t.Run(name, func(t *testing.T) {
			v := make([]int64, n)
			for i := range v {
				v[i] = f(i)
			}
			sorted := slices.Sorted(slices.Values(v))
			for k := range n {
				w := slices.Clone(v)
				if got := nth(w, k); got != sorted[k] {
					t.Fatalf("nth(%s, %d): got %d, want %d", name, k, got, sorted[k])
				}
			}
		})
	}
}

// TestPercentileMatchesSort checks the nearest-rank rule on random windows.
func TestPercentileMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		n := 1 + rng.IntN(300)
		p := []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1}[rng.IntN(6)]
		runs := make([]int64, n)
		for i := range runs {
			runs[i] = rng.Int64N(1000)
		}
		sorted := slices.Sorted(slices.Values(runs))
		// The smallest value with at least p*n values at or below it.
		var want int64
		for i, v := range sorted {
			if float64(i+1) >= p*float64(n)-1e-9 {
				want = v
				break
			}
		}
		if got := percentile(runs, p, make([]int64, n)); got != want {
			t.Fatalf("percentile(%d runs, %v): got %d, want %d", n, p, got, want)
		}
	}
}

func TestEstimatorSeed(t *testing.T) {
	e := mustEstimator(t, EstimatorConfig{Window: 3, Margin: -1, MarginNs: -1})
	for _, r := range []int64{900, 800} {
		e.Observe("k", r)
	}
	e.Seed("k", 100) // supersedes 900 and 800
	steps := []struct {
		observe int64
		want    int64
	}{
		{-1, 100}, // just the seed
		{50, 100},
		{60, 100},
		{70, 70}, // the seed aged out: window 50, 60, 70
	}
	for i, st := range steps {
		if st.observe >= 0 {
			e.Observe("k", st.observe)
		}
		if got, ok := e.Learned("k"); !ok || got != st.want {
			t.Fatalf("step %d: Learned: got %d, %v, want %d, true", i, got, ok, st.want)
		}
	}
	e.Seed("new", 5)
	if got, ok := e.Learned("new"); !ok || got != 5 {
		t.Fatalf("Learned after Seed of a new key: got %d, %v, want 5, true", got, ok)
	}
	e.Seed("neg", -1)
	if _, ok := e.Learned("neg"); ok {
		t.Fatalf("Learned after a negative Seed: got ok, want none")
	}
}

func TestEstimatorEviction(t *testing.T) {
	e := mustEstimator(t, EstimatorConfig{MaxKeys: 2, Margin: -1, MarginNs: -1})
	e.Observe("a", 1)
	e.Observe("b", 2)
	e.Learned("a") // a is now the most recently used
	e.Observe("c", 3)
	if got := e.Len(); got != 2 {
		t.Fatalf("Len: got %d, want 2", got)
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}} {
		if _, ok := e.Learned(tt.key); ok != tt.want {
			t.Fatalf("Learned(%q): got ok %v, want %v", tt.key, ok, tt.want)
		}
	}
	// The evicted ring is reused and starts empty.
	e.Observe("d", 4) // evicts a (c was looked up last)
	if got, ok := e.Learned("d"); !ok || got != 4 {
		t.Fatalf("Learned(d): got %d, %v, want 4, true", got, ok)
	}
	if _, ok := e.Learned("a"); ok {
		t.Fatalf("Learned(a): got ok, want evicted")
	}
	e.Forget("d")
	e.Forget("missing")
	if _, ok := e.Learned("d"); ok || e.Len() != 1 {
		t.Fatalf("after Forget(d): got Learned ok %v, Len %d, want false, 1", ok, e.Len())
	}
	e.Observe("e", 5)
	e.Observe("f", 6)
	if got := e.Len(); got != 2 {
		t.Fatalf("Len after refill: got %d, want 2", got)
	}
}

func TestEstimatorUnknown(t *testing.T) {
	e := mustEstimator(t, EstimatorConfig{})
	if got, ok := e.Learned("nope"); ok || got != 0 {
		t.Fatalf("Learned of an unknown key: got %d, %v, want 0, false", got, ok)
	}
	e.Observe("x", -5)
	if e.Len() != 0 {
		t.Fatalf("Len after a negative Observe: got %d, want 0", e.Len())
	}
}

func TestNewEstimator(t *testing.T) {
	tests := []struct {
		name string
		cfg  EstimatorConfig
		ok   bool
		want EstimatorConfig
	}{
		{"defaults", EstimatorConfig{}, true, EstimatorConfig{Window: DefaultWindow, Percentile: DefaultPercentile,
			Margin: DefaultMargin, MarginNs: DefaultMarginNs, MaxKeys: DefaultMaxKeys}},
		{"negative margins mean none", EstimatorConfig{Margin: -0.5, MarginNs: -3}, true, EstimatorConfig{Window: DefaultWindow,
			Percentile: DefaultPercentile, MaxKeys: DefaultMaxKeys}},
		{"window too large", EstimatorConfig{Window: 1<<16 + 1}, false, EstimatorConfig{}},
		{"negative window", EstimatorConfig{Window: -1}, false, EstimatorConfig{}},
		{"percentile above 1", EstimatorConfig{Percentile: 1.5}, false, EstimatorConfig{}},
		{"negative percentile", EstimatorConfig{Percentile: -0.1}, false, EstimatorConfig{}},
		{"NaN percentile", EstimatorConfig{Percentile: math.NaN()}, false, EstimatorConfig{}},
		{"infinite margin", EstimatorConfig{Margin: math.Inf(1)}, false, EstimatorConfig{}},
		{"negative keys", EstimatorConfig{MaxKeys: -1}, false, EstimatorConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEstimator(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewEstimator(%+v): got error %v, want ok %v", tt.cfg, err, tt.ok)
			}
			if err == nil && e.cfg != tt.want {
				t.Fatalf("NewEstimator(%+v): got %+v, want %+v", tt.cfg, e.cfg, tt.want)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		declared, learned int64
		have              bool
		want              int64
		source            string
	}{
		{5, 0, false, 5, SourceDeclared},
		{5, 9, false, 5, SourceDeclared},
		{5, 9, true, 9, SourceLearned},
		{9, 5, true, 9, SourceDeclared},
		{7, 7, true, 7, SourceDeclared},
		{0, 3, true, 3, SourceLearned},
	}
	for _, tt := range tests {
		c, src := Choose(tt.declared, tt.learned, tt.have)
		if c != tt.want || src != tt.source {
			t.Errorf("Choose(%d, %d, %v): got %d, %q, want %d, %q", tt.declared, tt.learned, tt.have, c, src, tt.want, tt.source)
		}
	}
}
