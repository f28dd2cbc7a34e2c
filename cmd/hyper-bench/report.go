package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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

const reportStyle = `body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#555;font-size:13px}code,pre{font-size:12px;background:#f6f6f6}pre{padding:6px;white-space:pre-wrap}`

// renderReport renders results as one HTML page: per scenario a table, the
// load-sweep plots (goodput, on-time fraction and p99 latency against the
// offered rate, one line per label) and the latency CDF of every result.
func renderReport(rs []*Result, generated time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>hyper-bench report</title><style>%s</style></head><body>\n", reportStyle)
	fmt.Fprintf(&b, "<h1>hyper-bench report</h1>\n<p class=\"note\">%d results, generated %s. Latencies are of 200 answers, "+
		"from the intended send time (open loop) or the send (closed loop). Goodput: 200 answers with the deadline met, per second. "+
		"Client goodput also requires the latency seen by the client to be within the deadline. "+
		"Missed: 200 with deadline_met false, or 504. Rejected: 503 Error_Unschedulable.</p>\n",
		len(rs), generated.Format(time.RFC3339))
	for _, sc := range scenarios(rs) {
		renderScenario(&b, sc.name, sc.results)
	}
	b.WriteString("</body></html>\n")
	return []byte(b.String())
}

type scenario struct {
	name    string
	results []*Result
}

