package sched

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Sources of an estimate, as returned by [Choose] and reported to clients.
const (
	SourceDeclared = "declared"
	SourceLearned  = "learned"
)

// Choose returns the estimate C to admit a call with: the larger of the
// declared execution time and the learned one, and which of the two it is.
// Without a learned estimate, or on a tie, it is the declared one.
func Choose(declared, learned int64, haveLearned bool) (c int64, source string) {
	if haveLearned && learned > declared {
		return learned, SourceLearned
	}
	return declared, SourceDeclared
}

// Defaults for the zero fields of [EstimatorConfig].
const (
	// DefaultWindow is the number of recent runs kept per key.
	DefaultWindow = 64
	// DefaultPercentile is p99. With fewer than 100 runs in the window it is
	// the maximum.
	DefaultPercentile = 0.99
	// DefaultMargin is 10%: the run-to-run jitter of a pinned core is a few
	// percent, and an estimate too low makes admitted jobs late.
	DefaultMargin = 0.10
	// DefaultMarginNs is 50 µs, which covers the fixed per-call costs the
	// measured run does not see (the IPC round trip to the worker, waking
	// it).
	DefaultMarginNs int64 = 50e3
	// DefaultMaxKeys bounds the number of keys; the least recently used one
	// is evicted beyond it. Memory is about MaxKeys*Window*8 bytes (2 MiB).
	DefaultMaxKeys = 4096
)

// EstimatorConfig holds the estimator's settings. The zero value of every
// field selects its default; [NewEstimator] validates it once.
type EstimatorConfig struct {
	// Window is the number of most recent runs kept per key. Zero means
	// DefaultWindow; it must be in [1, 65536].
	Window int
	// Percentile is the nearest-rank percentile of the window the estimate
	// starts from, in (0, 1]. Zero means DefaultPercentile.
	Percentile float64
	// Margin is the relative margin: the percentile is multiplied by
	// 1+Margin. Zero means DefaultMargin; negative means none.
	Margin float64
	// MarginNs is the absolute margin added after that, ns. Zero means
	// DefaultMarginNs; negative means none.
	MarginNs int64
	// MaxKeys bounds the number of keys kept. Zero means DefaultMaxKeys;
	// negative is invalid.
	MaxKeys int
}

