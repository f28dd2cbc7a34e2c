package main

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	values := []int64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, 60e9, 1<<62 + 12345}
	for _, v := range values {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d: bucket %d holds [%d, %d]", v, i, lo, hi)
		}
		if v >= 256 && float64(hi-lo+1)/float64(lo) > 1.0/128 {
			t.Errorf("value %d: bucket [%d, %d] is wider than 1/128 of its values", v, lo, hi)
		}
		if v < 256 && lo != hi {
			t.Errorf("value %d: got bucket [%d, %d], want exact", v, lo, hi)
		}
	}
	// Buckets tile the line: each starts one after the previous ends.
	for i := 1; i < 3000; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d): got %d, want %d", lo, got, i)
		}
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{5 * time.Millisecond}, 0.99, 5 * time.Millisecond},
		{"exact small", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"exact small p90", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		{"max is exact", []time.Duration{time.Millisecond, 3*time.Millisecond + 7}, 1, 3*time.Millisecond + 7},
		{"min clamps", []time.Duration{1000001, 1000002}, 0.5, 1000002 /* bucket top, clamped to max */},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Hist
			for _, v := range tt.values {
				h.Record(v)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v): got %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestQuantileRandom checks quantiles of random latencies against the exact
// order statistic: never below it, at most one bucket (1/128) above.
func TestQuantileRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var h Hist
	var vs []int64
	for range 20000 {
		v := int64(r.ExpFloat64()*2e6) + int64(r.IntN(100))
		vs = append(vs, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(vs)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vs[max(int(float64(len(vs))*q+0.999999)-1, 0)]
		got := int64(h.Quantile(q))
		if got < exact || float64(got-exact) > float64(exact)/128+1 {
			t.Errorf("q %v: got %d, want %d (+1/128 at most)", q, got, exact)
		}
	}
	if got, want := h.Max(), time.Duration(vs[len(vs)-1]); got != want {
		t.Errorf("max: got %v, want %v", got, want)
	}
}

func TestHistMergeAndJSON(t *testing.T) {
	var a, b, all Hist
	for i := range 1000 {
		v := time.Duration(i*i) * time.Microsecond
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	a.Merge(&Hist{})
	for _, q := range []float64{0.5, 0.99} {
		if got, want := a.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v): got %v, want %v", q, got, want)
		}
	}
	if a.Count() != 1000 || a.Mean() != all.Mean() {
		t.Errorf("merged: got count %d mean %v, want 1000 and %v", a.Count(), a.Mean(), all.Mean())
	}
	b2, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	var back Hist
	if err := json.Unmarshal(b2, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count() != a.Count() || back.Max() != a.Max() || back.Quantile(0.9) != a.Quantile(0.9) || back.Mean() != a.Mean() {
		t.Errorf("JSON round trip: got %d/%v/%v, want %d/%v/%v", back.Count(), back.Max(), back.Quantile(0.9), a.Count(), a.Max(), a.Quantile(0.9))
	}
	if err := json.Unmarshal([]byte(`{"count":3,"buckets":[[10,2]]}`), &back); err == nil {
		t.Errorf("inconsistent count: got no error")
	}
	cdf := all.CDF()
	if len(cdf) == 0 || cdf[len(cdf)-1].Fraction != 1 || cdf[len(cdf)-1].Value != all.Max() {
		t.Errorf("CDF: got last point %+v, want fraction 1 at the max %v", cdf[len(cdf)-1], all.Max())
	}
}
