package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

func TestFramesWorkload(t *testing.T) {
	w, err := ParseWorkload([]byte(`{"classes":[{"name":"f","module":"t.wasm","export":"_start","deadline_ms":33,
		"frames":{"width":96,"height":64},"fields":{"args":["threshold=40"]}}]}`), "/w")
	if err != nil {
		t.Fatal(err)
	}
	f := w.Classes[0].Frames
	if *f != (Frames{Width: 96, Height: 64, Format: "pgm", Seed: 1, Loop: 30}) {
		t.Errorf("frames with defaults: got %+v", *f)
	}
	for _, c := range []struct{ in, err string }{
		{`"frames":{"format":"png"}`, "format"},
		{`"frames":{"loop":100000}`, "loop"},
		{`"frames":{"width":10,"height":10}`, "size"},
		{`"frames":{"fps":30}`, "unknown field"},
		{`"fields":{"input_base64":"AA=="}`, "set by hyper-bench"},
		{`"fields":{"wasm_name":"x"}`, "set by hyper-bench"},
	} {
		_, err := ParseWorkload([]byte(`{"classes":[{"name":"f","module":"m","export":"e",`+c.in+`}]}`), "/w")
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: got error %v, want one with %q", c.in, err, c.err)
		}
	}
}

func TestFrameBodies(t *testing.T) {
	c := Class{Name: "f", Module: "t.wasm", Export: "_start", DeadlineMs: 33,
		Frames: &Frames{Width: 96, Height: 64, Format: "ppm", Seed: 7, Loop: 3},
		Fields: map[string]json.RawMessage{"args": json.RawMessage(`["min_area=20"]`)}}
	bodies, err := c.frameBodies(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 6 {
		t.Fatalf("got %d bodies, want 2 cameras × 3", len(bodies))
	}
	for k := range 2 {
		cam, _ := framegen.NewCamera(c.Frames.config(), k)
		for i := range 3 {
			var b struct {
				WasmName string   `json:"wasm_name"`
				Export   string   `json:"export_func"`
				Deadline string   `json:"expected_deadline"`
				Args     []string `json:"args"`
				Input    []byte   `json:"input_base64"`
			}
			if err := json.Unmarshal(bodies[k*3+i], &b); err != nil {
				t.Fatalf("camera %d frame %d: %v", k, i, err)
			}
			if b.WasmName != "t.wasm" || b.Export != "_start" || b.Deadline != "33" || len(b.Args) != 1 {
				t.Errorf("camera %d frame %d: got %+v", k, i, b)
			}
			if want := cam.Next().PNM(); !bytes.Equal(b.Input, want) {
				t.Errorf("camera %d frame %d: input is not the camera's frame %d", k, i, i)
			}
		}
	}
	c.Fields["then"] = json.RawMessage(`[{"wasm_name":"detect.wasm","export_func":"_start"}]`)
	if body := string(bodies[0]); strings.Contains(body, `"then"`) {
		t.Errorf("bodies made before then was added have it: %.100s", body)
	}
	if more, _ := c.frameBodies(1); !strings.Contains(string(more[0]), `"then":[{"wasm_name":"detect.wasm"`) {
		t.Errorf("a call body lacks then: %.200s", more[0])
	}
	if test := string(c.testBody()); strings.Contains(test, `"then"`) || !strings.Contains(test, `"args":["min_area=20"]`) ||
		!strings.Contains(test, `"input_base64":"`) {
		t.Errorf("testBody: want args and input but no then, got %.300s", test)
	}
	if got := string(withInput([]byte(`{}`), []byte("hi"))); got != `{"input_base64":"aGk="}` {
		t.Errorf("withInput on {}: got %s", got)
	}
}

func TestClassifyExitCode(t *testing.T) {
	v := classify(200, []byte(`{"status":"Success","deadline_met":true,"exit_code":3}`))
	if v.outcome != Failed || v.kind != "200 exit_code 3" {
		t.Errorf("exit_code 3: got %+v, want an error of kind \"200 exit_code 3\"", v)
	}
	if v := classify(200, []byte(`{"status":"Success","deadline_met":true,"exit_code":0}`)); v.outcome != OK {
		t.Errorf("exit_code 0: got %+v, want OK", v)
	}
}

// cameraDaemon answers every /call with success and keeps the inputs it
// was sent. A fake, as in run_test.go: what is checked is what hyper-bench
// sends and counts; integration/traffic_test.go sends the frames to the real
// daemon.
type cameraDaemon struct {
	mu     sync.Mutex
	inputs [][]byte
}

func (d *cameraDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c struct {
		Input []byte `json:"input_base64"`
	}
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &c)
	d.mu.Lock()
	d.inputs = append(d.inputs, c.Input)
	d.mu.Unlock()
	io.WriteString(w, `{"status":"Success","deadline_met":true,"exit_code":0,"output":"{}","timings_us":{"total":100,"exec":50}}`)
}

