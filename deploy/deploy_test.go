package deploy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docs parses every YAML document of a file as generic maps.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// at walks v along keys (strings for maps, ints for lists); nil when a
// step is missing.
func at(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case nil:
		return ""
	}
	return "?"
}

// manifests reads the resources kustomization.yaml lists, by kind.
func manifests(t *testing.T) map[string][]map[string]any {
	t.Helper()
	k := docs(t, "kubernetes/kustomization.yaml")
	if len(k) != 1 || str(at(k[0], "kind")) != "Kustomization" {
		t.Fatalf("kustomization.yaml: got %v, want one Kustomization", k)
	}
	byKind := map[string][]map[string]any{}
	listed := map[string]bool{}
	for _, r := range at(k[0], "resources").([]any) {
		listed[str(r)] = true
		for _, d := range docs(t, filepath.Join("kubernetes", str(r))) {
			kind := str(at(d, "kind"))
			if str(at(d, "apiVersion")) == "" || kind == "" || str(at(d, "metadata", "name")) == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name: %v", r, d)
			}
			if kind != "Namespace" && str(at(d, "metadata", "namespace")) != "hyper-sched" {
				t.Errorf("%s: %s %s is not in namespace hyper-sched", r, kind, str(at(d, "metadata", "name")))
			}
			byKind[kind] = append(byKind[kind], d)
		}
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
			t.Errorf("%s is not in kustomization.yaml", b)
		}
	}
	return byKind
}

// daemonFlags returns the flags `hyper-sched -h` lists.
func daemonFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hyper-sched")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/hyper-sched").CombinedOutput(); err != nil {
		t.Fatalf("build hyper-sched: %v: %s", err, out)
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["listen"] {
		t.Fatalf("hyper-sched -h lists no --listen: %s", out)
	}
	return flags
}

