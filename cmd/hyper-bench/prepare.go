package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Prepared is what prepare writes: each class's measured time and the
// capacity of the server's worker cores for the workload's mix.
type Prepared struct {
	URL     string          `json:"url"`
	Workers int             `json:"workers"`
	Classes []PreparedClass `json:"classes"`
	// CapacityPerS is how many calls of the mix the worker cores complete
	// per second when busy all the time: Workers / Σ fraction_i × cost_i.
	CapacityPerS float64 `json:"capacity_per_s"`
	Basis        string  `json:"basis"`
}

// PreparedClass is one class's measurement by /test (benchd).
type PreparedClass struct {
	Name          string  `json:"name"`
	Fraction      float64 `json:"fraction"`    // of the mix
	EstimateMs    float64 `json:"estimate_ms"` // the C admission will use
	MedianMs      float64 `json:"median_ms"`
	P99Ms         float64 `json:"p99_ms"`
	InstantiateMs float64 `json:"instantiate_ms"`
	CostMs        float64 `json:"cost_ms"` // median + instantiate: a worker's time per call
}

const capacityBasis = "median execution + instantiate time per call as measured by /test (benchd), " +
	"one call at a time per worker core; HTTP and dispatch run on housekeeping CPUs and are not counted"

// capacity returns workers / Σ fraction_i × cost_i in calls per second, or 0
// if any cost is unknown.
func capacity(workers int, classes []PreparedClass) float64 {
	var perCall float64 // ms
	for _, c := range classes {
		if !(c.CostMs > 0) {
			return 0
		}
		perCall += c.Fraction * c.CostMs
	}
	if perCall <= 0 {
		return 0
	}
	return float64(workers) * 1000 / perCall
}

func prepareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hyper-bench prepare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workload := fs.String("workload", "", "workload file")
	base := fs.String("url", "http://127.0.0.1:3001", "base URL of the hyper-sched daemon")
	out := fs.String("o", "", "write the measurements and capacity (JSON) here, for run -rate Nx")
	replace := fs.Bool("replace", false, "replace modules registered under the same name with other bytes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *workload == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "hyper-bench prepare: want -workload FILE and no arguments")
		return 2
	}
	p, err := prepare(ctx, &http.Client{Timeout: 5 * time.Minute}, strings.TrimSuffix(*base, "/"), *workload, *replace, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hyper-bench prepare:", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tfraction\testimate ms\tmedian ms\tp99 ms\tinstantiate ms\t")
	for _, c := range p.Classes {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", c.Name, c.Fraction, c.EstimateMs, c.MedianMs, c.P99Ms, c.InstantiateMs)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "capacity: %.1f calls/s on %d worker core(s)\n", p.CapacityPerS, p.Workers)
	if hasFrames(*workload) {
		fmt.Fprintf(stdout, "  that is %.1f cameras at 30 fps (-mode cameras -fps 30)\n", p.CapacityPerS/30)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(p, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "hyper-bench prepare: write result:", err)
			return 1
		}
	}
	return 0
}

// prepare registers the workload's modules at base, measures every class
// with /test and counts the worker cores.
func prepare(ctx context.Context, c *http.Client, base, workloadPath string, replace bool, log io.Writer) (*Prepared, error) {
	data, err := os.ReadFile(workloadPath)
	if err != nil {
		return nil, fmt.Errorf("read workload: %w", err)
	}
	w, err := ParseWorkload(data, filepath.Dir(workloadPath))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(w.Modules))
	for n := range w.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := register(ctx, c, base, name, w.Modules[name], replace, log); err != nil {
			return nil, err
		}
	}
	p := &Prepared{URL: base, Basis: capacityBasis}
	fr := fractions(w.Classes)
	for i, cl := range w.Classes {
		pc, err := measure(ctx, c, base, cl)
		if err != nil {
			return nil, err
		}
		pc.Fraction = fr[i]
		p.Classes = append(p.Classes, pc)
	}
	p.Workers, err = workers(ctx, c, base)
	if err != nil {
		fmt.Fprintf(log, "hyper-bench prepare: count workers: %v; assuming 1\n", err)
		p.Workers = 1
	}
	p.CapacityPerS = capacity(p.Workers, p.Classes)
	return p, nil
}

