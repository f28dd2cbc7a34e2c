package supervisor

// Deadline chains (issue 16, /call with "then") through Supervisor.Call,
// on the honest-admission rig: fake lanes, a fake dispatcher clock, no
// processes.
//
//	go test -race -count=1 -run 'TestChain' ./supervisor/

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/sched"
)

// chainSpec is a chain of m.wasm f(p) for each p, due within deadline.
func (r *honRig) chainSpec(name string, deadline time.Duration, ps ...int) httpapi.CallSpec {
	spec := r.spec(name, ps[0], 0, deadline)
	for _, p := range ps[1:] {
		spec.Then = append(spec.Then, httpapi.StageSpec{Module: "m.wasm", Export: "f", Params: []byte(fmt.Sprintf("[%d]", p)), ResultsLength: -1})
	}
	return spec
}

// chainCall sends spec with ctx and returns once it is admitted or
// answered, like call.
func (r *honRig) chainCall(ctx context.Context, spec httpapi.CallSpec) *honCall {
	r.t.Helper()
	c := &honCall{r: r, name: spec.TaskName, done: make(chan struct{})}
	go func() {
		c.res, c.err = r.s.Call(ctx, spec)
		close(c.done)
	}()
	honWait(r.t, spec.TaskName+" admitted or answered", func() bool {
		if c.answered() {
			return true
		}
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		tk := r.s.names[spec.TaskName]
		return tk != nil && tk.core >= 0
	})
	return c
}

// deliver answers the job last started under name with res.
func (r *honRig) deliver(name string, res *ipc.Result) {
	r.t.Helper()
	r.mu.Lock()
	j, ok := r.jobs[name]
	delete(r.jobs, name)
	r.mu.Unlock()
	if !ok {
		r.t.Fatalf("%s: no job started", name)
	}
	res.ID = j.id
	if !r.s.disp.Result(0, j.l.li, j.l, j.id, res) {
		r.t.Fatalf("%s: result dropped", name)
	}
}

// waitStarted waits for a job of name to be started.
func (r *honRig) waitStarted(name string) {
	r.t.Helper()
	honWait(r.t, name+" started", func() bool { return r.isStarted(name) })
}

func TestChainMaxEqual(t *testing.T) {
	if httpapi.MaxThen+1 != sched.MaxChain {
		t.Fatalf("httpapi.MaxThen+1 = %d, sched.MaxChain = %d: a chain httpapi accepts must be one the scheduler takes", httpapi.MaxThen+1, sched.MaxChain)
	}
}