// TestKubernetes checks the manifests for what docs/cluster.md promises,
// since no cluster runs here: Guaranteed QoS with whole CPUs (exclusive
// cores from the static CPU manager), probes on /healthz, a grace period
// that covers the preStop pause and the daemon's own stop, the module
// volume at --module-dir, the scrape annotations, no privileges, flags the
// daemon has, and Services that select the pods.
func TestKubernetes(t *testing.T) {
	byKind := manifests(t)
	if len(byKind["DaemonSet"]) != 1 {
		t.Fatalf("got %d DaemonSets, want 1", len(byKind["DaemonSet"]))
	}
	ds := byKind["DaemonSet"][0]
	labels, _ := at(ds, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range at(ds, "spec", "selector", "matchLabels").(map[string]any) {
		if labels[k] != v {
			t.Errorf("DaemonSet selector %s=%v does not match the pod template's labels %v", k, v, labels)
		}
	}
	pod := at(ds, "spec", "template", "spec")
	if at(pod, "initContainers") != nil {
		t.Errorf("init containers: each would have to be Guaranteed too")
	}
	containers := at(pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(containers))
	}
	c := containers[0]

	// Guaranteed: requests == limits for cpu and memory; integer CPUs.
	for _, res := range []string{"cpu", "memory"} {
		req, lim := str(at(c, "resources", "requests", res)), str(at(c, "resources", "limits", res))
		if req == "" || req != lim {
			t.Errorf("resources %s: requests %q, limits %q; Guaranteed QoS needs both, equal", res, req, lim)
		}
	}
	cpu := str(at(c, "resources", "requests", "cpu"))
	n, err := wholeCPUs(cpu)
	if err != nil {
		t.Errorf("cpu %q: %v: the static CPU manager gives exclusive CPUs only for whole ones", cpu, err)
	} else if n < 2 {
		t.Errorf("cpu %q: want at least 2, one housekeeping and one worker", cpu)
	}

	ports := map[string]int{}
	for _, p := range at(c, "ports").([]any) {
		ports[str(at(p, "name"))] = at(p, "containerPort").(int)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		if path, port := str(at(c, probe, "httpGet", "path")), str(at(c, probe, "httpGet", "port")); path != "/healthz" || ports[port] == 0 {
			t.Errorf("%s: GET %s on port %q, want /healthz on a named container port", probe, path, port)
		}
	}

	// Graceful stop: the preStop pause, then at most --best-effort-cap
	// (1 s) + 30 s until the daemon exits by itself (cmd/hyper-sched).
	grace, _ := at(pod, "terminationGracePeriodSeconds").(int)
	pause, _ := at(c, "lifecycle", "preStop", "sleep", "seconds").(int)
	if pause == 0 {
		t.Errorf("no preStop sleep: proxies would still send calls after SIGTERM makes the pod refuse them")
	}
	if grace < pause+31 {
		t.Errorf("terminationGracePeriodSeconds %d < preStop %d s + 31 s: the kubelet would SIGKILL calls being answered", grace, pause)
	}

	// Flags and environment the daemon has.
	flags := daemonFlags(t)
	args := map[string]string{}
	for _, a := range at(c, "args").([]any) {
		name, val, _ := strings.Cut(strings.TrimPrefix(str(a), "--"), "=")
		if !flags[name] {
			t.Errorf("arg %s: hyper-sched has no such flag", a)
		}
		args[name] = val
	}
	for _, e := range at(c, "env").([]any) {
		name := str(at(e, "name"))
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "HYPER_SCHED_")), "_", "-")
		if name != "HYPER_SCHED_TOKEN" && !flags[flag] {
			t.Errorf("env %s: hyper-sched has no flag --%s", name, flag)
		}
	}
	if _, port, _ := strings.Cut(args["listen"], ":"); strconv.Itoa(ports["http"]) != port {
		t.Errorf("--listen %s does not serve the container port %d", args["listen"], ports["http"])
	}

	// The module volume, read-only at --module-dir, from the ConfigMap.
	var vol string
	for _, m := range at(c, "volumeMounts").([]any) {
		if str(at(m, "mountPath")) == args["module-dir"] {
			vol = str(at(m, "name"))
			if at(m, "readOnly") != true {
				t.Errorf("the module volume is not mounted readOnly")
			}
		}
	}
	var cmName string
	for _, v := range at(pod, "volumes").([]any) {
		if str(at(v, "name")) == vol {
			cmName = str(at(v, "configMap", "name"))
		}
	}
	if vol == "" || cmName == "" {
		t.Fatalf("no ConfigMap volume mounted at --module-dir %q", args["module-dir"])
	}
	var cm map[string]any
	for _, d := range byKind["ConfigMap"] {
		if str(at(d, "metadata", "name")) == cmName {
			cm = d
		}
	}
	if cm == nil {
		t.Fatalf("ConfigMap %s is not among the manifests", cmName)
	}
	fib, _ := os.ReadFile("../testdata/fib.wasm")
	for name, v := range at(cm, "binaryData").(map[string]any) {
		if !strings.HasSuffix(name, ".wasm") {
			t.Errorf("ConfigMap key %s: --module-dir loads only NAME.wasm files", name)
		}
		if name == "fib.wasm" && str(v) != b64(fib) {
			t.Errorf("ConfigMap fib.wasm is not testdata/fib.wasm")
		}
	}

	// Scraped, and unprivileged.
	ann := at(ds, "spec", "template", "metadata", "annotations")
	if str(at(ann, "prometheus.io/scrape")) != "true" || str(at(ann, "prometheus.io/path")) != "/metrics" ||
		str(at(ann, "prometheus.io/port")) != strconv.Itoa(ports["http"]) {
		t.Errorf("prometheus.io annotations: got %v, want scrape true, path /metrics, port %d", ann, ports["http"])
	}
	sc := at(c, "securityContext")
	if at(sc, "privileged") == true || at(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("securityContext %v: want unprivileged, without privilege escalation", sc)
	}
	if drop := at(sc, "capabilities", "drop"); !slices.Contains(drop.([]any), any("ALL")) {
		t.Errorf("capabilities: got drop %v, want ALL", drop)
	}

	// Services select the pods and reach the named port.
	if len(byKind["Service"]) == 0 {
		t.Fatal("no Service")
	}
	headless := false
	for _, svc := range byKind["Service"] {
		for k, v := range at(svc, "spec", "selector").(map[string]any) {
			if labels[k] != v {
				t.Errorf("Service %s selects %s=%v, which the pods do not carry", str(at(svc, "metadata", "name")), k, v)
			}
		}
		for _, p := range at(svc, "spec", "ports").([]any) {
			if ports[str(at(p, "targetPort"))] == 0 {
				t.Errorf("Service %s: targetPort %v is not a named container port", str(at(svc, "metadata", "name")), at(p, "targetPort"))
			}
		}
		headless = headless || str(at(svc, "spec", "clusterIP")) == "None"
	}
	if !headless {
		t.Errorf("no headless Service: a retrying proxy needs every pod's address")
	}
}

