package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/internal/syncbuf"
)

// The lab: nodes in network namespaces, each reached from the host over a
// veth pair on a /30 of 10.231.X.0/24, where X is a /24 no host address or
// route uses (chosen under a lock, so that concurrent runs do not collide).
// Everything it makes is undone by cleanup, which t.Cleanup runs, and so
// does a SIGINT or SIGTERM to the test binary; `make cluster-test` also
// deletes what a SIGKILL would leave (namespaces named by its prefix).

var (
	binary string // hyper-sched, built by TestMain
	prefix string // names of this run's namespaces and interfaces
	// tmpRoot holds the binary and every node's and proxy's files
	// (tempDir): removed at the end and on SIGINT or SIGTERM, which skip
	// t.TempDir's cleanup.
	tmpRoot string

	undoMu sync.Mutex
	undo   []func() // cleanup steps, last first
)

// atExit adds a cleanup step.
func atExit(f func()) {
	undoMu.Lock()
	defer undoMu.Unlock()
	undo = append(undo, f)
}

// cleanup runs the cleanup steps, last first; later calls do nothing.
func cleanup() {
	undoMu.Lock()
	steps := undo
	undo = nil
	undoMu.Unlock()
	for _, f := range slices.Backward(steps) {
		f()
	}
}

func TestMain(m *testing.M) {
	prefix = os.Getenv("HYPER_SCHED_CLUSTER_PREFIX")
	if prefix == "" {
		prefix = "hsc" + strconv.Itoa(os.Getpid())
	}
	if os.Getenv("HYPER_SCHED_CLUSTER") != "1" {
		os.Exit(m.Run()) // the test skips and says why
	}
	dir, err := os.MkdirTemp("", "hyper-sched-cluster")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	// Without -race even under go test -race: the nodes are measured, and
	// the race-built daemon is several times slower on its own paths; its
	// races are the integration tests' job.
	binary = filepath.Join(dir, "hyper-sched")
	build := exec.Command("go", "build", "-o", binary, "../cmd/hyper-sched")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hyper-sched:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "cluster test: %v: cleaning up\n", s)
		cleanup()
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	code := m.Run()
	cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tempDir makes a directory under tmpRoot.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(tmpRoot, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// requireLab skips unless the lab can be built here, naming what is
// missing.
func requireLab(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getenv("HYPER_SCHED_CLUSTER") != "1" {
		t.Skip("the cluster test runs with HYPER_SCHED_CLUSTER=1: make cluster-test")
	}
	if os.Geteuid() != 0 {
		t.Skip("the cluster test needs root: it creates network namespaces")
	}
	for _, tool := range append([]string{"ip", "nsenter"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the cluster test needs %s: %v (apt-get install %s)", tool, err, map[string]string{
				"ip": "iproute2", "nsenter": "util-linux", "haproxy": "haproxy", "nginx": "nginx"}[tool])
		}
	}
	ns := prefix + "probe"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add does not work here: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "delete", ns).Run()
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// subnet picks X for 10.231.X.0/24: one no host address or route is in.
// The lock file is held until the addresses are on the interfaces
// (release), so that two runs never pick the same X.
func subnet(t *testing.T) (x int, release func()) {
	t.Helper()
	lock, err := os.OpenFile("/run/lock/hyper-sched-cluster-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	release = func() { lock.Close() }
	used := map[int]bool{}
	for _, args := range [][]string{{"-4", "-o", "addr"}, {"-4", "route"}, {"-4", "route", "show", "table", "all"}} {
		out, _ := exec.Command("ip", args...).Output()
		for _, m := range regexp.MustCompile(`10\.231\.(\d+)\.`).FindAllStringSubmatch(string(out), -1) {
			n, _ := strconv.Atoi(m[1])
			used[n] = true
		}
	}
	start := os.Getpid() % 256
	for i := range 256 {
		if x := (start + i) % 256; !used[x] {
			return x, release
		}
	}
	release()
	t.Skip("every 10.231.X.0/24 is in use on this host")
	return 0, nil
}

// node is one hyper-sched in its own network namespace.
type node struct {
	name, ns, addr string // addr: host:port, reachable from the host
	dir            string
	cmd            *exec.Cmd
	log            *syncbuf.Buffer
	done           chan struct{}
	client         *http.Client
}

func (n *node) url() string { return "http://" + n.addr }

// lab makes count namespaces with a veth pair each and starts a node in
// each, ready (/healthz 200) with sleep.wasm registered, calibrated and
// run warmRuns times.
func lab(t *testing.T, count int) []*node {
	t.Helper()
	x, release := subnet(t)
	var nodes []*node
	for i := range count {
		ns, host, peer := fmt.Sprintf("%sn%d", prefix, i), fmt.Sprintf("%sh%d", prefix, i), fmt.Sprintf("%sp%d", prefix, i)
		run(t, "ip", "netns", "add", ns)
		atExit(func() { exec.Command("ip", "netns", "delete", ns).Run() }) // takes the veth pair with it
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		atExit(func() { exec.Command("ip", "link", "delete", host).Run() }) // if the namespace did not take it
		run(t, "ip", "link", "set", peer, "netns", ns)
		hostIP, nodeIP := fmt.Sprintf("10.231.%d.%d", x, 4*i+1), fmt.Sprintf("10.231.%d.%d", x, 4*i+2)
		run(t, "ip", "addr", "add", hostIP+"/30", "dev", host)
		run(t, "ip", "link", "set", host, "up")
		run(t, "ip", "-n", ns, "addr", "add", nodeIP+"/30", "dev", peer)
		run(t, "ip", "-n", ns, "link", "set", peer, "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		nodes = append(nodes, &node{name: fmt.Sprintf("node%d", i+1), ns: ns, addr: nodeIP + ":3001",
			client: &http.Client{Timeout: 30 * time.Second}})
	}
	release()
	var wg sync.WaitGroup
	for _, n := range nodes {
		n.start(t)
		wg.Add(1)
		go func() { defer wg.Done(); n.waitHealthy(t) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range nodes {
		n.registerSleep(t)
	}
	// The learned estimate is the largest of the last 64 runs
	// (sched.Estimator), the calibration among them at first: runs on the
	// worker replace it, so that it stays below the declared time.
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range warmRuns {
				r := call(n.client, n.url(), fmt.Sprintf("warm-%d", j), callMs, 0, 2*time.Second)
				if r.code != http.StatusOK {
					t.Errorf("warm-up call on %s: got %d %s %s", n.name, r.code, r.status, r.msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return nodes
}

// warmRuns is how many calls each node runs before the test: more than
// the estimator's window of 64.
const warmRuns = 70

// start runs hyper-sched in n's namespace. nsenter enters only the network
// namespace (ip netns exec would also mount a sysfs of its own over /sys,
// hiding the cgroup file systems) and execs the daemon, whose pid is the
// one started. Every node has CPU 1, the one worker CPU of the 2-vCPU
// test machine, with affinity only: three cpusets of one CPU would fence
// nothing, and the workload sleeps rather than computes (sleep.wasm), so
// nodes sharing the CPU do not slow each other; admission, which decides
// what is full, is per node as on separate machines.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.dir = tempDir(t)
	n.log = &syncbuf.Buffer{}
	args := []string{"--net=/run/netns/" + n.ns, binary, "--listen", n.addr, "--node-name", n.name,
		"--state-dir", filepath.Join(n.dir, "state"), "--cache-dir", filepath.Join(n.dir, "cache"),
		"--runtime-dir", filepath.Join(n.dir, "run"), "--cpus", "1", "--lanes", "1", "--isolation", "affinity",
		"--realtime", "off", "--cgroup-name", "hs-i17-cluster-" + n.ns, "--calibration-budget", "1s"}
	n.cmd = exec.Command("nsenter", args...)
	n.cmd.Stderr = n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	atExit(func() { n.stop() })
}

// stop ends n with SIGTERM (SIGKILL after 20 s) if it still runs.
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *node) waitHealthy(t *testing.T) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := n.client.Get(n.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.done:
			t.Errorf("%s exited during start; log:\n%s", n.name, n.log)
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Errorf("%s not healthy after 60 s (%v); log:\n%s", n.name, err, n.log)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registerSleep registers sleep.wasm on n, calibrated for sleep_ms(10):
// calls then have a measured estimate, and each node measures its own.
func (n *node) registerSleep(t *testing.T) {
	t.Helper()
	wasm, err := os.ReadFile("../testdata/sleep.wasm")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("sleep.wasm", "sleep.wasm")
	fw.Write(wasm)
	mw.WriteField("export_func", "sleep_ms")
	mw.WriteField("params", `["10"]`)
	mw.Close()
	resp, err := n.client.Post(n.url()+"/register", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatalf("register on %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register on %s: got %d %s", n.name, resp.StatusCode, raw)
	}
}

// successes is n's count of calls answered with a result
// (hyper_sched_calls_total{outcome="success"}).
func (n *node) successes(t *testing.T) int {
	t.Helper()
	resp, err := n.client.Get(n.url() + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, `hyper_sched_calls_total{outcome="success"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}

// freePort returns a TCP port below 32768 (outside Linux's ephemeral
// range) that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	for p := 20000 + os.Getpid()%10000; p < 32768; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port below 32768")
	return 0
}

// proxy is HAProxy or nginx, started with the shipped configuration.
type proxy struct {
	kind string
	url  string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer // HAProxy's log (stdout) and both's stderr
	dir  string
	done chan struct{}
}

// startHAProxy runs deploy/haproxy/haproxy.cfg with only the bind line and
// the server lines replaced.
func startHAProxy(t *testing.T, nodes []*node) *proxy {
	t.Helper()
	cfg, err := os.ReadFile("../deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var servers strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&servers, "    server %s %s\n", n.name, n.addr)
	}
	text := replaceOnce(t, string(cfg), `(?m)^    bind :8080$`, fmt.Sprintf("    bind 127.0.0.1:%d", port))
	text = replaceOnce(t, text, `(?m)(^    server .*\n)+`, servers.String())
	p := &proxy{kind: "haproxy", url: fmt.Sprintf("http://127.0.0.1:%d", port), out: &syncbuf.Buffer{}, dir: tempDir(t)}
	path := filepath.Join(p.dir, "haproxy.cfg")
	os.WriteFile(path, []byte(text), 0o644)
	p.cmd = exec.Command("haproxy", "-db", "-f", path)
	p.start(t)
	return p
}

// startNginx runs deploy/nginx/hyper-sched.conf, included in an nginx.conf
// of the test's that puts every file nginx writes in a temporary directory
// and logs each request's upstream attempts.
func startNginx(t *testing.T, nodes []*node) *proxy {
	t.Helper()
	conf, err := os.ReadFile("../deploy/nginx/hyper-sched.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var servers strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&servers, "    server %s max_fails=0;\n", n.addr)
	}
	text := replaceOnce(t, string(conf), `(?m)^    listen 8080;$`, fmt.Sprintf("    listen 127.0.0.1:%d;", port))
	text = replaceOnce(t, text, `(?m)(^    server .*\n)+`, servers.String())
	p := &proxy{kind: "nginx", url: fmt.Sprintf("http://127.0.0.1:%d", port), out: &syncbuf.Buffer{}, dir: tempDir(t)}
	os.WriteFile(filepath.Join(p.dir, "hyper-sched.conf"), []byte(text), 0o644)
	main := fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events {}
http {
    log_format upstreams '$status "$upstream_addr" "$upstream_status" $request_time';
    access_log %[1]s/access.log upstreams;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/hyper-sched.conf;
}
`, p.dir)
	path := filepath.Join(p.dir, "nginx.conf")
	os.WriteFile(path, []byte(main), 0o644)
	p.cmd = exec.Command("nginx", "-p", p.dir, "-c", path, "-g", "daemon off;")
	p.start(t)
	return p
}

func replaceOnce(t *testing.T, text, pattern, with string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if n := len(re.FindAllStringIndex(text, -1)); n != 1 {
		t.Fatalf("shipped configuration: %d matches of %s, want 1: the test templates only addresses", n, pattern)
	}
	return re.ReplaceAllLiteralString(text, with)
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.kind, err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
	stop := func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	atExit(stop)
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited during start; output:\n%s", p.kind, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering /healthz after 20 s (%v); output:\n%s", p.kind, err, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// result is one call's one answer as the client saw it.
type result struct {
	err      error // no HTTP answer at all
	code     int
	node     string // Hyper-Node
	status   string // the body's status
	msg      string // the body's error
	estimate time.Duration
	met      bool // deadline_met
	latency  time.Duration
	taskName string
}

// call sends one /call of sleep_ms(ms) declared to take decl (0: not
// declared) with an absolute deadline dl from now, named name.
func call(c *http.Client, url, name string, ms int, decl, dl time.Duration) result {
	start := time.Now()
	body := fmt.Sprintf(`{"wasm_name":"sleep.wasm","export_func":"sleep_ms","params":["%d"],"task_unique_name":%q,`+
		`"expected_execution_time":%g,"deadline_at":%d}`, ms, name, float64(decl)/1e6, start.Add(dl).UnixMilli())
	resp, err := c.Post(url+"/call", "application/json", strings.NewReader(body))
	r := result{taskName: name}
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r.latency = time.Since(start)
	r.code, r.node = resp.StatusCode, resp.Header.Get("Hyper-Node")
	var doc struct {
		Status      string  `json:"status"`
		Error       string  `json:"error"`
		DeadlineMet *bool   `json:"deadline_met"`
		EstimateMs  float64 `json:"estimate_ms"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &doc)
	}
	if err != nil {
		r.err = fmt.Errorf("answer %d %q: %w", resp.StatusCode, raw, err)
		return r
	}
	r.status, r.msg, r.met = doc.Status, doc.Error, doc.DeadlineMet != nil && *doc.DeadlineMet
	r.estimate = time.Duration(doc.EstimateMs * float64(time.Millisecond))
	return r
}

// load sends the workload's calls at rate per second for dur, open loop
// (each in its own goroutine, as independent clients would), and returns
// every answer.
func load(c *http.Client, url, tag string, rate int, dur time.Duration) []result {
	n := int(dur.Seconds() * float64(rate))
	out := make([]result, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = call(c, url, fmt.Sprintf("%s-%d", tag, i), callMs, declared, deadline)
		}()
	}
	wg.Wait()
	return out
}
