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
	// DefaultWindow is the number of recent entries kept per key.
	DefaultWindow = 64
	// DefaultPercentile is p99. With 100 or fewer entries counted it is
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
	// is evicted beyond it. Memory is about MaxKeys*Window*8 bytes (2 MiB),
	// twice that with a clock (each entry's time).
	DefaultMaxKeys = 4096
	// DefaultMaxAge is 10 minutes: long beside the run-to-run rate of a
	// shape in use (one call every 30 s keeps MinKeep runs fresh), short
	// beside how long a shape locked out by one unlucky run may stay so.
	DefaultMaxAge int64 = 10 * 60e9
	// DefaultMinKeep is 20: the newest 20 entries count however old they
	// are, so a key never loses its measured estimate by time alone, and
	// the maximum of 20 runs from one distribution is exceeded by the next
	// run with probability 1/21 < 5% (before the margins).
	DefaultMinKeep = 20
	// DefaultOutlierFactor is 2: a lone entry more than twice the median of
	// the others is not the function's tail but a disturbance (a preempted
	// or throttled run).
	DefaultOutlierFactor = 2.0
	// DefaultAtLeastFactor is 2: a run killed after ns counts as 2*ns, so
	// repeated kills of one shape double its estimate each time (an
	// exponential search for the real run time) instead of creeping up by
	// the margin.
	DefaultAtLeastFactor = 2.0
)

// outlierMinRuns is how many entries must count for one of them to be
// judged an outlier: the outlier and at least three others.
const outlierMinRuns = 4

// EstimatorConfig holds the estimator's settings. The zero value of every
// field selects its default; [NewEstimator] validates it once.
type EstimatorConfig struct {
	// Window is the number of most recent entries (runs, censored runs, a
	// seed) kept per key. Zero means DefaultWindow; it must be in
	// [1, 65536].
	Window int
	// Percentile is the nearest-rank percentile of the counted entries the
	// estimate starts from, in (0, 1]. Zero means DefaultPercentile.
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

	// Now is the clock entries are stamped and aged with: nanoseconds on
	// any monotonic scale (the supervisor passes its scheduler clock; tests
	// a fake). The estimator calls it, from the goroutine calling the
	// estimator, and never reads a clock itself. A value earlier than one
	// already returned counts as that one: time never goes back.
	//
	// Nil means no time-based aging: every entry stays fresh, nothing is
	// discounted, and the estimate is the percentile of the last Window
	// entries (the behaviour before aging existed).
	Now func() int64
	// MaxAge is how long an entry is fresh, ns: an entry older than that
	// counts only while it is among the newest MinKeep, and not even then if
	// it is a lone outlier (see [Estimator]). Zero means DefaultMaxAge;
	// negative is invalid. Without Now it has no effect.
	MaxAge int64
	// MinKeep is how many of the newest entries count however old they
	// are. Zero means DefaultMinKeep; negative is invalid; more than Window
	// means Window.
	MinKeep int
	// OutlierFactor: an old entry is discounted if it is the only counted
	// entry above OutlierFactor times their median. Zero means
	// DefaultOutlierFactor; negative means never; otherwise it must be
	// finite and at least 1.
	OutlierFactor float64
	// AtLeastFactor: [Estimator.ObserveAtLeast] of ns records
	// ns*AtLeastFactor. Zero means DefaultAtLeastFactor; negative means 1
	// (record ns); otherwise it must be finite and at least 1.
	AtLeastFactor float64
}

func (c EstimatorConfig) resolve() (EstimatorConfig, error) {
	badFactor := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f > 0 && f < 1 }
	switch {
	case c.Window < 0 || c.Window > 1<<16:
		return c, fmt.Errorf("sched: estimator config: Window %d not in [1, 65536]", c.Window)
	case c.Percentile < 0 || c.Percentile > 1 || math.IsNaN(c.Percentile):
		return c, fmt.Errorf("sched: estimator config: Percentile %v not in (0, 1]", c.Percentile)
	case math.IsNaN(c.Margin) || math.IsInf(c.Margin, 0):
		return c, fmt.Errorf("sched: estimator config: Margin %v is not finite", c.Margin)
	case c.MaxKeys < 0:
		return c, fmt.Errorf("sched: estimator config: MaxKeys %d is negative", c.MaxKeys)
	case c.MaxAge < 0:
		return c, fmt.Errorf("sched: estimator config: MaxAge %d is negative", c.MaxAge)
	case c.MinKeep < 0:
		return c, fmt.Errorf("sched: estimator config: MinKeep %d is negative", c.MinKeep)
	case badFactor(c.OutlierFactor):
		return c, fmt.Errorf("sched: estimator config: OutlierFactor %v is neither negative nor a finite value >= 1", c.OutlierFactor)
	case badFactor(c.AtLeastFactor):
		return c, fmt.Errorf("sched: estimator config: AtLeastFactor %v is neither negative nor a finite value >= 1", c.AtLeastFactor)
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
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MinKeep == 0 {
		c.MinKeep = DefaultMinKeep
	}
	c.MinKeep = min(c.MinKeep, c.Window)
	switch {
	case c.OutlierFactor == 0:
		c.OutlierFactor = DefaultOutlierFactor
	case c.OutlierFactor < 0:
		c.OutlierFactor = -1 // never
	}
	switch {
	case c.AtLeastFactor == 0:
		c.AtLeastFactor = DefaultAtLeastFactor
	case c.AtLeastFactor < 0:
		c.AtLeastFactor = 1
	}
	return c, nil
}

