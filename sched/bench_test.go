package sched

import (
	"fmt"
	"strconv"
	"testing"
)

// benchC is the estimate of every benchmark job: 1 µs.
const benchC = 1000

// fill queues n jobs on each of cores cores, deadlines 2C apart so that
// every job has slack, and starts none of them.
func fill(b *testing.B, cores, n int) (*Scheduler, uint64) {
	return fillCfg(b, cores, n, Config{MaxQueue: 1 << 20})
}

// fillCfg is fill with the configuration cfg.
func fillCfg(b *testing.B, cores, n int, cfg Config) (*Scheduler, uint64) {
	s := mustNew(b, cores, cfg)
	id := uint64(0)
	for i := range n * cores {
		id++
		j := Job{ID: id, Deadline: int64(i/cores+1) * 2 * benchC, Estimate: benchC}
		if _, err := s.Admit(0, j); err != nil {
			b.Fatalf("fill: Admit(%+v): %v", j, err)
		}
	}
	return s, id
}

// BenchmarkAdmit measures Admit in steady state with n jobs queued per core.
// Each op admits one job at the tail (a later deadline than any queued, as
// arrivals usually have) and then starts and finishes the head of the
// receiving core, so the queue length stays n. Next and Done are O(1) and a
// few ns of the total.
func BenchmarkAdmit(b *testing.B) {
	for _, cores := range []int{1, 2} {
		for _, n := range []int{1, 100, 10000} {
			name := "queued=" + strconv.Itoa(n)
			if cores > 1 {
				name = fmt.Sprintf("cores=%d/%s", cores, name)
			}
			b.Run(name, func(b *testing.B) {
				s, id := fill(b, cores, n)
				now := int64(0)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					id++
					j := Job{ID: id, Deadline: now + int64(n+2)*2*benchC, Estimate: benchC}
					core, err := s.Admit(now, j)
					if err != nil {
						b.Fatalf("Admit(%d, %+v): %v", now, j, err)
					}
					s.Next(core, now)
					now += benchC / int64(cores)
					s.Done(core, now)
				}
			})
		}
	}
}

// BenchmarkAdmitMiddle measures the worst common case: each op admits a job
// whose deadline falls in the middle of a queue of n (half the entries
// shift) and cancels it again.
func BenchmarkAdmitMiddle(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run("queued="+strconv.Itoa(n), func(b *testing.B) {
			s, id := fill(b, 1, n)
			mid := int64(n/2)*2*benchC + benchC
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				id++
				j := Job{ID: id, Deadline: mid, Estimate: benchC / 2}
				if _, err := s.Admit(0, j); err != nil {
					b.Fatalf("Admit(0, %+v): %v", j, err)
				}
				s.Cancel(id)
			}
		})
	}
}

// BenchmarkAdmitRefused measures a refusal, which builds the *Unschedulable
// and its RetryAfter hint.
func BenchmarkAdmitRefused(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run("queued="+strconv.Itoa(n), func(b *testing.B) {
			s, id := fill(b, 2, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// Due before the first queued deadline and too long to fit.
				j := Job{ID: id + 1, Deadline: 4 * benchC, Estimate: 3 * benchC}
				if _, err := s.Admit(0, j); err == nil {
					b.Fatalf("Admit(0, %+v): got admitted, want refused", j)
				}
			}
		})
	}
}

// BenchmarkAdmitLanes measures Admit on one core with three lanes and n
// jobs queued, as BenchmarkAdmit does (tail: each op admits one job at the
// tail, which does not preempt, then starts and finishes the head), and
// with preemption (preempt: each op admits an urgent job that preempts the
// running one, runs it to its end, resumes and finishes the preempted
// job, starts the next, and admits one job at the tail to keep n queued:
// two Admits, four Nexts and two Dones an op).
func BenchmarkAdmitLanes(b *testing.B) {
	cfg := Config{MaxQueue: 1 << 20, Lanes: 3, PreemptCost: benchC / 10}
	for _, n := range []int{1, 100, 10000} {
		b.Run("tail/queued="+strconv.Itoa(n), func(b *testing.B) {
			s, id := fillCfg(b, 1, n, cfg)
			now := int64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				id++
				j := Job{ID: id, Deadline: now + int64(n+2)*2*benchC, Estimate: benchC}
				if _, err := s.Admit(now, j); err != nil {
					b.Fatalf("Admit(%d, %+v): %v", now, j, err)
				}
				s.Next(0, now)
				now += benchC
				s.Done(0, now)
			}
		})
	}
	for _, n := range []int{1, 100, 10000} {
		b.Run("preempt/queued="+strconv.Itoa(n), func(b *testing.B) {
			s, id := fillCfg(b, 1, n+1, cfg)
			now := int64(0)
			s.Next(0, now) // n queued, the head running
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				id++
				u := Job{ID: id, Deadline: now + benchC/2, Estimate: benchC / 10}
				if _, err := s.Admit(now, u); err != nil {
					b.Fatalf("Admit(%d, %+v): %v", now, u, err)
				}
				if a := s.Next(0, now); a.Run.ID != u.ID || a.Stop.ID == 0 {
					b.Fatalf("Next(0, %d): got %+v, want %d to preempt", now, a, u.ID)
				}
				now += benchC / 5
				s.Done(0, now)
				s.Next(0, now) // resumes
				now += benchC
				s.Done(0, now)
				s.Next(0, now) // the next head
				id++
				j := Job{ID: id, Deadline: now + int64(n+2)*2*benchC, Estimate: benchC}
				if _, err := s.Admit(now, j); err != nil {
					b.Fatalf("Admit(%d, %+v): %v", now, j, err)
				}
			}
		})
	}
}

// BenchmarkEstimator measures the per-call pair: Observe a run, then look up
// the estimate (which recomputes the percentile of the window). The clock
// variants stamp and age entries with a clock advancing 1 µs per reading.
func BenchmarkEstimator(b *testing.B) {
	for _, bc := range []struct {
		w     int
		clock bool
	}{{64, false}, {1024, false}, {64, true}, {1024, true}} {
		name := "window=" + strconv.Itoa(bc.w)
		if bc.clock {
			name += "/clock"
		}
		w := bc.w
		b.Run(name, func(b *testing.B) {
			cfg := EstimatorConfig{Window: w}
			if bc.clock {
				var t int64
				cfg.Now = func() int64 { t += 1000; return t }
			}
			e := mustEstimator(b, cfg)
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = "mod.wasm/fib/i32:" + strconv.Itoa(i)
				for r := range w {
					e.Observe(keys[i], int64(1000+r%37))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				k := keys[i%len(keys)]
				e.Observe(k, int64(1000+i%41))
				if _, ok := e.Learned(k); !ok {
					b.Fatal("Learned: got none")
				}
			}
		})
	}
}
