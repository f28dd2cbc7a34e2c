package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ioFlags start a daemon of this file: its own cgroup name, and small
// limits so that going over them is cheap.
func ioFlags(t *testing.T, extra ...string) []string {
	name := "hs-i16-io-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return append([]string{"--cgroup-name", name[:min(len(name), 48)], "--max-input", "65536", "--max-output", "8192"}, extra...)
}

// every256 is every byte value, 0..255, once.
func every256() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func jsonBody(t *testing.T, v map[string]any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCallIO: stdin in, stdout out through /call, for text and for every
// byte value, with argv and environment, limits and exit codes.
func TestCallIO(t *testing.T) {
	d := start(t, t.TempDir(), ioFlags(t)...)
	if a := d.register(map[string]string{"echo.wasm": "echo.wasm", "cjson.wasm": "cjson.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	call := func(v map[string]any) answer { return d.post("/call", jsonBody(t, v)) }

	t.Run("text", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input": "héllo\n"})
		if a.code != 200 || a.str("output") != "héllo\n" || a.body["exit_code"] != float64(0) {
			t.Errorf("got %d %s, want output \"héllo\\n\" and exit_code 0", a.code, a.raw)
		}
	})
	t.Run("every byte", func(t *testing.T) {
		in := every256()
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input_base64": base64.StdEncoding.EncodeToString(in)})
		out, err := base64.StdEncoding.DecodeString(a.str("output_base64"))
		if a.code != 200 || err != nil || !bytes.Equal(out, in) {
			t.Errorf("got %d %s, want output_base64 of the 256 bytes", a.code, a.raw)
		}
		if _, ok := a.body["output"]; ok {
			t.Errorf("got an output field beside output_base64: %s", a.raw)
		}
	})
	t.Run("function, not command", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "echo", "input": "x"})
		if _, ok := a.body["exit_code"]; a.code != 200 || a.str("output") != "x" || ok {
			t.Errorf("got %d %s, want output \"x\" and no exit_code", a.code, a.raw)
		}
	})
	t.Run("exit 3", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "exit3"})
		if a.code != 200 || a.str("status") != "Success" || a.body["exit_code"] != float64(3) || a.str("stderr") != "bye\n" {
			t.Errorf("got %d %s, want 200 Success, exit_code 3, stderr \"bye\\n\"", a.code, a.raw)
		}
	})
	t.Run("trap", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "trap"})
		if a.code != 500 || a.str("status") != "Error_Trap" || !strings.Contains(a.str("error"), `stderr: "oops\n"`) {
			t.Errorf("got %d %s, want 500 Error_Trap with the stderr it wrote", a.code, a.raw)
		}
		// The lane served on.
		if a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input": "ok"}); a.str("output") != "ok" {
			t.Errorf("after the trap: got %d %s", a.code, a.raw)
		}
	})
	t.Run("C with args", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "cjson.wasm", "export_func": "_start", "input": `{"a":[1,2,3]}`, "args": []string{"3"}})
		if a.code != 200 || a.str("output") != `{"bytes":13,"numbers":3,"sum":6,"args":1}`+"\n" ||
			a.body["exit_code"] != float64(3) || a.str("stderr") != "cjson: exit 3\n" {
			t.Errorf("got %d %s, want its JSON, exit_code 3 and its stderr line", a.code, a.raw)
		}
	})
	t.Run("input over --max-input", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input": strings.Repeat("x", 65537)})
		if a.code != 413 || a.str("status") != "Error_Too_large" || !strings.Contains(a.str("error"), "--max-input") {
			t.Errorf("got %d %s, want 413 Error_Too_large naming --max-input", a.code, a.raw)
		}
	})
	t.Run("output over --max-output", func(t *testing.T) {
		in := strings.Repeat("y", 10000)
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input": in})
		if a.code != 200 || a.str("output") != in[:8192] || a.body["output_truncated"] != true ||
			a.body["output_bytes"] != float64(10000) || a.body["output_kept_bytes"] != float64(8192) {
			t.Errorf("got %d, output of %d bytes, output_truncated %v, output_bytes %v, output_kept_bytes %v; want 200, 8192, true, 10000, 8192",
				a.code, len(a.str("output")), a.body["output_truncated"], a.body["output_bytes"], a.body["output_kept_bytes"])
		}
	})
	t.Run("new inputs, no estimate", func(t *testing.T) {
		// need_input with input never ran (its register calibration,
		// on no input, trapped): the first call is unverified; its run,
		// and its calibration in the background, give the shape an
		// estimate, on which a call with any other input is admitted.
		body := func(in string) map[string]any {
			return map[string]any{"wasm_name": "echo.wasm", "export_func": "need_input", "input": in, "expected_deadline": 1000}
		}
		if a := call(body("first")); a.code != 200 || a.str("estimate_source") == "learned" {
			t.Fatalf("first input: got %d %s, want 200, not learned", a.code, a.raw)
		}
		for i := 0; ; i++ {
			a := call(body("another " + strings.Repeat("x", i)))
			if a.code == 200 && a.str("estimate_source") == "learned" {
				break
			}
			if i == 300 {
				t.Fatalf("after %d calls with new inputs: got %d %s, want one admitted on the shape's learned estimate", i, a.code, a.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("both inputs", func(t *testing.T) {
		a := call(map[string]any{"wasm_name": "echo.wasm", "export_func": "_start", "input": "a", "input_base64": "YQ=="})
		if a.code != 400 {
			t.Errorf("got %d %s, want 400", a.code, a.raw)
		}
	})
}

// TestCallIOGo runs a GOOS=wasip1 command on JSON through /call, with argv
// and environment.
func TestCallIOGo(t *testing.T) {
	d := start(t, t.TempDir(), ioFlags(t)...)
	// A 3 MiB Go module: compiling it takes a race-built benchd over the
	// harness client's 30 s, hence curl with a longer bound.
	out, err := exec.Command("curl", "-sS", "--max-time", "600", "-F", "gojson.wasm=@../testdata/gojson.wasm",
		"-F", "export_func=_start", d.url+"/register").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status":"Success"`) {
		t.Fatalf("register: %v: %s", err, out)
	}
	a := d.post("/call", jsonBody(t, map[string]any{"wasm_name": "gojson.wasm", "export_func": "_start",
		"input": `{"numbers":[1,2,3.5]}`, "args": []string{"a", "b c"}, "env": map[string]string{"GREETING": "hi"}}))
	var got struct {
		Count    int
		Sum      float64
		Args     []string
		Greeting string
	}
	if err := json.Unmarshal([]byte(a.str("output")), &got); a.code != 200 || err != nil {
		t.Fatalf("got %d %s (%v)", a.code, a.raw, err)
	}
	if got.Count != 3 || got.Sum != 6.5 || strings.Join(got.Args, "|") != "a|b c" || got.Greeting != "hi" || a.body["exit_code"] != float64(0) {
		t.Errorf("got %+v exit_code %v, want count 3, sum 6.5, args [a, b c], greeting hi, exit_code 0", got, a.body["exit_code"])
	}
	a = d.post("/call", `{"wasm_name":"gojson.wasm","export_func":"_start","input":"{\"exit\":3}"}`)
	if a.code != 200 || a.body["exit_code"] != float64(3) || !strings.Contains(a.str("stderr"), "exit 3") {
		t.Errorf("exit 3: got %d %s, want exit_code 3 and its stderr", a.code, a.raw)
	}
}

// curlRun posts file to path with curl --data-binary, as a user would,
// and returns the answer's status, headers and body.
func curlRun(t *testing.T, d *daemon, path, file string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	hdr, out := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
	args := []string{"-sS", "--max-time", "30", "--data-binary", "@" + file, "-D", hdr, "-o", out}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	if b, err := exec.Command("curl", append(args, d.url+path)...).CombinedOutput(); err != nil {
		t.Fatalf("curl %s: %v: %s", path, err, b)
	}
	raw, _ := os.ReadFile(hdr)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("curl's headers %q: %v", raw, err)
	}
	body, _ := os.ReadFile(out)
	return resp.StatusCode, resp.Header, body
}

// TestRunRoute: POST /run with curl --data-binary: the file is the
// guest's stdin, the answer's body its stdout, byte for byte.
func TestRunRoute(t *testing.T) {
	d := start(t, t.TempDir(), ioFlags(t)...)
	if a := d.register(map[string]string{"echo.wasm": "echo.wasm"}, nil); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	in := bytes.Repeat(every256(), 24) // 6 KiB of every byte value, under --max-output
	file := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	code, h, body := curlRun(t, d, "/run/echo.wasm", file, "Hyper-Deadline-Ms: 5000", "Hyper-Task-Name: raw-1")
	if code != 200 || !bytes.Equal(body, in) {
		t.Fatalf("echo: got %d, %d bytes, want 200 and the %d bytes sent", code, len(body), len(in))
	}
	if h.Get("Content-Type") != "application/octet-stream" || h.Get("Hyper-Exit-Code") != "0" ||
		h.Get("Hyper-Deadline-Met") != "true" || !strings.Contains(h.Get("Server-Timing"), "exec;dur=") {
		t.Errorf("echo: got headers %v", h)
	}
	if a := d.get("/uname?uname=raw-1"); a.code != 200 {
		t.Errorf("/uname of the raw call: got %d %s", a.code, a.raw)
	}

	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	code, h, body = curlRun(t, d, "/run/echo.wasm/add?params=2,3", empty)
	if code != 200 || h.Get("Hyper-Result") != "[I32(5)]" || len(body) != 0 {
		t.Errorf("add: got %d %v %q, want 200, Hyper-Result [I32(5)], no body", code, h, body)
	}
	code, h, _ = curlRun(t, d, "/run/echo.wasm/exit3", empty)
	if code != 200 || h.Get("Hyper-Exit-Code") != "3" || h.Get("Hyper-Stderr") != "bye%0A" {
		t.Errorf("exit3: got %d %v, want 200, Hyper-Exit-Code 3, Hyper-Stderr bye%%0A", code, h)
	}

	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, make([]byte, 65537), 0o600)
	code, _, body = curlRun(t, d, "/run/echo.wasm", big)
	if code != 413 || !strings.Contains(string(body), "Error_Too_large") {
		t.Errorf("over --max-input: got %d %s, want 413 Error_Too_large", code, body)
	}
	// Over --max-output: cut, and the headers say so.
	out := filepath.Join(t.TempDir(), "out")
	os.WriteFile(out, bytes.Repeat([]byte("z"), 10000), 0o600)
	code, h, body = curlRun(t, d, "/run/echo.wasm", out)
	if code != 200 || len(body) != 8192 || h.Get("Hyper-Output-Truncated") != "true" || h.Get("Hyper-Output-Bytes") != "10000" {
		t.Errorf("over --max-output: got %d, %d bytes, %v; want 200, 8192 bytes, truncated, 10000", code, len(body), h)
	}
	code, _, body = curlRun(t, d, "/run/nope.wasm", empty)
	if code != 404 || !strings.Contains(string(body), "Error_Invalid_wasm_name") {
		t.Errorf("unknown module: got %d %s, want 404 JSON", code, body)
	}
	code, _, body = curlRun(t, d, "/run/echo.wasm/trap", empty)
	if code != 500 || !strings.Contains(string(body), "Error_Trap") {
		t.Errorf("trap: got %d %s, want 500 Error_Trap", code, body)
	}
}

// TestCalibrateWithInput: a register with a representative input (curl -F
// input=@file) measures the call on it; the same input finds that
// estimate, another input has none until /test measures it with its own.
func TestCalibrateWithInput(t *testing.T) {
	d := start(t, t.TempDir(), ioFlags(t)...)
	dir := t.TempDir()
	in := filepath.Join(dir, "request.json")
	os.WriteFile(in, []byte(`{"a":[1,2,3]}`), 0o600)
	out, err := exec.Command("curl", "-sS", "--max-time", "60", "-F", "cjson.wasm=@../testdata/cjson.wasm", "-F", "input=@"+in,
		"-F", "export_func=_start", "-F", "args=0", d.url+"/register").CombinedOutput()
	if err != nil {
		t.Fatalf("curl register: %v: %s", err, out)
	}
	var reg struct {
		Status       string
		Calibrations []struct {
			Export string
			Input  string `json:"input_digest"`
			Error  string
			Runs   int
		}
	}
	if err := json.Unmarshal(out, &reg); err != nil || reg.Status != "Success" || len(reg.Calibrations) != 1 {
		t.Fatalf("register: %s (%v)", out, err)
	}
	if c := reg.Calibrations[0]; c.Export != "_start" || c.Input == "" || c.Error != "" || c.Runs == 0 {
		t.Fatalf("calibration: got %+v, want _start measured on the input, with its digest", c)
	}
	call := func(input string, args []string) answer {
		return d.post("/call", jsonBody(t, map[string]any{"wasm_name": "cjson.wasm", "export_func": "_start",
			"input": input, "args": args, "expected_deadline": 5000}))
	}
	if a := call(`{"a":[1,2,3]}`, []string{"0"}); a.code != 200 || a.str("estimate_source") != "learned" {
		t.Errorf("the calibrated input: got %d %s, want estimate_source learned", a.code, a.raw)
	}
	// Another input has no estimate of its own: the representative one's
	// stands for it (a camera's frames never repeat).
	other := `{"b":[4,5,6,7]}`
	if a := call(other, []string{"0"}); a.code != 200 || a.str("estimate_source") != "learned" {
		t.Errorf("another input: got %d %s, want the representative input's learned estimate", a.code, a.raw)
	}
	a := d.post("/test", jsonBody(t, map[string]any{"wasm_name": "cjson.wasm", "export_func": "_start",
		"input_base64": base64.StdEncoding.EncodeToString([]byte(`{"c":[9]}`)), "args": []string{"0"}}))
	if a.code != 200 || a.str("result") == "" {
		t.Fatalf("/test with input: got %d %s", a.code, a.raw)
	}
	if a := call(`{"c":[9]}`, []string{"0"}); a.code != 200 || a.str("estimate_source") != "learned" {
		t.Errorf("after /test with that input: got %d %s, want estimate_source learned", a.code, a.raw)
	}
	// The same bytes again with another input: unchanged, and measured on
	// that input.
	os.WriteFile(in, []byte(`{"d":[1]}`), 0o600)
	out, err = exec.Command("curl", "-sS", "--max-time", "60", "-F", "cjson.wasm=@../testdata/cjson.wasm", "-F", "input=@"+in,
		"-F", "export_func=_start", d.url+"/register").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"unchanged":true`) {
		t.Fatalf("register again: %v: %s", err, out)
	}
	if a := call(`{"d":[1]}`, nil); a.code != 200 || a.str("estimate_source") != "learned" {
		t.Errorf("after a register of unchanged bytes with that input: got %d %s, want estimate_source learned", a.code, a.raw)
	}
}

// BenchmarkCallIO measures a call's input and output cost end to end, one
// client over a keep-alive connection: echo.wasm's noop through /call, and
// 1 MiB through stdin and back out of stdout — as /call's input_base64 and
// output_base64, and as /run's body both ways. The difference per MiB is
// what moving the bytes costs: HTTP, JSON and base64, two IPC frames, the
// guest's reads and writes.
//
//	go test -run XXX -bench CallIO -benchtime 200x ./integration/
func BenchmarkCallIO(b *testing.B) {
	mib := make([]byte, 1<<20)
	for i := range mib {
		mib[i] = byte(i * 7)
	}
	b64 := base64.StdEncoding.EncodeToString(mib)
	d := start(b, b.TempDir(), "--cgroup-name", "hs-i16-io-bench")
	if a := d.register(map[string]string{"echo.wasm": "echo.wasm"}, map[string]string{"export_func": "noop"}); a.code != 200 {
		b.Fatalf("register: %d %s", a.code, a.raw)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for _, bc := range []struct {
		name, path, ctype, body string
		out                     int // bytes the answer must hold at least
	}{
		{"noop-call", "/call", "application/json", `{"wasm_name":"echo.wasm","export_func":"noop"}`, 0},
		{"noop-run", "/run/echo.wasm/noop", "application/octet-stream", "", 0},
		{"echo-1MiB-call-base64", "/call", "application/json",
			`{"wasm_name":"echo.wasm","export_func":"_start","input_base64":"` + b64 + `"}`, len(b64)},
		{"echo-1MiB-run", "/run/echo.wasm", "application/octet-stream", string(mib), len(mib)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			call := func() time.Duration {
				t0 := time.Now()
				resp, err := c.Post(d.url+bc.path, bc.ctype, strings.NewReader(bc.body))
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n < int64(bc.out) {
					b.Fatalf("%s: got %d, %d bytes", bc.path, resp.StatusCode, n)
				}
				return time.Since(t0)
			}
			reportLatency(b, 20, call)
		})
	}
}