// series is the window of one key: a ring of the most recent entries and
// their times, the estimate cached until the next entry or until an entry
// turns old, and its place in the LRU list.
type series struct {
	key    string
	runs   []int64 // ring, len Window
	at     []int64 // ring of entry times, parallel to runs; nil without a clock
	n      int     // entries held, <= Window
	next   int     // ring slot of the next entry
	seeded bool    // the oldest entry is a Seed
	est    int64
	dirty  bool  // est must be recomputed
	until  int64 // est holds while the clock reads <= until
	prev   *series
	succ   *series
}

// Estimator learns execution times per key (the caller builds the key from
// module, export and parameters).
//
// # Entries
//
// For each key it keeps the most recent Window entries, each a value in ns
// and the time it was recorded (from [EstimatorConfig.Now]):
//
//   - [Estimator.Observe]: a run that finished, its measured time;
//   - [Estimator.ObserveAtLeast]: a censored run, killed at its deadline (or
//     otherwise known to have taken at least ns): AtLeastFactor*ns;
//   - [Estimator.Seed]: a calibration (benchd's p99 of many runs), which
//     first clears the key's entries.
//
// # Which entries count
//
// An entry is fresh while it is at most MaxAge old, and old after. At any
// time the entries that count are:
//
//  1. every fresh entry;
//  2. and, while fewer than MinKeep are fresh, the newest old ones, so that
//     MinKeep entries count (or all there are);
//  3. minus a lone old outlier among those: if at least 4 entries count
//     and exactly one of them is above OutlierFactor times their median
//     (nearest-rank p50) and that one is old, it no longer counts.
//
// A fresh entry always counts: a run counts fully for MaxAge after it is
// recorded. Time alone never removes the newest MinKeep-1 entries, so a key
// with an estimate keeps one. A discounted outlier counts again as soon as
// a second entry as high counts (two make a tail).
//
// # The estimate
//
// The estimate is the nearest-rank Percentile of the counted entries (never
// below that of the fresh ones alone), times 1+Margin, plus MarginNs, at
// least 1 ns. With the defaults (p99, at most 64 counted entries) that is
// the maximum of the counted entries times 1.1 plus 50 µs.
//
// Why this is safe, with share of runs over the estimate <= 5% as the goal:
// while a key has MinKeep fresh runs, the estimate is the percentile of its
// fresh runs in the window, as without aging (MaxAge only shortens the
// window in time). Only a key with fewer than MinKeep runs in the last MaxAge
// (idle, or refused because of its estimate) rests on old entries, and at
// least MinKeep-1 of them count: the largest of k runs of one distribution
// is exceeded by the next with probability 1/(k+1), 5% for k = 19. The one
// entry ever discounted is a lone run more than OutlierFactor times the
// median, recorded more than MaxAge ago: a real tail that heavy mostly
// shows in more than one of MinKeep runs, and then nothing is discounted.
// The first fresh run after an idle spell counts fully again. A simulation
// (TestEstimatorShareOverEstimate: jitter, disturbances, a 3% mode at 3x,
// drift, idle spells past MaxAge) stays under 1%.
//
// Why it recovers: one delayed run (or one censored run) raises the estimate
// at once and keeps it raised for MaxAge. After that it drops out when
// MinKeep newer entries exist, or, when no new runs arrive (a shape refused
// because of that estimate gets none), it is discounted as a lone outlier
// if it is one. What does not recover by itself (two bad runs, an outlier
// below OutlierFactor times the median, a single entry) is reported by
// [Estimator.Stale], so the caller can re-measure and [Estimator.Seed].
//
// # Censored runs
//
// A run killed at its deadline took at least as long as it ran; a censored
// entry records AtLeastFactor times that. It counts exactly like a run of
// that length: it raises the estimate at once to at least what such a run
// gives, shorter runs never lower it while it counts, and it leaves only as
// a run does (out of the window after Window newer entries, outvoted by the
// percentile once 1/(1-Percentile) or more entries count, or aged out as
// above). With AtLeastFactor 2 and a percentile that is the maximum (the
// default), if a shape is admitted with estimate C and killed after running
// C or more each time, each kill at least doubles C (times 1+Margin): it is
// refused after a logarithmic number of kills, not killed again and again.
//
// # Time
//
// The clock is a function in the config, not an argument of each method:
// every operation depends on it (entries are stamped, estimates age), the
// methods keep the signatures they had before aging existed, and no caller
// can mix timed and untimed calls. The estimator never reads a clock
// itself, so tests drive it with a fake one. The estimate of a key is
// recomputed only after a new entry or when one of its entries turns old.
//
// # Notes
//
// An Estimator is not safe for concurrent use: the supervisor owns it from
// one goroutine. Memory is bounded: at most MaxKeys keys of Window entries
// each (8 bytes an entry, 16 with a clock), the least recently used
// (observed, seeded or looked up) evicted first.
type Estimator struct {
	cfg     EstimatorConfig
	keys    map[string]*series
	lru     series // sentinel: lru.succ is the most recent, lru.prev the least
	last    int64  // the latest clock reading
	buf     []int64
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
		last:    math.MinInt64,
		buf:     make([]int64, 0, cfg.Window),
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
	e.add(e.get(key), execNs, e.clock())
}

