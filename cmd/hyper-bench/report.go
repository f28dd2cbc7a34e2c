package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

func reportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hyper-bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "report.html", "HTML file to write")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "hyper-bench report: give at least one result file")
		return 2
	}
	var rs []*Result
	for _, path := range fs.Args() {
		r, err := readResult(path)
		if err != nil {
			fmt.Fprintln(stderr, "hyper-bench report:", err)
			return 1
		}
		rs = append(rs, r)
	}
	if err := os.WriteFile(*out, renderReport(rs, time.Now().UTC()), 0o644); err != nil {
		fmt.Fprintln(stderr, "hyper-bench report: write report:", err)
		return 1
	}
	fmt.Fprintf(stdout, "report: %s (%d results)\n", *out, len(rs))
	return 0
}

// reportStyle keeps everything within the page: the body has a maximum
// width, plots shrink with it, and the results table is laid out to fit a
// 1280-pixel window (short numbers, grouped headers, names that do not
// wrap). Its container scrolls sideways only when the window is narrower
// than that, so a wide table never widens the page.
const reportStyle = `body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}
.tablewrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:1em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:2px 5px;text-align:right}
th{background:#f3f3f3;font-weight:600}th[colspan]{text-align:center}td.l,th.l{text-align:left}td.n{white-space:nowrap}
tbody{border-top:3px solid #999}tr.run td{border-top:2px solid #aaa}tr.total td{background:#fafafa}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{max-width:100%;height:auto}
.note{color:#555;font-size:13px}code,pre{font-size:12px;background:#f6f6f6}pre{padding:6px;white-space:pre-wrap;overflow-wrap:anywhere}`

// renderReport renders results as one HTML page. Per scenario: a table of
// every result, grouped by load step and then system; the load-sweep plots
// (goodput, on-time fraction and p99 latency against the offered rate, one
// line per system); and, per load step and class, the latency CDFs of every
// system overlaid on shared axes. A system keeps one colour and line pattern
// throughout the page.
func renderReport(rs []*Result, generated time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>hyper-bench report</title><style>%s</style></head><body>\n", reportStyle)
	fmt.Fprintf(&b, "<h1>hyper-bench report</h1>\n<p class=\"note\">%d results, generated %s. Latencies are of 200 answers, "+
		"from the intended send time (open loop) or the send (closed loop). Goodput: 200 answers with the deadline met, per second. "+
		"Client goodput also requires the latency seen by the client to be within the deadline. "+
		"Missed: 200 with deadline_met false, or 504. Rejected: 503 Error_Unschedulable.</p>\n",
		len(rs), generated.Format(time.RFC3339))
	scs := scenarios(rs)
	var names []string
	for _, sc := range scs {
		for _, g := range sc.steps {
			for _, r := range g.runs {
				names = append(names, r.name)
			}
		}
	}
	st := styles(names)
	for _, sc := range scs {
		renderScenario(&b, sc, st)
	}
	b.WriteString("</body></html>\n")
	return []byte(b.String())
}

// step is a load step of a scenario: the load that the systems of one
// scenario were given alike, and so what a reader compares them at.
type step struct {
	mode    string
	factor  float64 // open loop: the rate as a multiple of the prepared capacity, or 0
	rate    float64 // open loop without a factor: calls/s, rounded to 0.1
	clients int     // closed loop
	cameras int     // cameras mode
}

// stepOf returns r's load step. A rate given as a multiple of the capacity
// is keyed by the multiple: each system may have been prepared on its own,
// so "2x" is the same step at slightly different absolute rates.
func stepOf(r *Result) step {
	switch {
	case r.Mode == "closed":
		return step{mode: r.Mode, clients: r.Clients}
	case r.Mode == "cameras":
		return step{mode: r.Mode, cameras: r.Cameras, rate: math.Round(r.Rate*10) / 10}
	case r.LoadFactor > 0:
		return step{mode: r.Mode, factor: r.LoadFactor}
	}
	return step{mode: r.Mode, rate: math.Round(r.Rate*10) / 10}
}

