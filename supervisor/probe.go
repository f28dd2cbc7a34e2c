package supervisor

import (
	"fmt"
	"slices"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// The dispatch overhead admission charges every deadline job, and the
// wake-up it charges work starting on a core whose lanes sleep, are
// measured on each core's first lane when the daemon starts, placed on
// its CPU and before it takes a call: probe jobs for a module no lane has,
// which a lane answers at once, time the hop supervisor → lane →
// supervisor alone (instantiate and run are in each call's estimate).
const (
	// fallbackOverhead is charged until a core is measured: the round
	// trip of lanes that sleep between jobs on a VM (docs/benchmarks.md).
	fallbackOverhead = 150 * time.Microsecond
	probeRounds      = 3
	probeWarm        = 200 // a round's, back to back: the lane polls for each (Config.WorkerSpin)
	probeCold        = 12  // a round's, each after the lane has gone to sleep
	// probeModule is a module name no lane can hold: names are NFC and
	// valid UTF-8 (httpapi), this is neither.
	probeModule = "\xff probe"
	// quietShare divides the fastest round trip into the time after a
	// send during which the socket is not polled (pollConn.quiet).
	quietShare = 2
)

// probeCosts are one core's measured hop: Overhead, charged to every job,
// the p90 of the warm round trips; Tail, kept once in every plan, what
// the p99 adds to it; Wake, what a sleeping lane adds to the median round
// trip. A hop as slow as the p99 is one in a hundred: a plan of a few
// jobs meets one at most, and the round trips of a long plan average out
// to their mean, below the p90, so charging the p99 to every job would
// refuse work that fits (docs/RATIONALE.md). The wake-up's tail is not
// charged: with a dozen cold samples it is the slowest one, which on a
// shared host is another process's time slice.
type probeCosts struct {
	Overhead time.Duration
	Tail     time.Duration
	Wake     time.Duration
	WarmP50  time.Duration
	WarmP99  time.Duration
	ColdP50  time.Duration
	Fastest  time.Duration // the fastest warm round trip
}

// probe times the round trip on a lane that is up but not in service;
// spin is its Hello.SpinNs.
func probe(sp *spawned, spin time.Duration) (probeCosts, error) {
	sp.nc.SetDeadline(time.Now().Add(helloTimeout))
	defer sp.nc.SetDeadline(time.Time{})
	job := ipc.Job{Module: []byte(probeModule), Export: []byte("probe")}
	var res ipc.Result
	one := func(id uint64) (time.Duration, error) {
		job.ID = id
		t0 := time.Now()
		sp.pc.arm() // as a call's reader is kicked to poll
		if err := sp.conn.Write(ipc.KindJob, &job); err != nil {
			return 0, err
		}
		k, err := sp.conn.Read()
		if err != nil {
			return 0, err
		}
		if k != ipc.KindResult {
			return 0, fmt.Errorf("probe: got a %v frame", k)
		}
		if err := sp.conn.Decode(&res); err != nil {
			return 0, err
		}
		if res.ID != id || res.Err == "" {
			return 0, fmt.Errorf("probe: answer %d (err %q) to job %d", res.ID, res.Err, id)
		}
		return time.Since(t0), nil
	}
	// A round's figures are its quantiles; the hop's are the least of
	// each over the rounds, so that a moment when other work held the CPU
	// (the host is shared) is not taken for what the hop costs.
	best := probeCosts{Overhead: -1}
	q := func(xs []time.Duration, p float64) time.Duration {
		slices.Sort(xs)
		return xs[min(int(p*float64(len(xs))), len(xs)-1)]
	}
	id := uint64(1)
	for range probeRounds {
		warm := make([]time.Duration, 0, probeWarm)
		cold := make([]time.Duration, 0, probeCold)
		for i := range probeWarm + probeWarm/4 {
			d, err := one(id)
			if err != nil {
				return probeCosts{}, err
			}
			id++
			if i >= probeWarm/4 { // the first ones warm caches up
				warm = append(warm, d)
			}
		}
		for range probeCold {
			time.Sleep(spin + 2*time.Millisecond)
			d, err := one(id)
			if err != nil {
				return probeCosts{}, err
			}
			id++
			cold = append(cold, d)
		}
		c := probeCosts{Overhead: q(warm, 0.9), WarmP50: q(warm, 0.5), WarmP99: q(warm, 0.99), ColdP50: q(cold, 0.5), Fastest: q(warm, 0)}
		if best.Overhead < 0 {
			best = c
			continue
		}
		best = probeCosts{Overhead: min(best.Overhead, c.Overhead), WarmP50: min(best.WarmP50, c.WarmP50),
			WarmP99: min(best.WarmP99, c.WarmP99), ColdP50: min(best.ColdP50, c.ColdP50), Fastest: min(best.Fastest, c.Fastest)}
	}
	best.Tail = max(best.WarmP99-best.Overhead, 0)
	best.Wake = max(best.ColdP50-best.WarmP50, 0)
	return best, nil
}

// claimProbe reports whether c is to measure its core's hop, and if so
// claims it: the daemon's configuration asks for a measured overhead, c
// is a worker lane, its core was not measured or claimed, and no lane of
// the core is up (so no call runs on its CPU meanwhile); s.mu held.
func (s *Supervisor) claimProbe(c *child) bool {
	if !s.probing || c.core < 0 || s.probed[c.core] {
		return false
	}
	for _, w := range s.workers {
		if w.core == c.core && w.lp != nil && w.state == Running {
			return false
		}
	}
	s.probed[c.core], s.probingNow[c.core] = true, true
	return true
}

// probingCore reports whether a lane of c's core measures its hop now;
// s.mu held.
func (s *Supervisor) probingCore(c *child) bool {
	return c.core >= 0 && s.probingNow[c.core]
}

// probedCore ends c's measure of its core's hop, which failed with err or
// gave pc: the worst of every core's is charged from now on; s.mu held.
func (s *Supervisor) probedCore(c *child, pc probeCosts, err error) {
	s.probingNow[c.core] = false
	s.broadcast() // the core's other lanes may come up
	if err != nil {
		s.probed[c.core] = false // its next lane measures it
		return
	}
	s.probes = append(s.probes, pc)
	var worst probeCosts
	fastest := s.probes[0].Fastest
	for _, p := range s.probes {
		fastest = min(fastest, p.Fastest)
		worst.Overhead = max(worst.Overhead, p.Overhead)
		worst.Tail = max(worst.Tail, p.Tail)
		worst.Wake = max(worst.Wake, p.Wake)
	}
	s.overhead.Store(int64(worst.Overhead))
	s.quiet.Store(int64(fastest) / quietShare)
	s.disp.SetTailCost(worst.Tail)
	s.disp.SetWakeCost(worst.Wake)
	c.log.Info("measured the dispatch overhead", "warm_p50", pc.WarmP50, "overhead_p90", pc.Overhead,
		"warm_p99", pc.WarmP99, "tail", pc.Tail, "cold_p50", pc.ColdP50, "wake", pc.Wake, "fastest", pc.Fastest)
}