// scenarios groups results by scenario, in name order, each sorted by label
// then offered load.
func scenarios(rs []*Result) []scenario {
	by := map[string][]*Result{}
	for _, r := range rs {
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	var out []scenario
	for name, l := range by {
		sort.SliceStable(l, func(i, j int) bool {
			if l[i].Label != l[j].Label {
				return l[i].Label < l[j].Label
			}
			return l[i].Total.OfferedPerS < l[j].Total.OfferedPerS
		})
		out = append(out, scenario{name, l})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func loadText(r *Result) string {
	if r.Mode == "closed" {
		return fmt.Sprintf("closed, %d client%s", r.Clients, plural(r.Clients))
	}
	s := fmt.Sprintf("open, %.1f/s", r.Rate)
	if r.LoadFactor > 0 {
		s += fmt.Sprintf(" (%gx)", r.LoadFactor)
	}
	return s
}

func renderScenario(b *strings.Builder, name string, rs []*Result) {
	title := name
	if title == "" {
		title = "(no scenario)"
	}
	fmt.Fprintf(b, "<h2>Scenario: %s</h2>\n", esc(title))
	b.WriteString("<table><tr><th class=l>label</th><th class=l>load</th><th class=l>class</th><th>D ms</th><th>offered/s</th>" +
		"<th>throughput/s</th><th>goodput/s</th><th>client goodput/s</th><th>sent</th><th>ok</th><th>rejected</th><th>missed</th><th>errors</th>" +
		"<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>server p50 ms</th><th>exec p50 ms</th><th class=l>load avg start → end</th></tr>\n")
	for _, r := range rs {
		rows := append(append([]ClassResult{}, r.Classes...), r.Total)
		if len(r.Classes) == 1 {
			rows = rows[:1]
		}
		for i, c := range rows {
			first := ""
			if i == 0 {
				first = fmt.Sprintf("<td class=l rowspan=%d>%s</td><td class=l rowspan=%d>%s</td>", len(rows), esc(r.Label), len(rows), esc(loadText(r)))
			}
			la := ""
			if i == 0 {
				la = fmt.Sprintf("<td class=l rowspan=%d>%v → %v</td>", len(rows), r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
			}
			dl := "–"
			if c.DeadlineMs > 0 {
				dl = fmt.Sprintf("%g", c.DeadlineMs)
			}
			fmt.Fprintf(b, "<tr>%s<td class=l>%s</td><td>%s</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td>"+
				"<td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>%s</tr>\n",
				first, esc(c.Name), dl, c.OfferedPerS, c.ThroughputPerS, c.GoodputPerS, c.ClientGoodputPerS, c.Sent, c.OK, c.Rejected, c.Missed, c.Errors,
				c.Latency.P50, c.Latency.P90, c.Latency.P99, c.Latency.P999, c.Latency.Max, c.Server.P50, c.Exec.P50, la)
		}
	}
	b.WriteString("</table>\n")

	if sweep := sweepPlots(rs); len(sweep) > 0 {
		b.WriteString("<h3>Against offered load</h3>\n<div class=plots>\n")
		for _, p := range sweep {
			b.WriteString(p.svg())
			b.WriteString("\n")
		}
		b.WriteString("</div>\n")
	}

	b.WriteString("<h3>Latency CDF</h3>\n<div class=plots>\n")
	for _, r := range rs {
		p := plot{Title: cut(r.Label+", "+loadText(r), 60), XLabel: "latency ms (log)", YLabel: "fraction of 200 answers",
			XLog: true, YMax: 1}
		for _, c := range r.Classes {
			s := series{Name: c.Name}
			for _, pt := range c.Hist.CDF() {
				s.Points = append(s.Points, point{X: float64(pt.Value) / 1e6, Y: pt.Fraction})
			}
			p.Series = append(p.Series, s)
		}
		b.WriteString(p.svg())
		b.WriteString("\n")
	}
	b.WriteString("</div>\n<details><summary>machines, commands and errors</summary>\n")
	for _, r := range rs {
		m := r.Machine
		fmt.Fprintf(b, "<p><b>%s, %s</b> at %s: %s; %d CPUs usable (online %s), %s, %s</p>\n<pre>%s</pre>\n",
			esc(r.Label), esc(loadText(r)), r.Started.Format(time.RFC3339), esc(m.Hostname), m.NProc, esc(m.OnlineCPUs), esc(m.CPUModel),
			esc(m.Kernel), esc(strings.Join(r.Command, " ")))
		if len(r.Total.ErrorKind) > 0 {
			fmt.Fprintf(b, "<p class=note>errors: %s</p>\n", esc(strings.Join(sortedKinds(r.Total.ErrorKind), ", ")))
		}
		if r.Generator.LateSends > 0 {
			fmt.Fprintf(b, "<p class=note>generator: %d sends more than 1 ms late, max %.1f ms</p>\n", r.Generator.LateSends, r.Generator.MaxSendLagMs)
		}
	}
	b.WriteString("</details>\n")
}

// sweepPlots returns the plots against offered load for a scenario's open
// loop results, or none when no label has two open-loop results.
func sweepPlots(rs []*Result) []plot {
	byLabel := map[string][]*Result{}
	var labels []string
	for _, r := range rs {
		if r.Mode != "open" {
			continue
		}
		if _, ok := byLabel[r.Label]; !ok {
			labels = append(labels, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
	}
	sweep := false
	for _, l := range byLabel {
		sweep = sweep || len(l) > 1
	}
	if !sweep {
		return nil
	}
	sort.Strings(labels)
	good := plot{Title: "Goodput, all classes (server's deadline_met)", XLabel: "offered calls/s", YLabel: "calls/s answered in time"}
	client := plot{Title: "Goodput, all classes (client's clock)", XLabel: "offered calls/s", YLabel: "calls/s answered in time"}
	maxOffered := 0.0
	for _, l := range labels {
		s, sc := series{Name: l, Markers: true}, series{Name: l, Markers: true}
		for _, r := range byLabel[l] {
			s.Points = append(s.Points, point{r.Total.OfferedPerS, r.Total.GoodputPerS})
			sc.Points = append(sc.Points, point{r.Total.OfferedPerS, r.Total.ClientGoodputPerS})
			maxOffered = max(maxOffered, r.Total.OfferedPerS)
		}
		good.Series = append(good.Series, s)
		client.Series = append(client.Series, sc)
	}
	ref := series{Name: "offered", Dashed: true, Points: []point{{0, 0}, {maxOffered, maxOffered}}}
	good.Series = append(good.Series, ref)
	client.Series = append(client.Series, ref)
	out := []plot{good, client}
	for ci, c := range rs[0].Classes {
		onTime := plot{Title: "On time: " + c.Name, XLabel: "offered calls/s (all classes)", YLabel: "ok / sent", YMax: 1}
		p99 := plot{Title: "p99 latency: " + c.Name, XLabel: "offered calls/s (all classes)", YLabel: "ms, log (200 answers)", YLog: true}
		for _, l := range labels {
			so, sp := series{Name: l, Markers: true}, series{Name: l, Markers: true}
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
