// Command hiccup measures a CPU's noise floor: it spins reading the
// monotonic clock and counts the gaps, the moments its thread did not run
// (interrupts, the kernel's tick, a hypervisor running something else on
// the physical CPU). Nothing done on that CPU can be faster than its
// gaps allow, so they bound what any per-call latency tail can reach
// there (docs/benchmarks.md, issue 15).
//
//	taskset -c 1 go run ./bench/hiccup -d 2s
package main

import (
	"flag"
	"fmt"
	"time"
)

func main() {
	d := flag.Duration("d", 2*time.Second, "how long to spin")
	flag.Parse()
	bounds := []time.Duration{5 * time.Microsecond, 10 * time.Microsecond, 20 * time.Microsecond,
		50 * time.Microsecond, 100 * time.Microsecond, time.Millisecond}
	counts := make([]int, len(bounds))
	var lost, worst time.Duration
	start := time.Now()
	last := start
	for last.Sub(start) < *d {
		now := time.Now()
		gap := now.Sub(last)
		last = now
		worst = max(worst, gap)
		for i := len(bounds) - 1; i >= 0; i-- {
			if gap >= bounds[i] {
				counts[i]++
				lost += gap
				break
			}
		}
	}
	took := last.Sub(start)
	fmt.Printf("spun %v, lost %v (%.1f%%) in gaps of 5 µs or more, the longest %v\n",
		took.Round(time.Millisecond), lost.Round(time.Microsecond), 100*lost.Seconds()/took.Seconds(), worst)
	for i, b := range bounds {
		hi := "∞"
		if i+1 < len(bounds) {
			hi = bounds[i+1].String()
		}
		fmt.Printf("  [%v, %s): %d a second\n", b, hi, int(float64(counts[i])/took.Seconds()))
	}
}
