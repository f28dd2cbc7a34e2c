package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

// bytesAPI says whether the daemon has the bytes-in-and-out API of DESIGN
// §5a (stdin from input_base64, stdout as output, exit codes): its flags
// name --max-input.
func bytesAPI(t *testing.T) bool {
	out, _ := exec.Command(binary, "-h").CombinedOutput()
	return strings.Contains(string(out), "-max-input")
}

// registerTraffic registers the example's stages (examples/traffic/stages)
// under their file names.
func registerTraffic(t *testing.T, d *daemon, stages ...string) {
	t.Helper()
	for _, s := range stages {
		wasm, err := os.ReadFile(filepath.Join("..", "examples", "traffic", "stages", s+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if a := d.registerBytes(s+".wasm", wasm); a.code != 200 {
			t.Fatalf("register %s.wasm: %d %s", s, a.code, a.raw)
		}
	}
}

// frameCall is a /call of module's _start with input as stdin.
func frameCall(t *testing.T, module string, input []byte, extra map[string]any) string {
	b := map[string]any{"wasm_name": module, "export_func": "_start", "expected_deadline": "2000",
		"input_base64": base64.StdEncoding.EncodeToString(input)}
	for k, v := range extra {
		b[k] = v
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// decision is the decide stage's JSON.
type decision struct {
	Phase  string   `json:"phase"`
	Lanes  []string `json:"lanes"`
	Counts []int    `json:"counts"`
	Reason string   `json:"reason"`
}

// checkDecision checks an answer's output against a frame's ground truth.
func checkDecision(t *testing.T, what string, a answer, f framegen.Frame) {
	t.Helper()
	if a.code != 200 || a.str("status") != "Success" {
		t.Fatalf("%s: got %d %.500s, want 200 Success", what, a.code, a.raw)
	}
	if ec, ok := a.body["exit_code"].(float64); ok && ec != 0 {
		t.Fatalf("%s: exit_code %v, stderr %q", what, ec, a.str("stderr"))
	}
	var d decision
	if err := json.Unmarshal([]byte(a.str("output")), &d); err != nil {
		t.Fatalf("%s: output %q is not the decision JSON: %v (answer %.500s)", what, a.str("output"), err, a.raw)
	}
	if !reflect.DeepEqual(d.Counts, f.Counts) || len(d.Lanes) != len(f.Scene.Lanes) || !strings.HasSuffix(d.Phase, "_GREEN") {
		t.Fatalf("%s: got %+v, want counts %v (the generator's truth)", what, d, f.Counts)
	}
}

// TestTrafficFused sends generated frames through the fused traffic module
// on the real daemon: each answer's counts are the generator's truth, and a
// frame the decoder refuses is an answer with exit code 1 and the decoder's
// message, after which the worker serves on.
func TestTrafficFused(t *testing.T) {
	if !bytesAPI(t) {
		t.Skip("needs the bytes-in-and-out API of DESIGN §5a (--max-input, input_base64, output, exit_code): issue #16, not merged yet")
	}
	d := start(t, t.TempDir(), "--cgroup-name", "hs-i16-traffic-it")
	registerTraffic(t, d, "traffic")
	for _, format := range []string{"pgm", "ppm"} {
		cfg := framegen.DefaultConfig()
		cfg.Format = format
		cam, err := framegen.NewCamera(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			f := cam.Next()
			checkDecision(t, format+" frame", d.post("/call", frameCall(t, "traffic.wasm", f.PNM(), nil)), f)
		}
	}
	a := d.post("/call", frameCall(t, "traffic.wasm", []byte("P5 2 2 255\n\x00"), nil))
	if ec, _ := a.body["exit_code"].(float64); ec != 1 || !strings.Contains(a.str("stderr"), "traffic: background image: truncated raster") {
		t.Errorf("a truncated frame: got %d %s, want exit_code 1 and the decoder's message on stderr", a.code, a.raw)
	}
	cam, _ := framegen.NewCamera(framegen.DefaultConfig(), 2)
	f := cam.Next()
	checkDecision(t, "the frame after a refused one", d.post("/call", frameCall(t, "traffic.wasm", f.PNM(), nil)), f)
}

// TestTrafficChain sends frames through the four stages as one deadline
// chain (decode, then detect, count, decide, each stage's stdout the next
// one's stdin): the last stage's output is the decision the fused module
// gives for the same frame, and the answer has the four stages.
func TestTrafficChain(t *testing.T) {
	if !bytesAPI(t) {
		t.Skip("needs the bytes-in-and-out API of DESIGN §5a (--max-input, input_base64, output, exit_code): issue #16, not merged yet")
	}
	d := start(t, t.TempDir(), "--cgroup-name", "hs-i16-traffic-chain")
	registerTraffic(t, d, "decode", "detect", "count", "decide", "traffic")
	then := []map[string]any{{"wasm_name": "detect.wasm", "export_func": "_start"},
		{"wasm_name": "count.wasm", "export_func": "_start"}, {"wasm_name": "decide.wasm", "export_func": "_start"}}
	cam, err := framegen.NewCamera(framegen.DefaultConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		f := cam.Next()
		body := frameCall(t, "decode.wasm", f.PNM(), map[string]any{"then": then})
		// A stage before the last without a measured estimate is a 503
		// while benchd measures it: the client retries, as Retry-After says.
		var a answer
		for try := 0; ; try++ {
			a = d.post("/call", body)
			if a.code != http.StatusServiceUnavailable || try == 50 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if _, chained := a.body["stages"]; i == 0 && a.code == 200 && !chained {
			t.Skip("the daemon ran decode alone and ignored then: deadline chains (issue #16, the chain part) are not merged yet")
		}
		checkDecision(t, fmt.Sprintf("chain, frame %d", f.Index), a, f)
		stages, _ := a.body["stages"].([]any)
		if len(stages) != 4 {
			t.Fatalf("chain, frame %d: %d stages in the answer, want 4: %.1000s", f.Index, len(stages), a.raw)
		}
		fused := d.post("/call", frameCall(t, "traffic.wasm", f.PNM(), nil))
		if fused.str("output") != a.str("output") {
			t.Errorf("frame %d: the chain answered %q, the fused module %q", f.Index, a.str("output"), fused.str("output"))
		}
	}
}
