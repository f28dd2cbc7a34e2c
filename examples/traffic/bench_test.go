package traffic

import (
	"fmt"
	"testing"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

// BenchmarkStages times each stage and the fused module on one generated
// frame, on the workers' engine, instance included (a fresh one per call, as
// the daemon runs it): the work a worker does per frame, without the daemon.
// The figures are in docs/benchmarks.md.
//
//	go test -run XXX -bench Stages -benchtime 200x ./examples/traffic/
func BenchmarkStages(b *testing.B) {
	s := loadStages(b)
	for _, size := range [][2]int{{160, 120}, {320, 240}, {640, 480}} {
		cfg := framegen.DefaultConfig()
		cfg.Width, cfg.Height = size[0], size[1]
		cam, err := framegen.NewCamera(cfg, 0)
		if err != nil {
			b.Fatal(err)
		}
		in := cam.Next().PNM()
		gray := s.ok(b, "decode", in)
		blobs := s.ok(b, "detect", gray)
		counts := s.ok(b, "count", blobs)
		for _, st := range []struct {
			name string
			in   []byte
		}{{"traffic", in}, {"decode", in}, {"detect", gray}, {"count", blobs}, {"decide", counts}} {
			b.Run(fmt.Sprintf("%dx%d/%s", size[0], size[1], st.name), func(b *testing.B) {
				b.SetBytes(int64(len(st.in)))
				for b.Loop() {
					s.ok(b, st.name, st.in)
				}
			})
		}
	}
}
