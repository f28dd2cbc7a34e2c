package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

// encodingJSON is what writeJSON writes for v.
func encodingJSON(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return buf.Bytes()
}

func ptr[T any](v T) *T { return &v }

func TestCallAnswerJSON(t *testing.T) {
	full := callAnswer{Status: "Success", Result: "[I32(832040), F64(-0.5)]",
		Results: []wasmval.Value{{Type: wasmval.I32, Bits: 832040}, {Type: wasmval.F64, Bits: math.Float64bits(-0.5)},
			{Type: wasmval.I64, Bits: 1 << 60}, {Type: wasmval.F32, Bits: uint64(math.Float32bits(float32(math.Inf(1))))}},
		TaskID: "17", TaskName: "fib \"abc\"\\\n\u2028\xff<&>", Worker: "worker-1:2", CPU: 1, Lane: 2, Preempted: true,
		DeadlineMet: ptr(false), DeadlineMs: 35, EstimateMs: 1e-7, EstimateSource: "learned",
		TimingsUs: timings{Queue: 3, Instantiate: 4, Exec: 5, Total: 12, Stopped: 1, Start: 7},
		Stdout:    ptr("out\x01"), Stderr: ptr(""),
		output: output{Output: ptr("héllo\t"), OutputBase64: ptr("AA=="), OutputTruncated: true, OutputBytes: 9,
			OutputKept: 4, StderrTruncated: true, StderrBytes: 1 << 40, ExitCode: ptr(-3)}}
	for name, a := range map[string]callAnswer{
		"no-op":          {Status: "Success", Result: "[]", Results: []wasmval.Value{}, TaskID: "1", TaskName: "task-1", Worker: "worker-1:0", CPU: 1, output: output{Output: ptr("")}},
		"nil results":    {Status: "Success"},
		"every field":    full,
		"big deadline":   {DeadlineMs: 1e21, EstimateMs: -2.5e-9, DeadlineMet: ptr(true)},
		"control chars":  {Status: "\x00\x07\b\f\r\x1f\x7f", Result: "\u2029 \xc3"},
		"negative times": {TimingsUs: timings{Queue: -1, Total: math.MinInt64}},
	} {
		got, ok := a.appendJSON(nil)
		if !ok {
			t.Errorf("%s: appendJSON declined", name)
			continue
		}
		if want := encodingJSON(t, a); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	for name, a := range map[string]callAnswer{
		"a chain":        {Stages: []stageAnswer{{Stage: 1}}},
		"invalid result": {Results: []wasmval.Value{{}}},
		"NaN":            {EstimateMs: math.NaN()},
		"infinity":       {DeadlineMs: math.Inf(-1)},
	} {
		if _, ok := a.appendJSON(nil); ok {
			t.Errorf("%s: appendJSON encoded what it leaves to encoding/json", name)
		}
	}
}

// TestWriteCallAnswer: the answer on the wire, by hand and through the
// fallback, is what writeJSON writes.
func TestWriteCallAnswer(t *testing.T) {
	for _, a := range []callAnswer{
		{Status: "Success", Result: "[]", Results: []wasmval.Value{}, TaskID: "1"},
		{Status: "Success", Stages: []stageAnswer{{Stage: 1, WasmName: "m", Results: []wasmval.Value{}}}},
	} {
		hand, want := httptest.NewRecorder(), httptest.NewRecorder()
		writeCallAnswer(hand, &a)
		writeJSON(want, 200, a)
		if hand.Code != want.Code || hand.Header().Get("Content-Type") != want.Header().Get("Content-Type") ||
			!bytes.Equal(hand.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("writeCallAnswer: %d %q %s, writeJSON: %d %q %s", hand.Code, hand.Header().Get("Content-Type"), hand.Body,
				want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}

// FuzzCallAnswerJSON: whatever the answer holds, appendJSON writes what
// encoding/json writes, or declines.
func FuzzCallAnswerJSON(f *testing.F) {
	f.Add("Success", "[I32(1)]", "task-1", "worker-1:0", "out", "learned", int64(12), int64(-3), 35.0, 1e-7, uint8(1), uint64(1), uint16(0x1ff))
	f.Add("\"\\\x00\u2028\xff", "", "", "", "\xe2\x80", "", int64(0), int64(0), 0.0, 0.0, uint8(0), uint64(0), uint16(0))
	f.Add("x", "y", "z", "w", "v", "u", int64(math.MaxInt64), int64(math.MinInt64), 1e21, -1e-300, uint8(4), uint64(1<<63), uint16(0xffff))
	f.Fuzz(func(t *testing.T, s1, s2, s3, s4, s5, s6 string, n1, n2 int64, f1, f2 float64, typ uint8, bits uint64, flags uint16) {
		on := func(bit int) bool { return flags&(1<<bit) != 0 }
		a := callAnswer{Status: s1, Result: s2, TaskID: s3, TaskName: s4, Worker: s3 + s4, CPU: int(n1), Lane: int(n2),
			Preempted: on(0), DeadlineMs: f1, EstimateMs: f2, EstimateSource: s6,
			TimingsUs: timings{Queue: n1, Instantiate: n2, Exec: n1 ^ n2, Total: n1 + n2}}
		if on(1) {
			a.Results = []wasmval.Value{{Type: wasmval.Type(typ % 6), Bits: bits}, {Type: wasmval.F64, Bits: bits}}
		}
		if on(2) {
			a.DeadlineMet = ptr(on(3))
		}
		if on(4) {
			a.TimingsUs.Stopped, a.TimingsUs.Start = n2, n1
		}
		if on(5) {
			a.Stdout, a.Stderr = &s5, &s6
		}
		if on(6) {
			a.output = output{Output: &s5, OutputTruncated: on(7), OutputBytes: n1, OutputKept: n2, StderrTruncated: on(8), StderrBytes: n2}
		}
		if on(9) {
			a.output.OutputBase64, a.output.ExitCode = &s1, ptr(int(n2))
		}
		got, ok := a.appendJSON(nil)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		err := enc.Encode(a)
		switch {
		case !ok:
			if err == nil && len(a.Stages) == 0 {
				t.Fatalf("appendJSON declined what encoding/json encodes: %s", buf.Bytes())
			}
		case err != nil:
			t.Fatalf("appendJSON encoded what encoding/json refuses (%v): %s", err, got)
		case !bytes.Equal(got, buf.Bytes()):
			t.Fatalf("\n got %s\nwant %s", got, buf.Bytes())
		}
	})
}

func BenchmarkCallAnswerJSON(b *testing.B) {
	a := callAnswer{Status: "Success", Result: "[]", Results: []wasmval.Value{}, TaskID: "123456", TaskName: "task-123456",
		Worker: "worker-1:0", CPU: 1, TimingsUs: timings{Queue: 3, Instantiate: 2, Exec: 1, Total: 20, Start: 9}, output: output{Output: ptr("")}}
	b.Run("by-hand", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = a.appendJSON(buf[:0])
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(a)
		}
	})
}