// ObserveAtLeast records a censored run of key: one known to have taken at
// least ns (killed at its deadline after running ns, say). It is recorded
// as a run of ns*AtLeastFactor (saturating), so it raises the estimate to
// at least what a run of ns gives, and it counts in the window like a run
// (see "Censored runs" in [Estimator]). Negative values are ignored.
//
// A run that finished late but reports its measured time is not censored:
// use [Estimator.Observe].
func (e *Estimator) ObserveAtLeast(key string, ns int64) {
	if ns < 0 {
		return
	}
	v := int64(math.MaxInt64)
	if f := math.Ceil(float64(ns) * e.cfg.AtLeastFactor); f < math.MaxInt64 {
		v = max(int64(f), ns)
	}
	e.add(e.get(key), v, e.clock())
}

// Seed replaces the history of key with one calibration result ns (a
// measured execution time, as from benchd): a calibration supersedes older
// entries, censored ones included. Later entries join it in the window; it
// leaves after Window of them, or ages like any entry. For
// [Estimator.Stale] a fresh seed weighs as much as MinKeep runs. Negative
// values are ignored.
//
// Seed only with what a worker would see (wall time, not CPU time): a
// calibration blind to what killed a run erases the censored entry, and
// the kill repeats.
func (e *Estimator) Seed(key string, ns int64) {
	if ns < 0 {
		return
	}
	s := e.get(key)
	s.n, s.next = 0, 0
	e.add(s, ns, e.clock())
	s.seeded = true
}

// Learned returns the estimate for key, ns, and whether there is one. A key
// has one from its first entry until it is forgotten or evicted: aging
// alone never removes it.
func (e *Estimator) Learned(key string) (ns int64, ok bool) {
	s, ok := e.keys[key]
	if !ok {
		return 0, false
	}
	e.touch(s)
	if now := e.clock(); s.dirty || now > s.until {
		vals, fresh, until := e.counted(s, now)
		s.est = e.margins(e.value(vals, fresh))
		s.until, s.dirty = until, false
	}
	return s.est, true
}

// Runs returns how many entries key's estimate rests on now (runs,
// censored runs and a seed that count, see [Estimator]); 0 for an unknown
// key. It does not count as a use of key for eviction.
func (e *Estimator) Runs(key string) int {
	s, ok := e.keys[key]
	if !ok {
		return 0
	}
	vals, _, _ := e.counted(s, e.clock())
	return len(vals)
}

