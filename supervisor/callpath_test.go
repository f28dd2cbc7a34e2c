package supervisor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// BenchmarkCallPath is the supervisor's part of a deadline call without
// HTTP: resolve, estimate, admit, the job frame to a lane over a
// socketpair, the lane's answer handed back as serveChild does, the
// outcome and the bookkeeping. The lane is a goroutine that answers at
// once. Its allocations are the call path's.
//
//	go test -run XXX -bench CallPath -benchmem ./supervisor/
func BenchmarkCallPath(b *testing.B) {
	s := testSupervisor(b)
	// The first call is unmeasured and queues a calibration: benchd's
	// answer, 1 ms, stands in for it, and the calls after it are learned.
	s.calib.measure = func(context.Context, *call) (*ipc.Calibrated, error) {
		return &ipc.Calibrated{Runs: 10, MedianNs: 1e6, P99Ns: 1e6, MaxNs: 1e6, Stable: true, Clock: ipc.ClockWall}, nil
	}
	b.Cleanup(s.calib.stop)
	m := fibModule(b)
	if err := s.store.put(m); err != nil {
		b.Fatal(err)
	}
	c := s.workers[0]
	lane := fakeLaneUp(b, s, c)
	go func() {
		var j ipc.Job
		res := &ipc.Result{}
		for {
			k, err := lane.Read()
			if err != nil {
				return
			}
			if k != ipc.KindJob || lane.Decode(&j) != nil {
				continue
			}
			*res = ipc.Result{ID: j.ID, Results: []uint64{0}, StartMono: ipc.Monotonic()}
			s.disp.Result(c.core, c.lane, c.lp, j.ID, res)
			res = &ipc.Result{}
		}
	}()
	spec := httpapi.CallSpec{Module: m.Name, Export: "fib", ParamTypes: json.RawMessage(`"i32"`), Params: json.RawMessage(`["3"]`),
		ResultsLength: 1, Declared: time.Millisecond, Deadline: time.Second}
	ctx := context.Background()
	for b.Loop() {
		spec.Arrived = time.Now()
		if _, err := s.Call(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
}
