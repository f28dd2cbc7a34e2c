package ipc

import "testing"

// BenchmarkJobFrame encodes and decodes one job frame, as the supervisor and
// a coreworker do for every call.
func BenchmarkJobFrame(b *testing.B) {
	var p pipe
	c := NewConn(&p, 0)
	job := &Job{ID: 1, Module: []byte("fib.wasm"), Export: []byte("fib_r"), Params: []uint64{30}}
	var j Job
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Write(KindJob, job); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			b.Fatal(err)
		}
		if err := c.Decode(&j); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultFrame is the way back.
func BenchmarkResultFrame(b *testing.B) {
	var p pipe
	c := NewConn(&p, 0)
	res := &Result{ID: 1, Results: []uint64{832040}, InstNs: 1000, ExecNs: 5000}
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		c.Write(KindResult, res)
		c.Read()
		c.Decode(&r)
	}
}

// BenchmarkJobFrameInput is a job frame carrying 64 KiB of stdin.
func BenchmarkJobFrameInput(b *testing.B) {
	var p pipe
	c := NewConn(&p, 0)
	job := &Job{ID: 1, Module: []byte("echo.wasm"), Export: []byte("_start"), Stdin: make([]byte, 64<<10)}
	var j Job
	b.SetBytes(int64(len(job.Stdin)))
	b.ReportAllocs()
	for b.Loop() {
		c.Write(KindJob, job)
		c.Read()
		c.Decode(&j)
	}
}