// TestCamerasRun runs the cameras mode against the fake: each camera sends
// one frame per period of the window, its own frames in a loop.
func TestCamerasRun(t *testing.T) {
	fake := &cameraDaemon{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	wl := filepath.Join(dir, "w.json")
	os.WriteFile(wl, []byte(`{"classes":[{"name":"fused","module":"t.wasm","export":"_start","deadline_ms":33,
		"frames":{"width":96,"height":64,"loop":4}}]}`), 0o644)
	var results []string
	for _, cams := range []int{2, 3} {
		fake.mu.Lock()
		fake.inputs = nil
		fake.mu.Unlock()
		out := filepath.Join(dir, "r"+string(rune('0'+cams))+".json")
		var stdout, stderr bytes.Buffer
		args := []string{"run", "-url", srv.URL, "-workload", wl, "-mode", "cameras", "-cameras", string(rune('0' + cams)),
			"-fps", "20", "-duration", "1s", "-out", out, "-label", "fake", "-scenario", "traffic"}
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		results = append(results, out)
		r, err := readResult(out)
		if err != nil {
			t.Fatal(err)
		}
		// Each camera's frames fall at phase + k/fps, phase in (0, 1/fps):
		// exactly fps of them in a 1 s window, however slow the machine.
		if want := int64(cams * 20); r.Total.Sent != want || r.Total.OK != want {
			t.Errorf("%d cameras at 20 fps for 1 s: got %d sent, %d ok; want %d", cams, r.Total.Sent, r.Total.OK, want)
		}
		if r.Cameras != cams || r.FPS != 20 || r.Rate != float64(cams*20) || r.Mode != "cameras" {
			t.Errorf("result header: got cameras %d fps %v rate %v mode %s", r.Cameras, r.FPS, r.Rate, r.Mode)
		}
		if !strings.Contains(stdout.String(), "cameras at 20 fps") {
			t.Errorf("summary: %s", stdout.String())
		}
		// Every input is one of the cameras' frames, each camera's seen.
		frames := map[string]int{}
		for k := range cams {
			cam, _ := framegen.NewCamera(framegen.Config{Width: 96, Height: 64, Format: "pgm", Seed: 1, Green: 90}, k)
			for range 4 {
				frames[string(cam.Next().PNM())] = k
			}
		}
		seen := map[int]int{}
		fake.mu.Lock()
		for _, in := range fake.inputs {
			k, ok := frames[string(in)]
			if !ok {
				t.Fatalf("the fake got an input of %d bytes that is no camera's frame", len(in))
			}
			seen[k]++
		}
		fake.mu.Unlock()
		for k := range cams {
			if seen[k] != 20 {
				t.Errorf("camera %d: %d frames received, want 20", k, seen[k])
			}
		}
	}
	html := filepath.Join(dir, "report.html")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"report", "-o", html}, results...), &stdout, &stderr); code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr.String())
	}
	b, _ := os.ReadFile(html)
	for _, want := range []string{"Against cameras", "Frames answered in time", "Frames in time / frames offered", "2 cameras, 40.0 frames/s in all",
		"cameras, 3 × 20 fps"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("report does not contain %q", want)
		}
	}
	for _, s := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(string(b), -1) {
		wellFormed(t, s)
	}
}

func TestCamerasPlots(t *testing.T) {
	mk := func(label string, cams int, okFrac float64) *Result {
		r := &Result{Label: label, Mode: "cameras", Cameras: cams, FPS: 30, Rate: float64(cams * 30)}
		r.Total.Sent = int64(cams * 300)
		r.Total.OK = int64(okFrac * float64(r.Total.Sent))
		r.Total.OfferedPerS = float64(cams * 30)
		r.Total.ClientGoodputPerS = okFrac * float64(cams*30)
		return r
	}
	st := styles([]string{"a", "b"})
	if p := camerasPlots([]*Result{mk("a", 1, 1), mk("b", 2, 1)}, st); p != nil {
		t.Errorf("one result per system: got %d plots, want none", len(p))
	}
	p := camerasPlots([]*Result{mk("a", 4, 0.5), mk("a", 1, 1), mk("b", 2, 1)}, st)
	if len(p) != 2 {
		t.Fatalf("got %d plots, want 2", len(p))
	}
	a := p[0].Series[0]
	if a.Name != "a" || len(a.Points) != 2 || a.Points[0] != (point{1, 30}) || a.Points[1] != (point{4, 60}) {
		t.Errorf("goodput series: got %+v", a)
	}
	if ref := p[0].Series[len(p[0].Series)-1]; ref.Name != "offered" || len(ref.Points) != 3 || ref.Points[2] != (point{4, 120}) {
		t.Errorf("offered series: got %+v", ref)
	}
	if f := p[1].Series[0].Points; f[1] != (point{4, 0.5}) {
		t.Errorf("fraction series: got %+v", f)
	}
}