// A chain that fits runs its stages in order, one answer with each
// stage's deadline and timings, the last stage's results; it counts as one
// call; /uname and /status show its stages.
func TestChainCall(t *testing.T) {
	r := newHonRig(t, 2, honRestart)
	for p, c := range map[int]time.Duration{1: 5 * hms, 2: 10 * hms, 3: 5 * hms} {
		r.seed(p, c)
	}
	c := r.chainCall(context.Background(), r.chainSpec("ch", 40*hms, 1, 2, 3))
	c.admitted(false)
	st := r.s.Status().(Status)
	if len(st.Chains) != 1 || len(st.Chains[0].Stages) != 3 || st.Chains[0].Stages[0].State != "running" || st.Chains[0].Stages[1].State != "queued" {
		t.Fatalf("status chains: got %+v, want ch with stage 1 running, 2 and 3 queued", st.Chains)
	}
	tl, err := r.s.Timeline("ch")
	if err != nil || len(tl.(Timeline).Stages) != 3 {
		t.Fatalf("/uname in flight: got %+v, %v, want 3 stages", tl, err)
	}
	for range 3 {
		r.waitStarted("ch") // stage i+1: the next starts only after its result
		r.clk.Advance(4 * hms)
		r.deliver("ch", &ipc.Result{ExecNs: (4 * hms).Nanoseconds(), Results: []uint64{}})
	}
	res, err := c.wait()
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	if len(res.Stages) != 3 || res.DeadlineMet == nil || !*res.DeadlineMet || res.Total != 12*hms {
		t.Fatalf("answer: got %+v", res)
	}
	// Latest-possible: each stage's deadline is the next one's less the
	// next one's estimate and the dispatch overhead.
	o := time.Duration(r.s.overhead.Load())
	e := func(i int) time.Duration { return res.Stages[i].Estimate + o }
	want := []time.Duration{40*hms - e(2) - e(1), 40*hms - e(2), 40 * hms}
	var sum time.Duration
	for i, sr := range res.Stages {
		sum += sr.Estimate
		if sr.Deadline != want[i] || !sr.DeadlineMet || sr.Total != time.Duration(i+1)*4*hms || sr.Queue != 0 {
			t.Errorf("stage %d: got deadline %v met %v total %v queue %v, want deadline %v met, total %v, queue 0",
				i+1, sr.Deadline, sr.DeadlineMet, sr.Total, sr.Queue, want[i], time.Duration(i+1)*4*hms)
		}
		if sr.EstimateSource != sched.SourceLearned {
			t.Errorf("stage %d: estimate source %q", i+1, sr.EstimateSource)
		}
	}
	if res.Estimate != sum || sum < 20*hms {
		t.Errorf("estimate: got %v, want the stages' sum %v (at least the 20ms seeded)", res.Estimate, sum)
	}
	r.s.mu.Lock()
	cnt, inFlight := r.s.count, len(r.s.tasks)
	r.s.mu.Unlock()
	if cnt.Calls != 1 || cnt.Admitted != 1 || cnt.Chains != 1 || cnt.Answered != 1 || cnt.Completed != 1 || cnt.Met != 1 || inFlight != 0 {
		t.Errorf("counters: got %+v with %d in flight, want one call, one chain, met", cnt, inFlight)
	}
	tl, err = r.s.Timeline("ch")
	if err != nil {
		t.Fatal(err)
	}
	ft := tl.(Timeline)
	if ft.State != "done" || len(ft.Stages) != 3 || ft.Stages[2].Stage != 3 || ft.Stages[2].State != "done" || ft.DeadlineMs != 40 {
		t.Errorf("/uname after: got %+v", ft)
	}
}

// A chain that cannot fit is refused whole at arrival, 503 with
// Retry-After: none of its stages is queued or started, and a single call
// that fits is still admitted.
func TestChainRefusedWhole(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(1, 20*hms)
	r.seed(2, 5*hms)
	r.seed(3, 10*hms)
	hold := r.call("hold", 1, 0, 30*hms) // runs 20 ms of the next 30
	hold.admitted(false)
	c := r.chainCall(context.Background(), r.chainSpec("ch", 32*hms, 2, 3))
	_, err := c.wait()
	if apierr.CodeOf(err) != apierr.Unschedulable || !strings.Contains(err.Error(), "none of it ran") {
		t.Fatalf("chain: got %v, want Unschedulable", err)
	}
	var e *apierr.Error
	if ae, ok := err.(*apierr.Error); ok {
		e = ae
	}
	if e == nil || e.RetryAfter <= 0 {
		t.Errorf("Retry-After: got %+v, want > 0", e)
	}
	if r.isStarted("ch") {
		t.Error("a stage of the refused chain started")
	}
	_, cores, dc := r.s.disp.Stats()
	if cores[0].Queued != 0 || dc.Chains != 0 || dc.Admitted != 1 {
		t.Errorf("dispatcher: queued %d, chains %d, admitted %d; want 0, 0, 1", cores[0].Queued, dc.Chains, dc.Admitted)
	}
	r.s.mu.Lock()
	cnt := r.s.count
	r.s.mu.Unlock()
	if cnt.Rejected != 1 || cnt.Chains != 0 || cnt.Admitted != 1 {
		t.Errorf("counters: %+v", cnt)
	}
	tl, err := r.s.Timeline("ch")
	if err != nil || !strings.HasPrefix(tl.(Timeline).State, "refused") {
		t.Errorf("/uname: got %+v, %v, want refused", tl, err)
	}
	// Its first stage alone fits behind hold.
	one := r.call("one", 2, 0, 32*hms)
	one.admitted(false)
}