// wholeCPUs parses a CPU quantity that must be a whole number: "3", 3,
// "3000m".
func wholeCPUs(q string) (int, error) {
	if m, ok := strings.CutSuffix(q, "m"); ok {
		n, err := strconv.Atoi(m)
		if err != nil || n%1000 != 0 {
			return 0, errors.New("not a whole number of CPUs")
		}
		return n / 1000, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil {
		return 0, errors.New("not a whole number of CPUs")
	}
	return n, nil
}

// TestWholeCPUs: the quantities the static CPU manager counts as whole.
func TestWholeCPUs(t *testing.T) {
	for q, want := range map[string]int{"3": 3, "3000m": 3, "2500m": -1, "1.5": -1, "": -1} {
		n, err := wholeCPUs(q)
		if (err != nil) != (want < 0) || (err == nil && n != want) {
			t.Errorf("wholeCPUs(%q): got %d, %v; want %d", q, n, err, want)
		}
	}
}

// TestEnvoy checks envoy.yaml's structure and the settings the retries
// rest on. Envoy is not packaged by Debian, so it is not run here.
func TestEnvoy(t *testing.T) {
	d := docs(t, "envoy/envoy.yaml")
	if len(d) != 1 {
		t.Fatalf("got %d documents, want 1", len(d))
	}
	l := at(d[0], "static_resources", "listeners", 0)
	hcm := at(l, "filter_chains", 0, "filters", 0)
	if str(at(hcm, "name")) != "envoy.filters.network.http_connection_manager" ||
		!strings.HasSuffix(str(at(hcm, "typed_config", "@type")), "http_connection_manager.v3.HttpConnectionManager") {
		t.Fatalf("the listener's filter is not the HTTP connection manager: %v", hcm)
	}
	route := at(hcm, "typed_config", "route_config", "virtual_hosts", 0, "routes", 0, "route")
	rp := at(route, "retry_policy")
	on := strings.Split(str(at(rp, "retry_on")), ",")
	for _, want := range []string{"retriable-status-codes", "connect-failure", "reset"} {
		if !slices.Contains(on, want) {
			t.Errorf("retry_on %v lacks %s", on, want)
		}
	}
	if codes, _ := at(rp, "retriable_status_codes").([]any); !slices.Contains(codes, any(503)) {
		t.Errorf("retriable_status_codes %v lacks 503", codes)
	}
	if n, _ := at(rp, "num_retries").(int); n < 1 {
		t.Errorf("num_retries %v: want at least 1", at(rp, "num_retries"))
	}
	if str(at(rp, "retry_host_predicate", 0, "name")) != "envoy.retry_host_predicates.previous_hosts" ||
		!strings.HasSuffix(str(at(rp, "retry_host_predicate", 0, "typed_config", "@type")), "PreviousHostsPredicate") {
		t.Errorf("retry_host_predicate %v: want previous_hosts, so a retry goes to another node", at(rp, "retry_host_predicate"))
	}
	if str(at(hcm, "typed_config", "http_filters", 0, "name")) != "envoy.filters.http.router" {
		t.Errorf("no router filter")
	}
	cl := at(d[0], "static_resources", "clusters", 0)
	if str(at(cl, "name")) != str(at(route, "cluster")) {
		t.Errorf("the route's cluster %v is not the defined one %v", at(route, "cluster"), at(cl, "name"))
	}
	if str(at(cl, "health_checks", 0, "http_health_check", "path")) != "/healthz" {
		t.Errorf("no health check on /healthz")
	}
	if at(cl, "outlier_detection") != nil {
		t.Errorf("outlier_detection would eject a node for refusing calls when full")
	}
	if eps, _ := at(cl, "load_assignment", "endpoints", 0, "lb_endpoints").([]any); len(eps) < 2 {
		t.Errorf("%d endpoints: want several nodes", len(eps))
	}
}

// TestHAProxy checks haproxy.cfg's retry settings, and has haproxy check
// the file where it is installed.
func TestHAProxy(t *testing.T) {
	raw, err := os.ReadFile("haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, re := range []string{`(?m)^\s+retry-on .*\b503\b`, `(?m)^\s+retry-on .*\bconn-failure\b`, `(?m)^\s+retries [1-9]`,
		`(?m)^\s+option redispatch\b`, `(?m)^\s+option httpchk GET /healthz$`, `(?m)^\s+option http-buffer-request$`,
		`(?m)^\s+default-server .*\bcheck\b`} {
		if !regexp.MustCompile(re).MatchString(cfg) {
			t.Errorf("haproxy.cfg has no line matching %s", re)
		}
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy is not installed (apt-get install haproxy): the file is not checked by haproxy itself")
	}
	if out, err := exec.Command("haproxy", "-c", "-f", "haproxy/haproxy.cfg").CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v: %s", err, out)
	}
}