func (c EstimatorConfig) resolve() (EstimatorConfig, error) {
	switch {
	case c.Window < 0 || c.Window > 1<<16:
		return c, fmt.Errorf("sched: estimator config: Window %d not in [1, 65536]", c.Window)
	case c.Percentile < 0 || c.Percentile > 1 || math.IsNaN(c.Percentile):
		return c, fmt.Errorf("sched: estimator config: Percentile %v not in (0, 1]", c.Percentile)
	case math.IsNaN(c.Margin) || math.IsInf(c.Margin, 0):
		return c, fmt.Errorf("sched: estimator config: Margin %v is not finite", c.Margin)
	case c.MaxKeys < 0:
		return c, fmt.Errorf("sched: estimator config: MaxKeys %d is negative", c.MaxKeys)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Percentile == 0 {
		c.Percentile = DefaultPercentile
	}
	switch {
	case c.Margin == 0:
		c.Margin = DefaultMargin
	case c.Margin < 0:
		c.Margin = 0
	}
	switch {
	case c.MarginNs == 0:
		c.MarginNs = DefaultMarginNs
	case c.MarginNs < 0:
		c.MarginNs = 0
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	return c, nil
}

// series is the window of one key: a ring of the most recent runs, with the
// estimate cached until the next run, and its place in the LRU list.
type series struct {
	key        string
	runs       []int64 // ring, len Window
	n          int     // runs held, <= Window
	next       int     // ring slot of the next run
	est        int64
	stale      bool // est must be recomputed
	prev, succ *series
}

// Estimator learns execution times per key (the caller builds the key from
// module, export and parameters). For each key it keeps the most recent
// Window runs; the estimate is their nearest-rank Percentile times
// 1+Margin, plus MarginNs, at least 1 ns.
//
// # Notes
//
// An Estimator is not safe for concurrent use: the supervisor owns it from
// one goroutine. Memory is bounded: at most MaxKeys keys, the least recently
// used (observed, seeded or looked up) evicted first.
type Estimator struct {
	cfg     EstimatorConfig
	keys    map[string]*series
	lru     series // sentinel: lru.succ is the most recent, lru.prev the least
	scratch []int64
}

// NewEstimator returns an empty estimator.
func NewEstimator(cfg EstimatorConfig) (*Estimator, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	e := &Estimator{
		cfg:     cfg,
		keys:    make(map[string]*series),
		scratch: make([]int64, cfg.Window),
	}
	e.lru.prev, e.lru.succ = &e.lru, &e.lru
	return e, nil
}

// Observe records one measured run of key, execNs long. Negative values are
// ignored.
func (e *Estimator) Observe(key string, execNs int64) {
	if execNs < 0 {
		return
	}
	e.add(e.get(key), execNs)
}

// Seed replaces the history of key with one calibration result ns (a
// measured execution time, as from benchd): a calibration supersedes older
// runs. Later runs join it in the window, and it ages out after Window of
// them. Negative values are ignored.
func (e *Estimator) Seed(key string, ns int64) {
	if ns < 0 {
		return
	}
	s := e.get(key)
	s.n, s.next = 0, 0
	e.add(s, ns)
}

// Learned returns the estimate for key, ns, and whether there is one.
func (e *Estimator) Learned(key string) (ns int64, ok bool) {
	s, ok := e.keys[key]
	if !ok {
		return 0, false
	}
	e.touch(s)
	if s.stale {
		s.est = e.estimate(s)
		s.stale = false
	}
	return s.est, true
}

// Forget drops key's history.
func (e *Estimator) Forget(key string) {
	if s, ok := e.keys[key]; ok {
		e.unlink(s)
		delete(e.keys, key)
	}
}

// Len returns the number of keys with a history.
func (e *Estimator) Len() int { return len(e.keys) }

// add puts one run into s's ring.
func (e *Estimator) add(s *series, ns int64) {
	s.runs[s.next] = ns
	s.next = (s.next + 1) % len(s.runs)
	s.n = min(s.n+1, len(s.runs))
	s.stale = true
}

// get returns key's series, most recently used, creating it (and evicting
// the least recently used key at MaxKeys) if needed.
func (e *Estimator) get(key string) *series {
	if s, ok := e.keys[key]; ok {
		e.touch(s)
		return s
	}
	var s *series
	if len(e.keys) >= e.cfg.MaxKeys {
		s = e.lru.prev // reuse the evicted ring
		e.unlink(s)
		delete(e.keys, s.key)
		*s = series{runs: s.runs}
	} else {
		s = &series{runs: make([]int64, e.cfg.Window)}
	}
	s.key = key
	e.keys[key] = s
	e.link(s)
	return s
}

func (e *Estimator) touch(s *series) {
	if e.lru.succ != s {
		e.unlink(s)
		e.link(s)
	}
}

func (e *Estimator) link(s *series) {
	s.prev, s.succ = &e.lru, e.lru.succ
	e.lru.succ.prev = s
	e.lru.succ = s
}

func (e *Estimator) unlink(s *series) {
	s.prev.succ, s.succ.prev = s.succ, s.prev
	s.prev, s.succ = nil, nil
}

// estimate computes s's estimate from its window.
func (e *Estimator) estimate(s *series) int64 {
	v := percentile(s.runs[:s.n], e.cfg.Percentile, e.scratch)
	f := math.Ceil(float64(v)*(1+e.cfg.Margin)) + float64(e.cfg.MarginNs)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(f), 1)
}

// percentile returns the nearest-rank p-th percentile of runs (not empty):
// the ceil(p*n)-th smallest. scratch must hold len(runs) values.
func percentile(runs []int64, p float64, scratch []int64) int64 {
	n := len(runs)
	// The epsilon keeps p*n from rounding up past an exact rank
	// (0.99*100 must be rank 99, not 100).
	rank := min(max(int(math.Ceil(p*float64(n)-1e-9)), 1), n)
	if rank == n {
		return slices.Max(runs)
	}
	tmp := scratch[:n]
	copy(tmp, runs)
	return nth(tmp, rank-1)
}

// nth returns the k-th smallest (from 0) of v, reordering v: quickselect
// with a median-of-three pivot, O(n) on average. Should a bad input use up
// the partitioning budget, it sorts what is left instead, so the worst case
// is O(n log n).
func nth(v []int64, k int) int64 {
	lo, hi := 0, len(v)-1
	for budget := 2 * bits.Len(uint(len(v))); lo < hi; budget-- {
		if budget == 0 {
			slices.Sort(v[lo : hi+1])
			break
		}
		m := lo + (hi-lo)/2
		if v[m] < v[lo] {
			v[m], v[lo] = v[lo], v[m]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[m] {
			v[hi], v[m] = v[m], v[hi]
		}
		pivot := v[m]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		// Now v[lo..j] <= pivot <= v[i..hi], and everything between is the
		// pivot.
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}
