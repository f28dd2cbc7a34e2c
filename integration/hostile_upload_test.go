package integration

// Issue 14, hostile tenants: uploads are spooled to disk and bounded, not
// held in memory; /metrics keeps a bounded number of series and forgets a
// deleted module; GET /init registers a server-local file only under
// --init-dir.
//
//	go test -race -count=1 -run 'TestUpload|TestMetricsBounded|TestInit' ./integration/

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stalledForm is a register whose body stops after its first bytes:
// a part header and some of the file, then nothing until stop. It stands
// for a client that uploads slowly, or a large form still on its way.
type stalledForm struct {
	pw     *io.PipeWriter
	answer chan stalledAnswer
	cancel context.CancelFunc
}

type stalledAnswer struct {
	code  int
	raw   string
	retry string // Retry-After
	err   error
}

// stall starts a register whose body is head, declared to be length
// bytes long (0: no Content-Length, a chunked body), and then nothing.
func (d *daemon) stall(head []byte, length int64) *stalledForm {
	d.t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/register", pr)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if length > 0 {
		req.ContentLength = length
	}
	s := &stalledForm{pw: pw, answer: make(chan stalledAnswer, 1), cancel: cancel}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.answer <- stalledAnswer{err: err}
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.answer <- stalledAnswer{code: resp.StatusCode, raw: string(raw), retry: resp.Header.Get("Retry-After")}
	}()
	go pw.Write(head)
	return s
}

// filePart is a form part of a module file: name and size bytes; whole
// when closed, else only its header and data.
func filePart(name string, size int, closed bool) []byte {
	b := []byte("--b\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + name + "\"\r\n\r\n")
	b = append(b, bytes.Repeat([]byte{'x'}, size)...)
	if closed {
		b = append(b, "\r\n"...)
	}
	return b
}

// wait returns the answer, failing the test if none comes within a
// minute: the server waited for bytes that never come.
func (s *stalledForm) wait(t *testing.T, what string) stalledAnswer {
	t.Helper()
	select {
	case a := <-s.answer:
		return a
	case <-time.After(time.Minute):
		s.stop()
		t.Fatalf("%s: no answer while the body was stalled: the server waits for the rest of the form", what)
		return stalledAnswer{}
	}
}

// stop abandons the upload, as a client that goes away.
func (s *stalledForm) stop() {
	s.pw.CloseWithError(io.ErrUnexpectedEOF)
	s.cancel()
}