// Stale reports whether key's estimate rests on little or suspect data, so
// that measuring it again (and seeding the result) is worthwhile: the
// caller should ask when it refuses a call because of the learned estimate,
// and re-measure in the background, bounded. It is true if key has an
// estimate and
//
//   - fewer than MinKeep of its counted entries are fresh, a fresh seed
//     weighing MinKeep (without a clock: fewer than MinKeep entries and no
//     seed among them); or
//   - the estimate rests on one entry: at least 4 entries count, exactly
//     one of them is above OutlierFactor times their median, and the
//     percentile is that one (a fresh outlier, which counts until MaxAge).
//
// An unknown key is not stale: it has no estimate to doubt. Stale does not
// count as a use of key for eviction.
func (e *Estimator) Stale(key string) bool {
	s, ok := e.keys[key]
	if !ok {
		return false
	}
	vals, fresh, _ := e.counted(s, e.clock())
	weight := fresh
	if s.seeded && fresh == s.n { // the seed, the oldest entry, is fresh
		weight += e.cfg.MinKeep - 1
	}
	if weight < e.cfg.MinKeep {
		return true
	}
	if j, ok := e.lone(vals); ok {
		return e.value(vals, fresh) == vals[j]
	}
	return false
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

// clock returns the time now: the latest reading of Now so far, or 0
// without a clock.
func (e *Estimator) clock() int64 {
	if e.cfg.Now == nil {
		return 0
	}
	e.last = max(e.last, e.cfg.Now())
	return e.last
}

// add puts one entry into s's ring, recorded at now.
func (e *Estimator) add(s *series, ns, now int64) {
	w := len(s.runs)
	if s.n == w {
		s.seeded = false // the oldest entry, overwritten, was the seed if any
	}
	s.runs[s.next] = ns
	if s.at != nil {
		s.at[s.next] = now
	}
	s.next = (s.next + 1) % w
	s.n = min(s.n+1, w)
	s.dirty = true
}

// counted returns the entries of s that count at now (see [Estimator]), the
// fresh ones last: vals[len(vals)-fresh:] are fresh. It also returns until,
// the last time at which the answer holds unless an entry is added: the
// oldest fresh entry turns old after it. vals may alias s.runs or e.buf.
func (e *Estimator) counted(s *series, now int64) (vals []int64, fresh int, until int64) {
	n, w := s.n, len(s.runs)
	until = math.MaxInt64
	if s.at == nil {
		return s.runs[:n], n, until
	}
	first := (s.next - n + w) % w // the oldest entry
	old := 0
	for ; old < n; old++ {
		// now >= at: times never go back. A negative age is an overflow.
		if age := now - s.at[(first+old)%w]; age >= 0 && age <= e.cfg.MaxAge {
			break
		}
	}
	fresh = n - old
	if fresh > 0 {
		at := s.at[(first+old)%w]
		if at <= math.MaxInt64-e.cfg.MaxAge {
			until = at + e.cfg.MaxAge
		}
	}
	if old == 0 {
		return s.runs[:n], n, until
	}
	k := max(fresh, min(e.cfg.MinKeep, n))
	vals = e.buf[:0]
	for i := n - k; i < n; i++ {
		vals = append(vals, s.runs[(first+i)%w])
	}
	if j, ok := e.lone(vals); ok && j < k-fresh {
		vals = slices.Delete(vals, j, j+1)
	}
	return vals, fresh, until
}

// lone returns the index of the one entry of vals above OutlierFactor
// times their median, if there is exactly one and at least 4 entries.
func (e *Estimator) lone(vals []int64) (int, bool) {
	if e.cfg.OutlierFactor < 0 || len(vals) < outlierMinRuns {
		return 0, false
	}
	tmp := e.scratch[:len(vals)]
	copy(tmp, vals)
	limit := e.cfg.OutlierFactor * float64(nth(tmp, (len(vals)-1)/2))
	j := -1
	for i, v := range vals {
		if float64(v) > limit {
			if j >= 0 {
				return 0, false
			}
			j = i
		}
	}
	return j, j >= 0
}

// value returns the percentile the estimate starts from: that of the
// counted entries vals, and never below that of the fresh ones alone
// (vals[len(vals)-fresh:]). The two differ only when old entries count and
// the percentile is not the maximum of MinKeep entries (Percentile below
// 1-1/MinKeep).
func (e *Estimator) value(vals []int64, fresh int) int64 {
	v := percentile(vals, e.cfg.Percentile, e.scratch)
	if fresh > 0 && fresh < len(vals) {
		v = max(v, percentile(vals[len(vals)-fresh:], e.cfg.Percentile, e.scratch))
	}
	return v
}

// margins returns the estimate for percentile v: v times 1+Margin, plus
// MarginNs, at least 1 ns, saturating.
func (e *Estimator) margins(v int64) int64 {
	f := math.Ceil(float64(v)*(1+e.cfg.Margin)) + float64(e.cfg.MarginNs)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(f), 1)
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
		s = e.lru.prev // reuse the evicted rings
		e.unlink(s)
		delete(e.keys, s.key)
		*s = series{runs: s.runs, at: s.at}
	} else {
		s = &series{runs: make([]int64, e.cfg.Window)}
		if e.cfg.Now != nil {
			s.at = make([]int64, e.cfg.Window)
		}
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