// A stage that fails ends the chain: the answer is its error, naming it
// and the stages that did not run, which never start.
func TestChainStageFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(r *honRig)
		code apierr.Code
		want string
	}{
		{"trap", func(r *honRig) { r.deliver("ch", &ipc.Result{Trap: "unreachable"}) }, apierr.Trap,
			"chain stage 2 of 4 (m.wasm f): unreachable; stages 3 to 4 did not run"},
		{"lane lost", func(r *honRig) {
			r.mu.Lock()
			j := r.jobs["ch"]
			r.mu.Unlock()
			r.s.disp.LaneDown(0, j.l.li, j.l, "worker-1:0 exited")
			r.up(j.l.li)
		}, apierr.WorkerLost, "chain stage 2 of 4 (m.wasm f): worker-1:0 exited; stages 3 to 4 did not run"},
		{"killed", func(r *honRig) {
			r.clk.Advance(time.Second)
		}, apierr.DeadlineExceeded, "chain stage 2 of 4 (m.wasm f)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHonRig(t, 1, honRestart)
			r.seed(1, 2*hms)
			c := r.chainCall(context.Background(), r.chainSpec("ch", 40*hms, 1, 1, 1, 1))
			c.admitted(false)
			r.waitStarted("ch")
			r.deliver("ch", &ipc.Result{ExecNs: hms.Nanoseconds()})
			r.waitStarted("ch")
			tc.fail(r)
			r.mu.Lock()
			delete(r.jobs, "ch") // the failed stage's
			r.mu.Unlock()
			_, err := c.wait()
			if apierr.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (code %d), want code %d with %q", err, apierr.CodeOf(err), tc.code, tc.want)
			}
			if r.isStarted("ch") {
				t.Error("a stage after the failed one started")
			}
			r.s.mu.Lock()
			cnt, inFlight := r.s.count, len(r.s.tasks)
			r.s.mu.Unlock()
			if cnt.Answered != 1 || cnt.Completed != 0 || inFlight != 0 {
				t.Errorf("counters: got %+v with %d in flight", cnt, inFlight)
			}
			if _, cores, _ := r.s.disp.Stats(); cores[0].Queued != 0 || cores[0].Running {
				t.Errorf("core left with %+v", cores[0].CoreStats)
			}
		})
	}
}

// A client that goes away cancels the stages not started; the running
// one ends in its own answer, and nothing is left.
func TestChainClientGone(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(1, 2*hms)
	ctx, cancel := context.WithCancel(context.Background())
	c := r.chainCall(ctx, r.chainSpec("ch", 40*hms, 1, 1, 1))
	c.admitted(false)
	r.waitStarted("ch")
	cancel()
	honWait(t, "stages 2 and 3 cancelled", func() bool {
		_, cores, _ := r.s.disp.Stats()
		return cores[0].Queued == 0
	})
	r.deliver("ch", &ipc.Result{ExecNs: hms.Nanoseconds()})
	_, err := c.wait()
	if err == nil || !strings.Contains(err.Error(), "chain stage 2 of 3") {
		t.Fatalf("got %v, want stage 2 cancelled", err)
	}
	if r.isStarted("ch") {
		t.Error("a stage started after the client went away")
	}
	r.s.mu.Lock()
	inFlight := len(r.s.tasks)
	r.s.mu.Unlock()
	if inFlight != 0 {
		t.Errorf("%d tasks left", inFlight)
	}
}

// A chain whose estimates alone exceed its deadline is a 422 that lists
// them; a chain without a deadline never reaches the scheduler.
func TestChainInvalid(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(1, 20*hms)
	_, err := r.s.Call(context.Background(), r.chainSpec("a", 30*hms, 1, 1))
	if apierr.CodeOf(err) != apierr.InvalidDeadline || !strings.Contains(err.Error(), "the chain's 2 stages take") || !strings.Contains(err.Error(), "(learned)") {
		t.Errorf("too long: got %v", err)
	}
	_, err = r.s.Call(context.Background(), r.chainSpec("b", 0, 1, 1))
	if apierr.CodeOf(err) != apierr.BadRequest {
		t.Errorf("no deadline: got %v", err)
	}
	before := r.bench.count()
	_, err = r.s.Call(context.Background(), r.chainSpec("u", 30*hms, 9, 1))
	if apierr.CodeOf(err) != apierr.Unschedulable || !strings.Contains(err.Error(), "chain stage 1 (m.wasm f): no measured execution time yet") {
		t.Errorf("unmeasured first stage: got %v", err)
	}
	honWait(t, "the unmeasured stage measured", func() bool { return r.bench.count() > before })
	spec := r.chainSpec("c", 30*hms, 1, 1)
	spec.Then[0].Module = "nope.wasm"
	_, err = r.s.Call(context.Background(), spec)
	if apierr.CodeOf(err) != apierr.InvalidWasmName || !strings.Contains(err.Error(), "chain stage 2 of 2 (nope.wasm f)") {
		t.Errorf("unknown module: got %v", err)
	}
}

