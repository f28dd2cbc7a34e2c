package sched

import (
	"fmt"
	"testing"
)

// BenchmarkAdmitChain measures AdmitChain in steady state with n jobs
// queued: each op derives the deadlines of a chain of k stages of benchC
// each, due after every queued job, admits it whole, and then starts and
// finishes k jobs from the head of the queue, so the queue length stays n.
func BenchmarkAdmitChain(b *testing.B) {
	for _, k := range []int{1, 4, 16} {
		for _, n := range []int{100, 10000} {
			b.Run(fmt.Sprintf("stages=%d/queued=%d", k, n), func(b *testing.B) {
				s, id := fill(b, 1, n)
				now := int64(0)
				js := make([]Job, k)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					for i := range js {
						id++
						js[i] = Job{ID: id, Estimate: benchC}
					}
					s.ChainDeadlines(now+int64(n+2*k+2)*2*benchC, js)
					if _, err := s.AdmitChain(now, js); err != nil {
						b.Fatalf("AdmitChain(%d, %+v): %v", now, js, err)
					}
					for range k {
						s.Next(0, now)
						now += benchC
						s.Done(0, now)
					}
				}
			})
		}
	}
}
