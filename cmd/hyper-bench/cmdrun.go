package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// runFlags are the run command's flags.
type runFlags struct {
	workload, url, out, mode, rate, prepared, label, scenario string
	clients, maxInflight, cameras                             int
	fps                                                       float64
	duration, warmup, drain, timeout                          time.Duration
	seed                                                      uint64
}

func parseRunFlags(args []string, stderr io.Writer) (runFlags, error) {
	var f runFlags
	fs := flag.NewFlagSet("hyper-bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.workload, "workload", "", "workload file (JSON; see docs/hyper-bench.md)")
	fs.StringVar(&f.url, "url", "http://127.0.0.1:3001", "base URL of the server; calls go to URL/call")
	fs.StringVar(&f.out, "out", "result.json", "result file to write")
	fs.StringVar(&f.mode, "mode", "open", `"open" (Poisson arrivals at -rate), "closed" (-clients back to back) or "cameras" (-cameras at -fps each)`)
	fs.StringVar(&f.rate, "rate", "", `open loop: calls per second of all classes together, or "Nx": N times the capacity in -prepared`)
	fs.StringVar(&f.prepared, "prepared", "", "file written by hyper-bench prepare, for -rate Nx")
	fs.IntVar(&f.clients, "clients", 1, "closed loop: concurrent clients")
	fs.IntVar(&f.cameras, "cameras", 0, "cameras mode: cameras, each sending its frames at -fps from a phase of its own")
	fs.Float64Var(&f.fps, "fps", 30, "cameras mode: frames per second of each camera")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "measured window")
	fs.DurationVar(&f.warmup, "warmup", 0, "load before the window, not counted")
	fs.DurationVar(&f.drain, "drain", 5*time.Second, "how long to wait for answers after the window; later ones count as errors")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-call timeout")
	fs.IntVar(&f.maxInflight, "max-inflight", 4096, "open loop: calls in flight at most; more wait (and count their wait as latency)")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed for arrival times and class choice")
	fs.StringVar(&f.label, "label", "", "the system under test, e.g. hyper-sched or go-baseline (default: the URL's host)")
	fs.StringVar(&f.scenario, "scenario", "", "scenario name; report groups results by it")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case f.workload == "":
		return f, errors.New("-workload is required")
	case f.mode != "open" && f.mode != "closed" && f.mode != "cameras":
		return f, fmt.Errorf("-mode %q: want open, closed or cameras", f.mode)
	case f.mode == "cameras" && (f.cameras < 1 || f.cameras > 10000):
		return f, fmt.Errorf("-mode cameras needs -cameras 1..10000 (got %d)", f.cameras)
	case f.mode == "cameras" && !(f.fps > 0 && f.fps <= 1000):
		return f, fmt.Errorf("-fps %v: want 0 < fps <= 1000", f.fps)
	case f.mode == "open" && f.rate == "":
		return f, errors.New("-mode open needs -rate")
	case f.mode == "closed" && f.clients < 1:
		return f, fmt.Errorf("-clients %d: want at least 1", f.clients)
	case f.duration <= 0:
		return f, fmt.Errorf("-duration %v: want a positive duration", f.duration)
	case f.warmup < 0 || f.drain < 0 || f.timeout <= 0:
		return f, errors.New("-warmup and -drain must not be negative, -timeout must be positive")
	case f.maxInflight < 1:
		return f, fmt.Errorf("-max-inflight %d: want at least 1", f.maxInflight)
	}
	return f, nil
}

// parseRate reads -rate: "250" is 250 calls/s (factor 0); "2x" or "0.5x" is
// a factor of the prepared capacity (rate 0).
func parseRate(s string) (rate, factor float64, err error) {
	if t, ok := strings.CutSuffix(s, "x"); ok {
		factor, err = strconv.ParseFloat(t, 64)
		if err != nil || !(factor > 0) || factor > 1e6 {
			return 0, 0, fmt.Errorf("-rate %q: want a positive factor such as 2x", s)
		}
		return 0, factor, nil
	}
	rate, err = strconv.ParseFloat(s, 64)
	if err != nil || !(rate > 0) || rate > 1e7 {
		return 0, 0, fmt.Errorf("-rate %q: want calls per second (a positive number) or a factor such as 2x", s)
	}
	return rate, 0, nil
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hyper-bench run:", err)
		return 2
	}
	res, err := doRun(ctx, f, args, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hyper-bench run:", err)
		return 1
	}
	if err := writeResult(f.out, res); err != nil {
		fmt.Fprintln(stderr, "hyper-bench run:", err)
		return 1
	}
	printSummary(stdout, res)
	fmt.Fprintf(stdout, "result: %s\n", f.out)
	return 0
}