// stdinOf returns the stdin the job last started under name was given.
func (r *honRig) stdinOf(name string) string {
	r.t.Helper()
	j := r.startedJob(name)
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return string(r.s.tasks[j.id].in.stdin)
}

// Each stage's stdout is the next stage's stdin; the first stage's is the
// call's input; the answer's output is the last stage's.
func TestChainPipes(t *testing.T) {
	r := newHonRig(t, 1, honRestart)
	r.seed(2, 2*hms)
	spec := r.chainSpec("ch", 40*hms, 2, 2, 2)
	spec.Input = []byte("in")
	first, err := r.s.resolve("m.wasm", "f", nil, []byte("[2]"), -1)
	if err != nil {
		t.Fatal(err)
	}
	first.setInput(spec.Input, nil, nil)
	r.s.mu.Lock()
	r.s.est.Seed(first.key, (2 * hms).Nanoseconds())
	r.s.mu.Unlock()
	c := r.chainCall(context.Background(), spec)
	c.admitted(false)
	for i, out := range []string{"one", "two", "three"} {
		r.waitStarted("ch")
		want := []string{"in", "one", "two"}[i]
		if got := r.stdinOf("ch"); got != want {
			t.Fatalf("stage %d stdin: got %q, want %q", i+1, got, want)
		}
		r.deliver("ch", &ipc.Result{Stdout: []byte(out), StdoutBytes: int64(len(out)), Exited: true})
	}
	res, err := c.wait()
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "three" || res.ExitCode == nil || *res.ExitCode != 0 || res.Stages[1].OutputBytes != 3 {
		t.Errorf("answer: got stdout %q exit %v stage 2 output %d", res.Stdout, res.ExitCode, res.Stages[1].OutputBytes)
	}
}

// A result that cannot be the next stage's input ends the chain there.
func TestChainUnfed(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  ipc.Result
		code apierr.Code
		want string
	}{
		{"exit", ipc.Result{Exited: true, ExitCode: 3, Stderr: []byte("bye\n")}, apierr.Trap, `exited with code 3 (stderr: "bye\n")`},
		{"cut", ipc.Result{Stdout: []byte("abc"), StdoutBytes: 9}, apierr.TooLarge, "its output of 9 bytes was cut at 3 (--max-output)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHonRig(t, 1, honRestart)
			r.seed(2, 2*hms)
			c := r.chainCall(context.Background(), r.chainSpec("ch", 40*hms, 2, 2, 2))
			c.admitted(false)
			r.waitStarted("ch")
			r.deliver("ch", &tc.res)
			_, err := c.wait()
			if apierr.CodeOf(err) != tc.code || !strings.Contains(err.Error(), "chain stage 1 of 3 (m.wasm f): "+tc.want) ||
				!strings.Contains(err.Error(), "stages 2 to 3 did not run") {
				t.Fatalf("got %v (code %d), want code %d with %q", err, apierr.CodeOf(err), tc.code, tc.want)
			}
			if r.isStarted("ch") {
				t.Error("stage 2 started")
			}
		})
	}
	if err := unfed(&ipc.Result{Stdout: make([]byte, 10), StdoutBytes: 10}, 9); apierr.CodeOf(err) != apierr.TooLarge {
		t.Errorf("output over the next stage's --max-input: got %v", err)
	}
	if err := unfed(&ipc.Result{Stdout: []byte("ok"), StdoutBytes: 2, Exited: true}, 0); err != nil {
		t.Errorf("exit 0: got %v", err)
	}
}