// TestNginx checks hyper-sched.conf's retry settings, and has nginx check
// the file, included in a minimal nginx.conf, where it is installed.
func TestNginx(t *testing.T) {
	raw, err := os.ReadFile("nginx/hyper-sched.conf")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	m := regexp.MustCompile(`(?m)^\s+proxy_next_upstream ([^;]+);`).FindStringSubmatch(cfg)
	if m == nil {
		t.Fatal("no proxy_next_upstream")
	}
	for _, want := range []string{"http_503", "non_idempotent", "error", "timeout"} {
		if !slices.Contains(strings.Fields(m[1]), want) {
			t.Errorf("proxy_next_upstream %s lacks %s", m[1], want)
		}
	}
	servers := regexp.MustCompile(`(?m)^\s+server (\S+)(.*);`).FindAllStringSubmatch(cfg, -1)
	for _, s := range servers {
		if !strings.Contains(s[2], "max_fails=0") {
			t.Errorf("server %s without max_fails=0: a refusal would take it out of the rotation", s[1])
		}
	}
	for _, re := range []string{`(?m)^\s+keepalive \d+;`, `(?m)^\s+proxy_http_version 1\.1;`, `(?m)^\s+proxy_set_header Connection "";`} {
		if !regexp.MustCompile(re).MatchString(cfg) {
			t.Errorf("hyper-sched.conf has no line matching %s (upstream keepalive)", re)
		}
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx is not installed (apt-get install nginx): the file is not checked by nginx itself")
	}
	dir := t.TempDir()
	abs, _ := filepath.Abs("nginx/hyper-sched.conf")
	main := filepath.Join(dir, "nginx.conf")
	os.WriteFile(main, []byte("events {}\nhttp {\n    include "+abs+";\n}\n"), 0o644)
	out, err := exec.Command("nginx", "-t", "-p", dir, "-c", main, "-g", "pid "+dir+"/nginx.pid; error_log stderr;").CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v: %s", err, out)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
