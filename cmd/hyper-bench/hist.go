package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits buckets, so a bucket is at most 1/128 (0.8%) of its values wide.
// That is finer than the run-to-run noise of any latency measured here, and
// it keeps a histogram of latencies up to a minute under 4,000 buckets.
const subBits = 7

const subCount = 1 << subBits

// Hist is a log-linear latency histogram (HdrHistogram's layout, simplified):
// values below 256 ns are exact; above, a value's bucket keeps its top 8
// significant bits. It records in constant time and memory, merges, and
// serialises compactly, which raw samples would not at 50,000 answers a
// second. The zero value is an empty histogram, ready to use.
type Hist struct {
	counts []int64 // by bucket index
	n      int64
	sum    float64 // ns, for the mean
	min    int64   // ns; valid when n > 0
	max    int64
}

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the lowest and highest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	m := int64(i%subCount + subCount)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one value. Negative durations count as 0.
func (h *Hist) Record(d time.Duration) {
	h.recordN(max(int64(d), 0), 1)
}

func (h *Hist) recordN(v, n int64) {
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, i+1-len(h.counts))...)
	}
	h.counts[i] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every value of o to h.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]int64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Hist) Count() int64 { return h.n }

// Max returns the largest value, exactly; 0 when empty.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean value; 0 when empty.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0 < q <= 1): the highest value of
// the bucket that holds the ceil(q*n)-th smallest value, clamped to the
// recorded min and max. It never understates a tail latency and overstates
// it by at most one bucket (0.8%). It returns 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var cum int64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// CDFPoint is one step of a cumulative distribution.
type CDFPoint struct {
	Value    time.Duration // highest value of a bucket, clamped to the max
	Fraction float64       // share of values <= Value
}

// CDF returns the cumulative distribution, one point per non-empty bucket.
func (h *Hist) CDF() []CDFPoint {
	var out []CDFPoint
	var cum int64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		_, hi := bucketBounds(i)
		out = append(out, CDFPoint{Value: time.Duration(min(max(hi, h.min), h.max)), Fraction: float64(cum) / float64(h.n)})
	}
	return out
}

// histJSON is Hist's serialised form: the non-empty buckets as
// [lowest value in ns, count] pairs. Storing values, not indexes, keeps old
// result files readable if subBits changes.
type histJSON struct {
	Count   int64      `json:"count"`
	MinNs   int64      `json:"min_ns"`
	MaxNs   int64      `json:"max_ns"`
	SumNs   float64    `json:"sum_ns"`
	Buckets [][2]int64 `json:"buckets"`
}

// MarshalJSON implements json.Marshaler.
func (h *Hist) MarshalJSON() ([]byte, error) {
	j := histJSON{Count: h.n, MinNs: h.min, MaxNs: h.max, SumNs: h.sum, Buckets: [][2]int64{}}
	for i, c := range h.counts {
		if c != 0 {
			lo, _ := bucketBounds(i)
			j.Buckets = append(j.Buckets, [2]int64{lo, c})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Hist{}
	var n int64
	for _, bk := range j.Buckets {
		if bk[0] < 0 || bk[1] < 0 {
			return fmt.Errorf("histogram bucket %v is negative", bk)
		}
		h.recordN(bk[0], bk[1])
		n += bk[1]
	}
	if n != j.Count {
		return fmt.Errorf("histogram buckets hold %d values, count says %d", n, j.Count)
	}
	if n > 0 {
		h.min, h.max, h.sum = j.MinNs, j.MaxNs, j.SumNs
	}
	return nil
}
