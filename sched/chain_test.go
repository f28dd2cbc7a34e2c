package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// oracleFitChain is oracleFit for the stages js of a chain admitted at
// once: the first stage may preempt, the others are inserted in EDF order.
func oracleFitChain(cfg Config, cs coreSnap, js []Job) (ok, preempt bool, slack, idle int64) {
	if len(cs.queued)+len(cs.stack)+len(js) > cfg.MaxQueue {
		return false, false, 0, 0
	}
	_, _, idle = play(cfg, cs, nil, false)
	free := cs.lanes - len(cs.stack) - len(cs.be)
	if cs.busy {
		free--
	}
	if cs.busy && !cs.pinned && free > 0 && (cs.run.job.Deadline == 0 || edfCmp(js[0], cs.run.job) < 0) {
		if f := playOutAll(cfg, cs, js, true); f.ok {
			return true, true, f.slack, idle
		}
	}
	f := playOutAll(cfg, cs, js, false)
	return f.ok, false, f.slack, idle
}

// oracleChoiceChain is oracleChoice for a chain.
func oracleChoiceChain(cfg Config, snaps []coreSnap, js []Job) (best int, preempt bool, feasible []bool) {
	return oracleChoiceBy(snaps, func(cs coreSnap) (bool, bool, int64, int64) { return oracleFitChain(cfg, cs, js) })
}

// chain returns a random chain of k stages released at g.now, deadlines
// derived from a random end.
func (g *stateGen) chain(k int) []Job {
	js := make([]Job, k)
	var sum int64
	for i := range js {
		g.id++
		js[i] = Job{ID: g.id, Estimate: 1 + g.rng.Int64N(g.maxC)}
		if g.rng.IntN(8) == 0 {
			js[i].Unverified = true
			js[i].Estimate = g.rng.Int64N(g.maxC) // a claim
		}
		sum += js[i].Estimate
	}
	if g.rng.IntN(5) == 0 {
		js[k-1].LateCap = g.rng.Int64N(20)
	}
	g.s.ChainDeadlines(g.now+sum+1+g.rng.Int64N(g.slack*int64(k)), js)
	return js
}

func TestChainDeadlines(t *testing.T) {
	cfg := Config{Grace: 2, RestartCost: 5}
	for _, tc := range []struct {
		name   string
		stages []Job
		want   []int64
	}{
		{"one", []Job{{Estimate: 3}}, []int64{100}},
		{"latest possible", []Job{{Estimate: 3}, {Estimate: 10}, {Estimate: 20}}, []int64{70, 80, 100}},
		{"unverified middle", []Job{{Estimate: 3}, {Estimate: 10, Unverified: true}, {Estimate: 20}}, []int64{63, 73, 100}},
		{"unverified late cap", []Job{{Estimate: 10, Unverified: true, LateCap: 4}, {Estimate: 20}}, []int64{69, 100}},
		{"unverified last", []Job{{Estimate: 3}, {Unverified: true}}, []int64{100, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, 1, cfg)
			js := slices.Clone(tc.stages)
			s.ChainDeadlines(100, js)
			var got []int64
			for _, j := range js {
				got = append(got, j.Deadline)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got deadlines %v, want %v", got, tc.want)
			}
		})
	}
}

// stages returns a chain with IDs from id and the given estimates, due by
// end (ChainDeadlines of s).
func stages(s *Scheduler, id uint64, end int64, est ...int64) []Job {
	js := make([]Job, len(est))
	for i, c := range est {
		js[i] = Job{ID: id + uint64(i), Estimate: c}
	}
	s.ChainDeadlines(end, js)
	return js
}