// register uploads one module as curl -F "name=@path" does.
func register(ctx context.Context, c *http.Client, base, name, path string, replace bool, log io.Writer) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile(name, filepath.Base(path))
	if err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	part.Write(wasm)
	if replace {
		mw.WriteField("replace", "true")
	}
	mw.Close()
	code, b, err := do(ctx, c, http.MethodPost, base+"/register", mw.FormDataContentType(), body.Bytes())
	if err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	var a struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		SHA256    string `json:"sha256"`
		Unchanged bool   `json:"unchanged"`
	}
	json.Unmarshal(b, &a)
	if code != http.StatusOK {
		hint := ""
		if code == http.StatusConflict {
			hint = " (other bytes are registered under this name; -replace replaces them)"
		}
		return fmt.Errorf("register %s: %d %s: %s%s", name, code, a.Status, a.Error, hint)
	}
	state := "registered"
	if a.Unchanged {
		state = "already registered"
	}
	fmt.Fprintf(log, "%s %s (sha256 %.12s)\n", state, name, a.SHA256)
	return nil
}

// measure calls /test for one class: benchd runs it and stores the estimate.
func measure(ctx context.Context, c *http.Client, base string, cl Class) (PreparedClass, error) {
	code, b, err := do(ctx, c, http.MethodPost, base+"/test", "application/json", cl.testBody())
	if err != nil {
		return PreparedClass{}, fmt.Errorf("test class %s: %w", cl.Name, err)
	}
	var a struct {
		Status      string  `json:"status"`
		Error       string  `json:"error"`
		Result      string  `json:"result"`
		EstimateMs  float64 `json:"estimate_ms"`
		Calibration struct {
			MedianNs      float64 `json:"median_ns"`
			P99Ns         float64 `json:"p99_ns"`
			InstantiateNs float64 `json:"instantiate_ns"`
		} `json:"calibration"`
	}
	if err := json.Unmarshal(b, &a); err != nil || code != http.StatusOK {
		if a.Status == "" {
			return PreparedClass{}, fmt.Errorf("test class %s: answer %d is not /test JSON: %.200s", cl.Name, code, b)
		}
		return PreparedClass{}, fmt.Errorf("test class %s: %d %s: %s", cl.Name, code, a.Status, a.Error)
	}
	pc := PreparedClass{Name: cl.Name, EstimateMs: a.EstimateMs, MedianMs: a.Calibration.MedianNs / 1e6,
		P99Ms: a.Calibration.P99Ns / 1e6, InstantiateMs: a.Calibration.InstantiateNs / 1e6}
	if pc.EstimateMs == 0 {
		// A seed-style server answers only "result": whole milliseconds.
		pc.EstimateMs, _ = strconv.ParseFloat(a.Result, 64)
	}
	pc.CostMs = pc.MedianMs + pc.InstantiateMs
	if pc.MedianMs == 0 {
		pc.CostMs = pc.EstimateMs
	}
	return pc, nil
}

// workers counts the worker processes in /status.
func workers(ctx context.Context, c *http.Client, base string) (int, error) {
	code, b, err := do(ctx, c, http.MethodGet, base+"/status", "", nil)
	if err != nil {
		return 0, err
	}
	var st struct {
		Processes []struct {
			Name string `json:"name"`
			CPU  int    `json:"cpu"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(b, &st); err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("status answered %d", code)
	}
	// One worker core per CPU, however many lanes it has.
	cpus := map[int]bool{}
	for _, p := range st.Processes {
		if strings.HasPrefix(p.Name, "worker-") {
			cpus[p.CPU] = true
		}
	}
	if len(cpus) == 0 {
		return 0, errors.New("status lists no worker")
	}
	return len(cpus), nil
}

func do(ctx context.Context, c *http.Client, method, url, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err == nil {
		// Read what is left, so that the connection goes back to the pool.
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, b, err
}

// readPrepared reads a file written by prepare -o.
func readPrepared(path string) (*Prepared, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read prepared: %w", err)
	}
	var p Prepared
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("read prepared %s: %w", path, err)
	}
	return &p, nil
}