// spoolFiles lists the files in the daemon's upload spool.
func (d *daemon) spoolFiles() map[string]int64 {
	out := map[string]int64{}
	ents, _ := os.ReadDir(filepath.Join(d.dir, "state", "uploads"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// TestUploadSpooled: a module file is written to the spool as it arrives,
// not gathered in memory; its name is checked before its bytes are read;
// uploads in flight are bounded, and the spool is empty once they end.
func TestUploadSpooled(t *testing.T) {
	dir := t.TempDir()
	// --max-upload 1 MiB: the upload budget is one full form,
	// 16 × (1 MiB + 64 KiB) = 17 MiB.
	d := start(t, dir, "--max-upload", "1048576")

	// A name that can never be registered is refused before its bytes
	// are read: the answer comes while the body is stalled.
	bad := d.stall(filePart("dir/x.wasm", 64<<10, false), 0)
	if a := bad.wait(t, "invalid name"); a.err != nil || a.code != 400 || !strings.Contains(a.raw, "path separator") {
		t.Errorf("invalid name, stalled body: got %d %s %v, want 400 naming the path separator", a.code, a.raw, a.err)
	}
	bad.stop()

	// A stalled upload's bytes are on disk, in the spool: 14 modules of
	// 1 MiB and half of a 15th.
	var head []byte
	for i := range 14 {
		head = append(head, filePart(fmt.Sprintf("m%d.wasm", i), 1<<20, true)...)
	}
	slow := d.stall(append(head, filePart("m14.wasm", 512<<10, false)...), 16<<20)
	deadline := time.Now().Add(time.Minute)
	for {
		var total int64
		for _, n := range d.spoolFiles() {
			total += n
		}
		if total >= 14<<20+512<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled upload's 14.5 MiB are not in %s: got %v", filepath.Join(dir, "state", "uploads"), d.spoolFiles())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It holds what it sent, 14.5 to 15.5 MiB of the 17 MiB budget: a
	// small form still fits, a 3 MiB one must wait: 503 with Retry-After.
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, nil); a.code != 200 {
		t.Errorf("small register beside the stalled one: got %d %s, want 200", a.code, a.raw)
	}
	big := d.stall(filePart("big.wasm", 0, false), 3<<20)
	if a := big.wait(t, "over the budget"); a.err != nil || a.code != 503 || a.retry == "" || !strings.Contains(a.raw, "in flight") {
		t.Errorf("register over the upload budget: got %d %q Retry-After %q %v, want 503 with Retry-After saying why", a.code, a.raw, a.retry, a.err)
	}
	big.stop()
	// A form larger than any form may be is refused at once.
	huge := d.stall(filePart("huge.wasm", 0, false), 100<<20)
	if a := huge.wait(t, "over the form cap"); a.err != nil || a.code != 413 {
		t.Errorf("register of 100 MiB: got %d %s %v, want 413", a.code, a.raw, a.err)
	}
	huge.stop()

	// The client goes away: its bytes leave the spool, its budget is
	// given back, and a full-size form goes through.
	slow.stop()
	slow.wait(t, "abandoned")
	deadline = time.Now().Add(time.Minute)
	for len(d.spoolFiles()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool not empty after every upload ended: %v", d.spoolFiles())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := d.registerBytes("pad.wasm", padded(versionWasm(1), 1000<<10)); a.code != 200 {
		t.Errorf("1000 KiB register after the others ended: got %d %s, want 200", a.code, a.raw)
	}
	if got := d.spoolFiles(); len(got) > 0 {
		t.Errorf("spool after the last register: got %v, want empty", got)
	}
	// The module's bytes are on disk, whole.
	if b, err := os.ReadFile(filepath.Join(dir, "state", "modules", "pad.wasm", "module.wasm")); err != nil || len(b) < 1000<<10 {
		t.Errorf("pad.wasm on disk: %d bytes, %v", len(b), err)
	}
	if a := d.post("/call", `{"wasm_name":"pad.wasm","export_func":"v","params":["0"]}`); a.str("result") != "[I32(1)]" {
		t.Errorf("call pad.wasm: got %d %s, want [I32(1)]", a.code, a.raw)
	}
}

// TestUploadFormParts: a form is bounded in its parts, not only in its
// files: a flood of small fields is refused.
func TestUploadFormParts(t *testing.T) {
	d := start(t, t.TempDir())
	var b strings.Builder
	b.WriteString("--b\r\nContent-Disposition: form-data; name=\"fib.wasm\"; filename=\"fib.wasm\"\r\n\r\n")
	fib, err := os.ReadFile(filepath.Join("..", "testdata", "fib.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	b.Write(fib)
	for range 1000 {
		b.WriteString("\r\n--b\r\nContent-Disposition: form-data; name=\"replace\"\r\n\r\ntrue")
	}
	b.WriteString("\r\n--b--\r\n")
	req, _ := http.NewRequest(http.MethodPost, d.url+"/register", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if a := d.do(req); a.code != 413 || !strings.Contains(a.str("error"), "parts") {
		t.Errorf("form of 1,001 parts: got %d %s, want 413 naming the bound on parts", a.code, a.raw)
	}
}

// TestUploadLoadWithoutDescriptors: a lane respawned while idle
// connections hold every descriptor the daemon may open loads the
// registered modules all the same, though each load now reads its file:
// the descriptors kept for starting children cover it.
func TestUploadLoadWithoutDescriptors(t *testing.T) {
	d := start(t, t.TempDir(), "--cpus", "1", "--lanes", "2")
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, map[string]string{"export_func": "noop"}); a.code != 200 {
		t.Fatalf("register: %d %s", a.code, a.raw)
	}
	pid := d.cmd.Process.Pid
	release := exhaustDescriptors(t, d)
	defer release()
	const title = "hyper-sched: worker-1 lane 0"
	old := lanePidsOf(t, pid)[title]
	syscall.Kill(old, syscall.SIGKILL)
	var back int
	for start := time.Now(); time.Since(start) < 30*time.Second && back == 0; time.Sleep(20 * time.Millisecond) {
		if p := lanePidsOf(t, pid)[title]; p != 0 && p != old {
			back = p
		}
	}
	if back == 0 {
		t.Fatalf("lane 0 was not respawned while descriptors were exhausted; log:\n%s", d.logs())
	}
	// Up means fib.wasm loaded: a lane joins only with every module.
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(d.logs(), fmt.Sprintf("running proc=worker-1:0 cpu=1 pid=%d", back)) {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the respawned lane 0 (pid %d) did not load fib.wasm while descriptors were exhausted; log:\n%s", back, d.logs())
		}
	}
}

// padded returns wasm with a custom section of n bytes appended: a module
// as large as n, that behaves as wasm does.
func padded(wasm []byte, n int) []byte {
	body := append(uleb(3), "pad"...)
	body = append(body, bytes.Repeat([]byte{'p'}, n)...)
	out := append(append([]byte(nil), wasm...), 0)
	return append(append(out, uleb(len(body))...), body...)
}

func uleb(v int) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// manyExports is a module exporting n functions e0 … e<n-1>, each () -> i32
// returning its index.
func manyExports(n int) []byte {
	var types, funcs, exports, code []byte
	types = append(uleb(1), 0x60, 0x00, 0x01, 0x7f)
	funcs = uleb(n)
	exports = uleb(n)
	code = uleb(n)
	for i := range n {
		funcs = append(funcs, 0x00)
		name := fmt.Sprintf("e%d", i)
		exports = append(append(append(exports, uleb(len(name))...), name...), 0x00)
		exports = append(exports, uleb(i)...)
		body := append(append([]byte{0x00, 0x41}, sleb128(int64(i))...), 0x0b)
		code = append(append(code, uleb(len(body))...), body...)
	}
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	for _, s := range []struct {
		id   byte
		body []byte
	}{{1, types}, {3, funcs}, {7, exports}, {10, code}} {
		b = append(append(append(b, s.id), uleb(len(s.body))...), s.body...)
	}
	return b
}

// metricsPage returns GET /metrics.
func (d *daemon) metricsPage() string {
	d.t.Helper()
	resp, err := client.Get(d.url + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// seriesOf returns the export label of every latency series of module.
func seriesOf(page, module string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "hyper_sched_call_latency_seconds_count{")
		if !ok || !strings.Contains(rest, `module="`+module+`"`) {
			continue
		}
		export, _, _ := strings.Cut(strings.TrimPrefix(rest, `export="`), `"`)
		out[export] = line[strings.LastIndexByte(line, ' ')+1:]
	}
	return out
}

// TestMetricsBounded: a module's exports get series of their own up to a
// bound, the others one series together (export="_other"); a deleted
// module's series are gone.
func TestMetricsBounded(t *testing.T) {
	d := start(t, t.TempDir())
	const n = 40
	wasm := manyExports(n)
	var buf bytes.Buffer
	buf.WriteString("--b\r\nContent-Disposition: form-data; name=\"many.wasm\"; filename=\"many.wasm\"\r\n\r\n")
	buf.Write(wasm)
	// One calibration, not 16: this test is about the series.
	buf.WriteString("\r\n--b\r\nContent-Disposition: form-data; name=\"export_func\"\r\n\r\ne0\r\n--b--\r\n")
	req, _ := http.NewRequest(http.MethodPost, d.url+"/register", &buf)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if a := d.do(req); a.code != 200 {
		t.Fatalf("register many.wasm: %d %s", a.code, a.raw)
	}
	if a := d.register(map[string]string{"fib.wasm": "fib.wasm"}, map[string]string{"export_func": "fib_r", "params": "1"}); a.code != 200 {
		t.Fatalf("register fib.wasm: %d %s", a.code, a.raw)
	}
	for i := range n {
		if a := d.post("/call", fmt.Sprintf(`{"wasm_name":"many.wasm","export_func":"e%d"}`, i)); a.str("result") != fmt.Sprintf("[I32(%d)]", i) {
			t.Fatalf("call e%d: got %d %s", i, a.code, a.raw)
		}
	}
	d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["5"]}`)
	page := d.metricsPage()
	got := seriesOf(page, "many.wasm")
	if len(got) > 17 || got["_other"] == "" {
		t.Errorf("many.wasm has %d latency series (%v), want at most 16 exports and _other", len(got), got)
	}
	calls := 0
	for _, v := range got {
		var k int
		fmt.Sscan(v, &k)
		calls += k
	}
	if calls != n {
		t.Errorf("many.wasm's series count %d calls, want %d: none is lost", calls, n)
	}
	if a := d.delete("/modules/many.wasm"); a.code != 200 {
		t.Fatalf("delete: %d %s", a.code, a.raw)
	}
	page = d.metricsPage()
	if strings.Contains(page, `module="many.wasm"`) {
		t.Errorf("after DELETE, /metrics still has series of many.wasm: %v", seriesOf(page, "many.wasm"))
	}
	if got := seriesOf(page, "fib.wasm"); got["fib_r"] != "1" {
		t.Errorf("fib.wasm's series after many.wasm's delete: got %v, want fib_r 1", got)
	}
}

func (d *daemon) delete(path string) answer {
	req, _ := http.NewRequest(http.MethodDelete, d.url+path, nil)
	return d.do(req)
}

// initCurl runs the prototype's client request for GET /init as a curl
// line: a GET with a JSON body.
func initCurl(t *testing.T, url, body string, header ...string) (code int, out string) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed: the prototype's /init line is run with it")
	}
	args := []string{"-s", "-w", "\n%{http_code}", "-X", "GET", "-H", "Content-Type: application/json", "-d", body}
	for _, h := range header {
		args = append(args, "-H", h)
	}
	b, err := exec.Command(curl, append(args, url+"/init")...).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, '\n')
	fmt.Sscan(s[i+1:], &code)
	return code, s[:i]
}

// TestInit: the prototype's GET /init registers a server-local file, only
// one under --init-dir; off by default, with an error that says how to
// turn it on; paths leaving the directory are refused.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	initDir := filepath.Join(dir, "init")
	outside := filepath.Join(dir, "outside")
	for _, p := range []string{initDir, outside, filepath.Join(initDir, "sub")} {
		os.MkdirAll(p, 0o750)
	}
	fib, err := os.ReadFile(filepath.Join("..", "testdata", "fib.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(initDir, "fib.wasm"), fib, 0o644)
	os.WriteFile(filepath.Join(initDir, "sub", "counter.wasm"), mustRead(t, "counter.wasm"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret.wasm"), fib, 0o644)
	os.Symlink(filepath.Join(outside, "secret.wasm"), filepath.Join(initDir, "out.wasm"))
	os.Symlink(filepath.Join(initDir, "fib.wasm"), filepath.Join(initDir, "in.wasm"))
	os.Symlink(outside, filepath.Join(initDir, "outdir"))

	// Off by default.
	off := start(t, filepath.Join(dir, "off"))
	code, out := initCurl(t, off.url, `{"path":"`+filepath.Join(initDir, "fib.wasm")+`","wasm_name":"fib.wasm","is_infer":false}`)
	if code != 404 || !strings.Contains(out, "--init-dir") {
		t.Errorf("/init without --init-dir: got %d %s, want 404 saying --init-dir", code, out)
	}
	off.stop()

	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	d := start(t, filepath.Join(dir, "on"), "--init-dir", initDir, "--token-file", tokenFile)
	auth := "Authorization: Bearer s3cret"
	// The prototype's request, byte for byte but the path.
	seed := `{"path":"` + filepath.Join(initDir, "fib.wasm") + `","wasm_name":"fib.wasm","is_infer":false}`
	if code, out := initCurl(t, d.url, seed); code != 401 {
		t.Errorf("/init without the token: got %d %s, want 401", code, out)
	}
	code, out = initCurl(t, d.url, seed, auth)
	if code != 200 || !strings.Contains(out, `"status":"Success"`) || !strings.Contains(out, `"url":"`+d.url+`/call"`) {
		t.Fatalf("/init: got %d %s, want 200 Success with the call url", code, out)
	}
	if a := d.post("/call", `{"wasm_name":"fib.wasm","export_func":"fib_r","params":["10"]}`); a.str("result") != "[I32(55)]" {
		t.Errorf("call the module /init registered: got %d %s", a.code, a.raw)
	}
	// Again: the same bytes, idempotent; other bytes under the name: the
	// seed's Error_Invalid_wasm_name.
	if code, out := initCurl(t, d.url, seed, auth); code != 200 || !strings.Contains(out, `"unchanged":true`) {
		t.Errorf("/init again: got %d %s, want 200 unchanged", code, out)
	}
	if code, out := initCurl(t, d.url, `{"path":"`+filepath.Join(initDir, "sub", "counter.wasm")+`","wasm_name":"fib.wasm","is_infer":false}`, auth); code != 409 || !strings.Contains(out, "Error_Invalid_wasm_name") {
		t.Errorf("/init other bytes under a taken name: got %d %s, want 409 Error_Invalid_wasm_name", code, out)
	}
	// A relative path is under the directory; a symlink that stays in it
	// is followed.
	for _, c := range []struct{ path, name string }{{"sub/counter.wasm", "counter.wasm"}, {filepath.Join(initDir, "in.wasm"), "in.wasm"}} {
		if code, out := initCurl(t, d.url, `{"path":"`+c.path+`","wasm_name":"`+c.name+`"}`, auth); code != 200 {
			t.Errorf("/init %s: got %d %s, want 200", c.path, code, out)
		}
	}
	for _, c := range []struct{ why, path string }{
		{"outside", filepath.Join(outside, "secret.wasm")},
		{"dot-dot", initDir + "/../outside/secret.wasm"},
		{"dot-dot back in", initDir + "/sub/../fib.wasm"},
		{"symlink out", filepath.Join(initDir, "out.wasm")},
		{"through a symlinked dir", filepath.Join(initDir, "outdir", "secret.wasm")},
		{"relative dot-dot", "../outside/secret.wasm"},
		{"the dir itself", initDir},
		{"missing", filepath.Join(initDir, "nope.wasm")},
		{"device", "/dev/zero"},
	} {
		code, out := initCurl(t, d.url, `{"path":"`+c.path+`","wasm_name":"x.wasm","is_infer":false}`, auth)
		if code != 400 || !strings.Contains(out, "Error_Bad_request") {
			t.Errorf("/init %s (%s): got %d %s, want 400", c.why, c.path, code, out)
		}
	}
	if a := d.get("/modules/x.wasm"); a.code != 404 {
		t.Errorf("a refused /init registered x.wasm: %d %s", a.code, a.raw)
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