// TestAdmitChain walks small cases by hand: fits, refused whole, invalid,
// pinned and preempting.
func TestAdmitChain(t *testing.T) {
	t.Run("idle core runs the stages in order on time", func(t *testing.T) {
		s := mustNew(t, 1, exact)
		js := stages(s, 1, 30, 5, 10, 5)
		if core, err := s.AdmitChain(0, js); core != 0 || err != nil {
			t.Fatalf("AdmitChain: got %d, %v, want 0, nil", core, err)
		}
		// Every stage runs exactly its estimate: each ends by its deadline.
		now := int64(0)
		for i, j := range js {
			a := s.Next(0, now)
			if a.Run.ID != j.ID {
				t.Fatalf("stage %d: Next ran %+v, want job %d", i, a.Run, j.ID)
			}
			now += j.Estimate
			if now > j.Deadline {
				t.Fatalf("stage %d ends at %d, past its deadline %d", i, now, j.Deadline)
			}
			s.Done(0, now)
		}
		if st := s.Stats(now); st.Admitted != 3 || st.Chains != 1 || st.Cores[0].Queued != 0 || st.Cores[0].Completed != 3 {
			t.Errorf("stats: got %+v", st)
		}
	})
	t.Run("refused whole", func(t *testing.T) {
		s := mustNew(t, 2, exact)
		// Each core holds a job due at 20 that needs 15 of it.
		for i := range 2 {
			if _, err := s.Admit(0, Job{ID: uint64(100 + i), Deadline: 20, Estimate: 15}); err != nil {
				t.Fatal(err)
			}
		}
		before := fmt.Sprint(snapshot(s, 0))
		// The first stage alone would fit after them (deadline 24 >= 15+4),
		// the whole chain cannot: 15+4+8 > 25.
		js := stages(s, 1, 25, 4, 8)
		_, err := s.AdmitChain(0, js)
		var u *Unschedulable
		if !errors.As(err, &u) {
			t.Fatalf("AdmitChain: got %v, want Unschedulable", err)
		}
		if _, err := s.Admit(0, js[0]); err != nil {
			t.Fatalf("the first stage alone: %v, want it admissible (the test must refuse the chain, not the stage)", err)
		}
		s.Cancel(js[0].ID)
		if after := fmt.Sprint(snapshot(s, 0)); after != before {
			t.Errorf("a refused chain left state behind:\n got %s\nwant %s", after, before)
		}
		st := s.Stats(0)
		if st.Rejected != 1 || st.Chains != 0 || st.Admitted != 3 {
			t.Errorf("stats: got rejected %d chains %d admitted %d, want 1, 0, 3", st.Rejected, st.Chains, st.Admitted)
		}
		if u.RetryAfter <= 0 {
			t.Errorf("RetryAfter: got %d, want > 0", u.RetryAfter)
		}
	})
	t.Run("a later stage would make a queued job late", func(t *testing.T) {
		s := mustNew(t, 1, exact)
		if _, err := s.Admit(0, Job{ID: 100, Deadline: 30, Estimate: 10}); err != nil {
			t.Fatal(err)
		}
		// Stage 2 (deadline 25) runs before the queued job: 5+20+10 > 30.
		js := stages(s, 1, 26, 5, 20)
		if _, err := s.AdmitChain(0, js); !errors.As(err, new(*Unschedulable)) {
			t.Fatalf("AdmitChain: got %v, want Unschedulable", err)
		}
		if q := s.Stats(0).Cores[0].Queued; q != 1 {
			t.Errorf("queued: got %d, want 1", q)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		s := mustNew(t, 1, exact)
		long := make([]Job, MaxChain+1)
		for i := range long {
			long[i] = Job{ID: uint64(i + 1), Deadline: int64(1000 + i), Estimate: 1}
		}
		if _, err := s.Admit(0, Job{ID: 50, Deadline: 1000, Estimate: 1}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			js   []Job
			want error
		}{
			{"empty", nil, ErrInvalidChain},
			{"too long", long, ErrInvalidChain},
			{"ids not increasing", []Job{{ID: 2, Deadline: 10, Estimate: 1}, {ID: 1, Deadline: 20, Estimate: 1}}, ErrInvalidChain},
			{"deadlines decreasing", []Job{{ID: 1, Deadline: 20, Estimate: 1}, {ID: 2, Deadline: 10, Estimate: 1}}, ErrInvalidChain},
			{"best effort stage", []Job{{ID: 1, Estimate: 1}, {ID: 2, Deadline: 20, Estimate: 1}}, ErrInvalidDeadline},
			{"no time for the first stage", []Job{{ID: 1, Deadline: 5, Estimate: 5}, {ID: 2, Deadline: 20, Estimate: 1}}, ErrInvalidDeadline},
			{"zero estimate", []Job{{ID: 1, Deadline: 5, Estimate: 1}, {ID: 2, Deadline: 20}}, ErrInvalidEstimate},
			{"unverified past deadline", []Job{{ID: 1, Deadline: -1, Unverified: true}}, ErrInvalidDeadline},
			{"duplicate", []Job{{ID: 1, Deadline: 5, Estimate: 1}, {ID: 50, Deadline: 20, Estimate: 1}}, ErrDuplicate},
		} {
			if _, err := s.AdmitChain(0, tc.js); !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
		}
		if st := s.Stats(0); st.Invalid != 9 || st.Admitted != 1 || st.Cores[0].Queued != 1 {
			t.Errorf("stats: got invalid %d admitted %d queued %d, want 9, 1, 1", st.Invalid, st.Admitted, st.Cores[0].Queued)
		}
	})
	t.Run("first stage preempts, the rest run before the stopped job", func(t *testing.T) {
		cfg := exact
		cfg.Lanes = 2
		s := mustNew(t, 1, cfg)
		if _, err := s.Admit(0, Job{ID: 100, Deadline: 100, Estimate: 50}); err != nil {
			t.Fatal(err)
		}
		s.Next(0, 0)
		js := stages(s, 1, 30, 5, 10)
		if _, err := s.AdmitChain(10, js); err != nil {
			t.Fatalf("AdmitChain: %v", err)
		}
		a := s.Next(0, 10)
		if a.Stop.ID != 100 || a.Run.ID != 1 {
			t.Fatalf("Next: got %+v, want stage 1 to preempt job 100", a)
		}
		s.Done(0, 15)
		if a := s.Next(0, 15); a.Run.ID != 2 || a.Resume {
			t.Fatalf("Next after stage 1: got %+v, want stage 2 started", a)
		}
		s.Done(0, 25)
		if a := s.Next(0, 25); a.Run.ID != 100 || !a.Resume {
			t.Fatalf("Next after stage 2: got %+v, want job 100 resumed", a)
		}
	})
	t.Run("a chain that cannot preempt waits and pins", func(t *testing.T) {
		s := mustNew(t, 1, exact) // one lane: no preemption
		if _, err := s.Admit(0, Job{ID: 100, Deadline: 100, Estimate: 10}); err != nil {
			t.Fatal(err)
		}
		s.Next(0, 0)
		js := stages(s, 1, 40, 5, 10)
		if _, err := s.AdmitChain(0, js); err != nil {
			t.Fatalf("AdmitChain: %v", err)
		}
		if !s.cores[0].pinned {
			t.Error("core not pinned for a chain admitted to wait")
		}
		if a := s.Next(0, 1); a.Run.ID != 0 {
			t.Errorf("Next: got %+v, want nothing until job 100 ends", a)
		}
	})
}

// TestChainOfOneIsAdmit checks that a chain of one stage is Admit exactly:
// same core, same error, same state after.
func TestChainOfOneIsAdmit(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cfgs := exactnessConfigs()
	for round := range 1500 {
		cfg := cfgs[round%len(cfgs)]
		g := &stateGen{rng: rng, s: mustNew(t, 1+rng.IntN(3), cfg), maxC: 10, slack: 60}
		for range rng.IntN(40) {
			g.step()
		}
		now := g.now + rng.Int64N(20)
		g.now = now
		j := g.job()
		a, b := clone(g.s), clone(g.s)
		c1, e1 := a.Admit(now, j)
		c2, e2 := b.AdmitChain(now, []Job{j})
		if c1 != c2 || fmt.Sprint(e1) != fmt.Sprint(e2) {
			t.Fatalf("round %d, job %+v: Admit got %d, %v; AdmitChain got %d, %v", round, j, c1, e1, c2, e2)
		}
		if sa, sb := fmt.Sprint(snapshot(a, now)), fmt.Sprint(snapshot(b, now)); sa != sb {
			t.Fatalf("round %d, job %+v: states differ:\n Admit      %s\n AdmitChain %s", round, j, sa, sb)
		}
	}
}

// TestChainExactness compares AdmitChain with the brute force on random
// states (those of TestExactness, with chains admitted among the single
// jobs): the same core or the same refusal, and where it is admitted,
// Next preempts exactly when the oracle's plan does.
func TestChainExactness(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cfgs := exactnessConfigs()
	rounds := 3000
	if testing.Short() {
		rounds = 400
	}
	var n struct{ admitted, refused, preempt, unverified, long int }
	for round := range rounds {
		cfg := cfgs[round%len(cfgs)]
		if round%3 == 0 {
			cfg.WakeCost = 3 // idle cores whose lanes sleep; SetWarm below
		}
		g := &stateGen{rng: rng, s: mustNew(t, 1+rng.IntN(3), cfg), maxC: 10, slack: 60}
		for range rng.IntN(40) {
			if rng.IntN(12) == 0 {
				g.s.SetWarm(rng.IntN(len(g.s.cores)), g.now+rng.Int64N(10))
			}
			if rng.IntN(10) == 0 {
				if core, err := g.s.AdmitChain(g.now, g.chain(1+rng.IntN(3))); err == nil {
					g.next(core)
				}
			} else {
				g.step()
			}
			checkInvariants(t, g.s)
		}
		s := g.s
		now := g.now + rng.Int64N(20)
		snaps := snapshot(s, now)
		for range 10 {
			g.now = now
			js := g.chain(1 + rng.IntN(4))
			want, preempt, feasible := oracleChoiceChain(s.cfg, snaps, js)
			c2 := clone(s)
			core, err := c2.AdmitChain(now, js)
			var u *Unschedulable
			switch {
			case err == nil:
				if core != want || !feasible[core] {
					t.Fatalf("round %d: AdmitChain(%d, %+v): got core %d, want %d (feasible %v; cores %v)", round, now, js, core, want, feasible, snaps)
				}
				busy, running := c2.cores[core].busy, c2.cores[core].run
				a := c2.Next(core, now)
				if got := busy && a.Stop.ID == running.ID && a.Run.ID == js[0].ID; got != preempt {
					t.Fatalf("round %d: AdmitChain(%d, %+v) on core %d, then Next: got %+v, want preempt %v (core %v)", round, now, js, core, a, preempt, snaps[core])
				}
				checkDispatched(t, c2, core)
				n.admitted++
				if preempt {
					n.preempt++
				}
				if len(js) > 2 {
					n.long++
				}
				for _, j := range js {
					if j.Unverified {
						n.unverified++
						break
					}
				}
			case errors.As(err, &u):
				if want >= 0 {
					t.Fatalf("round %d: AdmitChain(%d, %+v): got %v, want core %d (preempt %v; cores %v)", round, now, js, err, want, preempt, snaps)
				}
				if fmt.Sprint(snapshot(c2, now)) != fmt.Sprint(snaps) {
					t.Fatalf("round %d: a refused chain changed the state", round)
				}
				n.refused++
			default:
				ok := true
				for _, j := range js {
					ok = ok && j.Deadline > 0 && valid(now, j)
				}
				if ok {
					t.Fatalf("round %d: AdmitChain(%d, %+v): %v", round, now, js, err)
				}
			}
			checkInvariants(t, c2)
		}
	}
	t.Logf("%+v", n)
	for name, v := range map[string]int{"admitted": n.admitted, "refused": n.refused, "preempting": n.preempt,
		"unverified": n.unverified, "3+ stages": n.long} {
		if v == 0 {
			t.Errorf("no %s case", name)
		}
	}
}

// TestChainSimulated runs random arrivals of single jobs and chains on a
// scheduler, every job taking exactly its estimate and a chain's stage
// becoming runnable only when the one before it ended, as the dispatcher
// does: no admitted job is late, no stage starts before the one before it
// ended, and when a middle stage's lane dies, cancelling the rest of its
// chain leaves nothing of it behind.
func TestChainSimulated(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var chains, stagesRun, cancelled int
	for round := range 300 {
		lanes := 1 + rng.IntN(3)
		cfg := Config{Lanes: lanes, BestEffortCap: 100, Grace: -1, RestartCost: -1, PreemptCost: int64(rng.IntN(3)) - 1, Quantum: -1}
		cores := 1 + rng.IntN(2)
		s := mustNew(t, cores, cfg)
		type info struct {
			job   Job
			chain []uint64 // the chain's stage IDs, nil for a single job
			stage int
			ran   int64 // run time so far
		}
		jobs := map[uint64]*info{}
		ended := map[uint64]bool{}
		var id uint64
		var now int64
		running := make([]uint64, cores)
		runFrom := make([]int64, cores)
		apply := func(c int, a Action) {
			for _, j := range a.Expired {
				t.Fatalf("round %d: job %d expired at %d", round, j.ID, now)
			}
			if a.Stop.ID != 0 {
				jobs[a.Stop.ID].ran += now - runFrom[c]
				running[c] = 0
			}
			if a.Run.ID != 0 {
				in := jobs[a.Run.ID]
				if in.stage > 0 && !ended[in.chain[in.stage-1]] {
					t.Fatalf("round %d: stage %d (job %d) started at %d before stage %d ended", round, in.stage, a.Run.ID, now, in.stage-1)
				}
				running[c], runFrom[c] = a.Run.ID, now
				if len(in.chain) > 1 && !a.Resume {
					stagesRun++
				}
			}
		}
		// nextEnd returns the core whose running job ends first, and when;
		// -1 when none runs.
		nextEnd := func() (c int, at int64) {
			c = -1
			for i, r := range running {
				if r == 0 {
					continue
				}
				in := jobs[r]
				if e := runFrom[i] + in.job.Estimate - in.ran; c < 0 || e < at {
					c, at = i, e
				}
			}
			return c, at
		}
		for step := 0; step < 200; step++ {
			switch r := rng.IntN(10); {
			case r < 4:
				g := &stateGen{rng: rng, s: s, now: now, id: id, maxC: 8, slack: 40}
				var js []Job
				if rng.IntN(2) == 0 {
					js = []Job{g.job()}
					js[0].Unverified, js[0].LateCap = false, 0
					if js[0].Estimate >= js[0].Deadline-now {
						js[0].Deadline = now + js[0].Estimate + 1
					}
				} else {
					js = g.chain(1 + rng.IntN(4))
					for i := range js {
						if js[i].Unverified {
							js[i].Unverified, js[i].Estimate = false, 1+js[i].Estimate
						}
						js[i].LateCap = 0
					}
					s.ChainDeadlines(js[len(js)-1].Deadline, js)
				}
				id = g.id
				var core int
				var err error
				if len(js) == 1 && rng.IntN(2) == 0 {
					core, err = s.Admit(now, js[0])
				} else {
					core, err = s.AdmitChain(now, js)
				}
				if err != nil {
					continue
				}
				var ids []uint64
				for _, j := range js {
					ids = append(ids, j.ID)
				}
				for i, j := range js {
					jobs[j.ID] = &info{job: j, chain: ids, stage: i}
				}
				if len(js) > 1 {
					chains++
				}
				apply(core, s.Next(core, now))
			default:
				// Advance to the next end of a running job.
				c, at := nextEnd()
				if c < 0 {
					now += int64(rng.IntN(5))
					for i := range running {
						apply(i, s.Next(i, now))
					}
					continue
				}
				now = at
				r := running[c]
				in := jobs[r]
				if in.job.Deadline != 0 && now > in.job.Deadline {
					t.Fatalf("round %d: job %d (stage %d of %v) ended at %d, past its deadline %d", round, r, in.stage, in.chain, now, in.job.Deadline)
				}
				running[c] = 0
				if in.stage > 0 && in.stage < len(in.chain)-1 && rng.IntN(8) == 0 {
					// Its lane died: the chain ends here.
					s.Remove(c, r, now)
					s.LaneUp(c)
					for _, later := range in.chain[in.stage+1:] {
						if !s.Cancel(later) {
							t.Fatalf("round %d: Cancel(%d), a later stage of a lost one: not queued", round, later)
						}
						ended[later] = true
						cancelled++
					}
				} else {
					s.Done(c, now)
				}
				ended[r] = true
				apply(c, s.Next(c, now))
			}
			for c := range running {
				apply(c, s.Next(c, now))
			}
		}
		// Run everything out; then nothing may be left.
		for guard := 0; ; guard++ {
			c, at := nextEnd()
			if c < 0 || guard > 10000 {
				break
			}
			now = at
			r := running[c]
			if in := jobs[r]; now > in.job.Deadline {
				t.Fatalf("round %d: job %d ended at %d, past its deadline %d", round, r, now, in.job.Deadline)
			}
			running[c] = 0
			s.Done(c, now)
			ended[r] = true
			for i := range running {
				apply(i, s.Next(i, now))
			}
		}
		st := s.Stats(now)
		for c, cs := range st.Cores {
			if cs.Queued != 0 || cs.Running || cs.Stopped != 0 {
				t.Fatalf("round %d: core %d left with %+v", round, c, cs)
			}
		}
		if len(s.index) != 0 {
			t.Fatalf("round %d: index left with %v", round, s.index)
		}
		checkInvariants(t, s)
	}
	t.Logf("chains %d, stages run %d, cancelled after a lost stage %d", chains, stagesRun, cancelled)
	if chains == 0 || stagesRun == 0 || cancelled == 0 {
		t.Error("a case never happened")
	}
}
