package main

import (
	"fmt"
	"strings"
)

// tableHead is the results table's two header rows. Columns are grouped
// (rates, counts, client latency, server time) so that each column's own
// header is one short word and the numbers, not the headers, set the
// widths; a title on each says what the short word means. The load
// average, once a column of its own, is with the machine in the details:
// it describes the run, not the system.
const tableHead = `<thead><tr><th class="l" rowspan="2" title="load step: a multiple of the prepared capacity, a rate, or closed-loop clients">load</th>` +
	`<th class="l" rowspan="2" title="system under test (the run's -label)">system</th><th class="l" rowspan="2">class</th>` +
	`<th rowspan="2" title="deadline">D ms</th>` +
	`<th colspan="4">calls/s</th><th colspan="5">calls</th><th colspan="5">latency ms (client)</th><th colspan="2">p50 ms (server)</th></tr>` + "\n" +
	`<tr><th title="sent / window">offered</th><th title="200 answers / window">through` + "\u00ad" + `put</th>` +
	`<th title="ok / window: 200 with the deadline met, by the server">good` + "\u00ad" + `put</th>` +
	`<th title="ok and within the deadline by the client's clock, per second">client</th>` +
	`<th>sent</th><th>ok</th><th title="503 Error_Unschedulable">rejected</th><th title="200 with deadline_met false, or 504">missed</th><th>errors</th>` +
	`<th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th>` +
	`<th title="the server's arrival to result (timings_us.total)">total</th><th title="the export's run time (timings_us.exec)">exec</th></tr></thead>` + "\n"

// renderTable writes a scenario's results table: one body per load step,
// and in it each system's classes and, when there are several, their total.
// The markup is well-formed XML (quoted attributes, closed elements), so
// tests can parse it.
func renderTable(b *strings.Builder, steps []stepGroup) {
	b.WriteString("<div class=\"tablewrap\"><table>\n")
	b.WriteString(tableHead)
	for _, g := range steps {
		n := 0
		for _, r := range g.runs {
			n += len(tableRows(r.Result))
		}
		b.WriteString("<tbody>\n")
		for ri, r := range g.runs {
			rows := tableRows(r.Result)
			for i, c := range rows {
				var cls []string
				if i == 0 && ri > 0 {
					cls = append(cls, "run")
				}
				if c.Name == totalName && len(rows) > 1 {
					cls = append(cls, "total")
				}
				if len(cls) > 0 {
					fmt.Fprintf(b, "<tr class=\"%s\">", strings.Join(cls, " "))
				} else {
					b.WriteString("<tr>")
				}
				if ri == 0 && i == 0 {
					fmt.Fprintf(b, "<td class=\"l n\" rowspan=\"%d\">%s</td>", n, esc(g.step.short()))
				}
				if i == 0 {
					fmt.Fprintf(b, "<td class=\"l n\" rowspan=\"%d\" title=\"%s\">%s</td>", len(rows), esc(loadText(r.Result)), esc(r.name))
				}
				dl := "–"
				if c.DeadlineMs > 0 {
					dl = fmt.Sprintf("%g", c.DeadlineMs)
				}
				fmt.Fprintf(b, "<td class=\"l n\">%s</td><td>%s</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.1f</td>"+
					"<td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td>"+
					"<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
					esc(c.Name), dl, c.OfferedPerS, c.ThroughputPerS, c.GoodputPerS, c.ClientGoodputPerS,
					c.Sent, c.OK, c.Rejected, c.Missed, c.Errors,
					ms(c.Latency.P50), ms(c.Latency.P90), ms(c.Latency.P99), ms(c.Latency.P999), ms(c.Latency.Max), ms(c.Server.P50), ms(c.Exec.P50))
			}
		}
		b.WriteString("</tbody>\n")
	}
	b.WriteString("</table></div>\n")
}

// tableRows returns r's rows: its classes, then the total when there is
// more than one class.
func tableRows(r *Result) []ClassResult {
	rows := append(append([]ClassResult{}, r.Classes...), r.Total)
	if len(r.Classes) == 1 {
		rows = rows[:1]
	}
	return rows
}

// ms formats milliseconds to about three significant digits, with at most
// three decimals: 0.093, 2.97, 45.2, 1862. Sub-millisecond times keep
// microseconds, which is where systems differ at low load; seconds-long
// tails need no fractions.
func ms(v float64) string {
	switch a := max(v, -v); {
	case a == 0:
		return "0"
	case a < 1:
		return fmt.Sprintf("%.3f", v)
	case a < 10:
		return fmt.Sprintf("%.2f", v)
	case a < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
