package nodebaseline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// startNode runs server.js on a free port with fib.wasm alone and returns
// its base URL.
func startNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Node.js baseline cannot run")
	}
	wasm, err := os.ReadFile("../../testdata/fib.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fib.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.js", "--listen", "127.0.0.1:0", "--modules", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`serving on (\S+),`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatal("server.js did not report its address within 20s")
	}
	return ""
}

func TestNodeBaseline(t *testing.T) {
	url := startNode(t)
	tests := []struct {
		name, body string
		code       int
		status     string
		result     string
		met        string
	}{
		{"seed client", `{"wasm_name":"fib.wasm","task_unique_name":"anon","export_func":"fib_r","param_type":"i32","params":["20"],"results_length":"1","expected_deadline":"10000"}`,
			200, "Success", "[I32(6765)]", "true"},
		{"numbers", `{"wasm_name":"fib.wasm","export_func":"add","params":[2,40],"expected_deadline":10000}`, 200, "Success", "[I32(42)]", "true"},
		{"i64", `{"wasm_name":"fib.wasm","export_func":"add64","params":["-5","7"]}`, 200, "Success", "[I64(2)]", "absent"},
		{"f32 as bits", `{"wasm_name":"fib.wasm","export_func":"mulf","params":["1.5","1"]}`, 200, "Success", "[F32(1069547520)]", "absent"},
		{"best effort", `{"wasm_name":"fib.wasm","export_func":"noop","params":[]}`, 200, "Success", "[]", "absent"},
		{"missed", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["25"],"expected_deadline":"0.000001"}`, 200, "Success", "[I32(75025)]", "false"},
		{"no module", `{"wasm_name":"x.wasm","export_func":"fib_r","params":["1"]}`, 404, "Error_Invalid_wasm_name", "", "absent"},
		{"no export", `{"wasm_name":"fib.wasm","export_func":"nope","params":["1"]}`, 404, "Error_Invalid_export_func", "", "absent"},
		{"bad param", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["x"]}`, 400, "Error_Invalid_params", "", "absent"},
		{"not JSON", `{`, 400, "Error_Bad_request", "", "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(url+"/call", "application/json", bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a struct {
				Status      string `json:"status"`
				Result      string `json:"result"`
				DeadlineMet *bool  `json:"deadline_met"`
			}
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatalf("answer %s is not JSON: %v", b, err)
			}
			met := "absent"
			if a.DeadlineMet != nil {
				met = map[bool]string{true: "true", false: "false"}[*a.DeadlineMet]
			}
			if resp.StatusCode != tt.code || a.Status != tt.status || a.Result != tt.result || met != tt.met {
				t.Errorf("got %d %s %q met %s, want %d %s %q met %s", resp.StatusCode, a.Status, a.Result, met, tt.code, tt.status, tt.result, tt.met)
			}
		})
	}
}