func doRun(ctx context.Context, f runFlags, args []string, stdout, stderr io.Writer) (*Result, error) {
	data, err := os.ReadFile(f.workload)
	if err != nil {
		return nil, fmt.Errorf("read workload: %w", err)
	}
	w, err := ParseWorkload(data, filepath.Dir(f.workload))
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(f.url)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port", f.url)
	}
	res := &Result{Scenario: f.scenario, Label: f.label, Command: append([]string{"hyper-bench", "run"}, args...),
		URL: f.url, Mode: f.mode, DurationS: f.duration.Seconds(), WarmupS: f.warmup.Seconds(), Seed: f.seed, Workload: w}
	if res.Label == "" {
		res.Label = base.Host
	}
	if f.mode == "open" {
		rate, factor, err := parseRate(f.rate)
		if err != nil {
			return nil, err
		}
		if factor > 0 {
			if f.prepared == "" {
				return nil, fmt.Errorf("-rate %s is relative to a capacity: give -prepared FILE from hyper-bench prepare", f.rate)
			}
			p, err := readPrepared(f.prepared)
			if err != nil {
				return nil, err
			}
			if !(p.CapacityPerS > 0) {
				return nil, fmt.Errorf("%s: no capacity measured", f.prepared)
			}
			rate = factor * p.CapacityPerS
			res.LoadFactor, res.CapacityPerS = factor, p.CapacityPerS
		}
		res.Rate = rate
	} else if f.mode == "cameras" {
		res.Cameras, res.FPS = f.cameras, f.fps
		res.Rate = float64(f.cameras) * f.fps
	} else {
		res.Clients = f.clients
	}
	cfg := loadConfig{
		CallURL: strings.TrimSuffix(f.url, "/") + "/call", Classes: w.Classes, Mode: f.mode, Rate: res.Rate,
		Clients: f.clients, Duration: f.duration, Warmup: f.warmup, Drain: f.drain, Timeout: f.timeout,
		MaxInflight: f.maxInflight, Seed: f.seed, Cameras: f.cameras, FPS: f.fps,
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res.Machine = describeMachine()
	made := time.Now()
	g, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	if n := framesMade(g); n > 0 {
		fmt.Fprintf(stderr, "hyper-bench run: made %d frame bodies (%.1f MB) in %.1fs\n", n, float64(frameBytes(g))/1e6, time.Since(made).Seconds())
	}
	res.Started = time.Now().UTC()
	start := time.Now()
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go progress(stderr, &g.live, start, f.warmup, stopProgress, progressDone)
	window := g.run(ctx, start)
	close(stopProgress)
	<-progressDone
	res.Machine.LoadAvgEnd = loadAvg()
	if window < f.duration {
		fmt.Fprintf(stderr, "hyper-bench run: interrupted after %.1fs of the %v window; the result covers that part\n", window.Seconds(), f.duration)
		res.DurationS = window.Seconds()
	}
	res.Classes, res.Total = aggregate(w.Classes, g.tallies, window)
	res.Generator = GeneratorInfo{LateSends: g.lateSends.Load(), MaxSendLagMs: float64(g.maxLag.Load()) / 1e6,
		MaxInflight: g.maxInflight.Load()}
	return res, nil
}

// printSummary writes a result's table for a human.
func printSummary(w io.Writer, r *Result) {
	load := fmt.Sprintf("%d client%s", r.Clients, plural(r.Clients))
	if r.Mode == "cameras" {
		load = fmt.Sprintf("%d camera%s at %g fps", r.Cameras, plural(r.Cameras), r.FPS)
	}
	if r.Mode == "open" {
		load = fmt.Sprintf("%.1f calls/s", r.Rate)
		if r.LoadFactor > 0 {
			load += fmt.Sprintf(" (%gx capacity %.1f/s)", r.LoadFactor, r.CapacityPerS)
		}
	}
	fmt.Fprintf(w, "%s %s loop, %s, %.1fs window, load average %v → %v\n", r.Label, r.Mode, load, r.DurationS,
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tsent\tok\trejected\tmissed\terrors\toffered/s\tgoodput/s\tclient goodput/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, c := range append(r.Classes, r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", c.Name, c.Sent, c.OK, c.Rejected,
			c.Missed, c.Errors, c.OfferedPerS, c.GoodputPerS, c.ClientGoodputPerS, c.Latency.P50, c.Latency.P99, c.Latency.P999, c.Latency.Max)
	}
	tw.Flush()
	if len(r.Total.ErrorKind) > 0 {
		fmt.Fprintf(w, "errors: %s\n", strings.Join(sortedKinds(r.Total.ErrorKind), ", "))
	}
	if r.Generator.LateSends > 0 {
		fmt.Fprintf(w, "generator: %d sends left more than 1 ms late (max %.1f ms); their latency still counts from the intended time\n",
			r.Generator.LateSends, r.Generator.MaxSendLagMs)
	}
}