func (s step) less(o step) bool {
	if s.mode != o.mode {
		return s.mode < o.mode
	}
	if s.factor != o.factor {
		return s.factor < o.factor
	}
	if s.cameras != o.cameras {
		return s.cameras < o.cameras
	}
	if s.rate != o.rate {
		return s.rate < o.rate
	}
	return s.clients < o.clients
}

// short names the step in a table cell or a plot title: "2x", "400.0/s",
// "16 clients".
func (s step) short() string {
	switch {
	case s.mode == "closed":
		return fmt.Sprintf("%d client%s", s.clients, plural(s.clients))
	case s.mode == "cameras":
		return fmt.Sprintf("%d camera%s", s.cameras, plural(s.cameras))
	case s.factor > 0:
		return fmt.Sprintf("%gx", s.factor)
	}
	return fmt.Sprintf("%.1f/s", s.rate)
}

// namedRun is a result with the name it is shown under: its system.
type namedRun struct {
	*Result
	name string
}

// stepGroup is one load step's runs, in system name order.
type stepGroup struct {
	step step
	runs []namedRun
}

// heading describes the step in full: the loop, the load, and for a
// multiple of the capacity each system's absolute rate when they differ.
func (g stepGroup) heading() string {
	s := g.step
	switch {
	case s.mode == "closed":
		return fmt.Sprintf("closed loop, %s", s.short())
	case s.mode == "cameras":
		return fmt.Sprintf("%s, %.1f frames/s in all", s.short(), s.rate)
	case s.factor > 0:
		lo, hi := math.Inf(1), math.Inf(-1)
		var each []string
		for _, r := range g.runs {
			lo, hi = min(lo, r.Rate), max(hi, r.Rate)
			each = append(each, fmt.Sprintf("%s %.1f/s", r.name, r.Rate))
		}
		if hi-lo <= 0.005*hi {
			return fmt.Sprintf("open loop, %s capacity = %.1f/s", s.short(), hi)
		}
		return fmt.Sprintf("open loop, %s each system's own capacity: %s", s.short(), strings.Join(each, ", "))
	case s.mode == "open":
		return fmt.Sprintf("open loop, %s", s.short())
	}
	return fmt.Sprintf("%s, %s", s.mode, s.short())
}

type scenario struct {
	name  string
	steps []stepGroup
	all   []*Result // by system then offered load, for the sweep plots
}

// systemName is the name r is shown under: its label, which `run` sets to
// the system under test (default: the URL's host).
func systemName(r *Result) string {
	if r.Label == "" {
		return "(no label)"
	}
	return r.Label
}

// scenarios groups results by scenario, in name order, and each scenario's
// results by load step. Within a step runs are in system name order; a
// system's second run of the same step is shown as "name #2", in start
// order, so that no two lines of a plot share a name.
func scenarios(rs []*Result) []scenario {
	by := map[string][]*Result{}
	for _, r := range rs {
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	var out []scenario
	for name, l := range by {
		sort.SliceStable(l, func(i, j int) bool {
			if a, b := systemName(l[i]), systemName(l[j]); a != b {
				return a < b
			}
			if l[i].Total.OfferedPerS != l[j].Total.OfferedPerS {
				return l[i].Total.OfferedPerS < l[j].Total.OfferedPerS
			}
			return l[i].Started.Before(l[j].Started)
		})
		sc := scenario{name: name, all: l}
		idx := map[step]int{}
		for _, r := range l {
			s := stepOf(r)
			i, ok := idx[s]
			if !ok {
				i = len(sc.steps)
				idx[s] = i
				sc.steps = append(sc.steps, stepGroup{step: s})
			}
			sc.steps[i].runs = append(sc.steps[i].runs, namedRun{r, systemName(r)})
		}
		sort.Slice(sc.steps, func(i, j int) bool { return sc.steps[i].step.less(sc.steps[j].step) })
		for _, g := range sc.steps {
			seen := map[string]int{}
			for i := range g.runs {
				n := g.runs[i].name
				if seen[n]++; seen[n] > 1 {
					g.runs[i].name = fmt.Sprintf("%s #%d", n, seen[n])
				}
			}
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func loadText(r *Result) string {
	if r.Mode == "closed" {
		return fmt.Sprintf("closed, %d client%s", r.Clients, plural(r.Clients))
	}
	if r.Mode == "cameras" {
		return fmt.Sprintf("cameras, %d × %g fps", r.Cameras, r.FPS)
	}
	s := fmt.Sprintf("open, %.1f/s", r.Rate)
	if r.LoadFactor > 0 {
		s += fmt.Sprintf(" (%gx)", r.LoadFactor)
	}
	return s
}

func renderScenario(b *strings.Builder, sc scenario, st map[string]style) {
	title := sc.name
	if title == "" {
		title = "(no scenario)"
	}
	fmt.Fprintf(b, "<h2>Scenario: %s</h2>\n", esc(title))
	renderTable(b, sc.steps)

	if sweep := sweepPlots(sc.all, st); len(sweep) > 0 {
		b.WriteString("<h3>Against offered load</h3>\n<div class=plots>\n")
		for _, p := range sweep {
			b.WriteString(p.svg())
			b.WriteString("\n")
		}
		b.WriteString("</div>\n")
	}

	if cp := camerasPlots(sc.all, st); len(cp) > 0 {
		b.WriteString("<h3>Against cameras</h3>\n<p class=note>Each camera sends a frame per period (-fps), each frame one call " +
			"with the class's deadline. In time: 200 with the deadline met by the server and within it by the client's clock.</p>\n<div class=plots>\n")
		for _, p := range cp {
			b.WriteString(p.svg())
			b.WriteString("\n")
		}
		b.WriteString("</div>\n")
	}

	b.WriteString("<h3>Latency CDF</h3>\n<p class=note>One plot per load step and class, the systems overlaid; " +
		"the dashed grey line is the class's deadline.</p>\n")
	for _, g := range sc.steps {
		fmt.Fprintf(b, "<h4>%s</h4>\n<div class=plots>\n", esc(g.heading()))
		for _, p := range cdfPlots(g, st) {
			b.WriteString(p.svg())
			b.WriteString("\n")
		}
		b.WriteString("</div>\n")
	}

	b.WriteString("<details><summary>machines, commands and errors</summary>\n")
	for _, g := range sc.steps {
		for _, r := range g.runs {
			m := r.Machine
			fmt.Fprintf(b, "<p><b>%s, %s</b> at %s: %s; %d CPUs usable (online %s), %s, %s; load average %v → %v</p>\n<pre>%s</pre>\n",
				esc(r.name), esc(loadText(r.Result)), r.Started.Format(time.RFC3339), esc(m.Hostname), m.NProc, esc(m.OnlineCPUs), esc(m.CPUModel),
				esc(m.Kernel), m.LoadAvgStart, m.LoadAvgEnd, esc(strings.Join(r.Command, " ")))
			if len(r.Total.ErrorKind) > 0 {
				fmt.Fprintf(b, "<p class=note>errors: %s</p>\n", esc(strings.Join(sortedKinds(r.Total.ErrorKind), ", ")))
			}
			if r.Generator.LateSends > 0 {
				fmt.Fprintf(b, "<p class=note>generator: %d sends more than 1 ms late, max %.1f ms</p>\n", r.Generator.LateSends, r.Generator.MaxSendLagMs)
			}
		}
	}
	b.WriteString("</details>\n")
}

// cdfPlots returns a load step's latency CDFs: one plot per class (in the
// order the runs list them), one line per system, with the class's deadline
// marked. Classes are matched by name, so a system that lacks a class is
// simply absent from its plot.
func cdfPlots(g stepGroup, st map[string]style) []plot {
	var names []string
	deadline := map[string]float64{}
	for _, r := range g.runs {
		for _, c := range r.Classes {
			if _, ok := deadline[c.Name]; !ok {
				names = append(names, c.Name)
			}
			deadline[c.Name] = max(deadline[c.Name], c.DeadlineMs)
		}
	}
	var out []plot
	for _, cn := range names {
		title := cn + ", " + g.step.short()
		p := plot{Title: cut(title, 70), XLabel: "latency ms (log)", YLabel: "fraction of 200 answers", XLog: true, YMax: 1}
		if d := deadline[cn]; d > 0 {
			p.Marks = []mark{{X: d, Label: fmt.Sprintf("D %g ms", d)}}
		}
		for _, r := range g.runs {
			for _, c := range r.Classes {
				if c.Name != cn {
					continue
				}
				s := series{Name: r.name, Color: st[r.name].Color, Dash: st[r.name].Dash}
				for _, pt := range c.Hist.CDF() {
					s.Points = append(s.Points, point{X: float64(pt.Value) / 1e6, Y: pt.Fraction})
				}
				p.Series = append(p.Series, s)
			}
		}
		out = append(out, p)
	}
	return out
}

// bySystem groups the results of mode rs holds by system, with the
// systems' names sorted; sweep is whether some system has two or more.
func bySystem(rs []*Result, mode string) (byLabel map[string][]*Result, labels []string, sweep bool) {
	byLabel = map[string][]*Result{}
	for _, r := range rs {
		if r.Mode != mode {
			continue
		}
		l := systemName(r)
		if _, ok := byLabel[l]; !ok {
			labels = append(labels, l)
		}
		byLabel[l] = append(byLabel[l], r)
		sweep = sweep || len(byLabel[l]) > 1
	}
	sort.Strings(labels)
	return byLabel, labels, sweep
}

// sweepPlots returns the plots against offered load for a scenario's open
// loop results, or none when no system has two open-loop results.
func sweepPlots(rs []*Result, st map[string]style) []plot {
	byLabel, labels, sweep := bySystem(rs, "open")
	if !sweep {
		return nil
	}
	line := func(l string) series {
		return series{Name: l, Markers: true, Color: st[l].Color, Dash: st[l].Dash}
	}
	good := plot{Title: "Goodput, all classes (server's deadline_met)", XLabel: "offered calls/s", YLabel: "calls/s answered in time"}
	client := plot{Title: "Goodput, all classes (client's clock)", XLabel: "offered calls/s", YLabel: "calls/s answered in time"}
	maxOffered := 0.0
	for _, l := range labels {
		s, sc := line(l), line(l)
		for _, r := range byLabel[l] {
			s.Points = append(s.Points, point{r.Total.OfferedPerS, r.Total.GoodputPerS})
			sc.Points = append(sc.Points, point{r.Total.OfferedPerS, r.Total.ClientGoodputPerS})
			maxOffered = max(maxOffered, r.Total.OfferedPerS)
		}
		good.Series = append(good.Series, s)
		client.Series = append(client.Series, sc)
	}
	ref := series{Name: "offered", Color: refColor, Dash: refDash, Points: []point{{0, 0}, {maxOffered, maxOffered}}}
	good.Series = append(good.Series, ref)
	client.Series = append(client.Series, ref)
	out := []plot{good, client}
	for ci, c := range rs[0].Classes {
		onTime := plot{Title: "On time: " + c.Name, XLabel: "offered calls/s (all classes)", YLabel: "ok / sent", YMax: 1}
		p99 := plot{Title: "p99 latency: " + c.Name, XLabel: "offered calls/s (all classes)", YLabel: "ms, log (200 answers)", YLog: true}
		for _, l := range labels {
			so, sp := line(l), line(l)
			for _, r := range byLabel[l] {
				if ci >= len(r.Classes) || r.Classes[ci].Name != c.Name || r.Classes[ci].Sent == 0 {
					continue
				}
				rc := r.Classes[ci]
				so.Points = append(so.Points, point{r.Total.OfferedPerS, float64(rc.OK) / float64(rc.Sent)})
				if rc.Latency.Count > 0 {
					sp.Points = append(sp.Points, point{r.Total.OfferedPerS, rc.Latency.P99})
				}
			}
			onTime.Series = append(onTime.Series, so)
			p99.Series = append(p99.Series, sp)
		}
		out = append(out, onTime, p99)
	}
	return out
}
