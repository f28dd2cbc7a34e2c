package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// point is one (x, y) of a series.
type point struct{ X, Y float64 }

// series is one line of a plot.
type series struct {
	Name    string
	Points  []point // in drawing order
	Markers bool    // draw a dot at each point (few points, as in load sweeps)
	// Color and Dash (an SVG stroke-dasharray; empty is solid) style the
	// line. An empty Color takes the palette colour of the series' index;
	// the report sets both so that a system looks the same in every plot.
	Color, Dash string
}

// mark is a vertical reference line across a plot, such as a deadline.
type mark struct {
	X     float64
	Label string
}

// plot is a line chart rendered as inline SVG, with no script and no
// external resource, so the report stays one self-contained file.
type plot struct {
	Title, XLabel, YLabel string
	XLog                  bool    // logarithmic x axis (latencies)
	YLog                  bool    // logarithmic y axis (latencies across a sweep)
	YMax                  float64 // fixed top of the y axis; 0 fits the data
	Series                []series
	Marks                 []mark // drawn, and kept inside the x axis, when the plot has data
}

// Plot geometry in SVG user units.
const (
	plotW, plotH                   = 600, 340
	padL, padR, padT, padB float64 = 64, 170, 30, 46
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// dashes are the line patterns given to systems along with the palette's
// colours, so that lines stay apart in grey print and for readers who do not
// tell the colours apart. With 10 colours and 4 patterns the first 20
// systems all differ.
var dashes = []string{"", "7 3", "2 2", "9 3 2 3"}

// style is a system's colour and line pattern.
type style struct{ Color, Dash string }

// styles gives each distinct name a style, in name order, so that a name
// has the same style wherever it is drawn.
func styles(names []string) map[string]style {
	u := append([]string(nil), names...)
	sort.Strings(u)
	u = slices.Compact(u)
	m := make(map[string]style, len(u))
	for i, n := range u {
		m[n] = style{palette[i%len(palette)], dashes[i%len(dashes)]}
	}
	return m
}

// Reference lines (offered load, deadlines) are grey and dashed.
const refColor, refDash = "#888", "5 4"

// svg renders p. A plot with no drawable point says so instead of drawing
// empty axes.
func (p plot) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="11">`,
		plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%g" y="18" font-size="13" font-weight="bold">%s</text>`, padL, esc(p.Title))
	x0, x1, y0, y1, ok := p.bounds()
	if !ok {
		fmt.Fprintf(&b, `<text x="%g" y="%g">no data</text></svg>`, padL, float64(plotH)/2)
		return b.String()
	}
	iw, ih := plotW-padL-padR, plotH-padT-padB
	sx := func(x float64) float64 {
		if p.XLog {
			return padL + iw*(math.Log10(x)-math.Log10(x0))/(math.Log10(x1)-math.Log10(x0))
		}
		return padL + iw*(x-x0)/(x1-x0)
	}
	sy := func(y float64) float64 {
		if p.YLog {
			return padT + ih - ih*(math.Log10(y)-math.Log10(y0))/(math.Log10(y1)-math.Log10(y0))
		}
		return padT + ih - ih*(y-y0)/(y1-y0)
	}

	// Grid and ticks.
	var xt []float64
	if p.XLog {
		xt = logTicks(x0, x1)
	} else {
		xt = linTicks(x0, x1)
	}
	for _, t := range xt {
		x := sx(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ddd"/>`, x, padT, x, padT+ih)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x, padT+ih+14, tickLabel(t))
	}
	yt := linTicks(y0, y1)
	if p.YLog {
		yt = logTicks(y0, y1)
	}
	for _, t := range yt {
		y := sy(t)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`, padL, y, padL+iw, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, tickLabel(t))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`, padL, padT, iw, ih)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`, padL+iw/2, plotH-8.0, esc(p.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(14 %g) rotate(-90)" text-anchor="middle">%s</text>`, padT+ih/2, esc(p.YLabel))

	// Marks, series and legend.
	for _, m := range p.Marks {
		if !p.drawable(point{m.X, y0}) || m.X < x0 || m.X > x1 {
			continue
		}
		x := sx(m.X)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s" stroke-dasharray="%s"/>`, x, padT, x, padT+ih, refColor, refDash)
		// At the foot of the line, where a CDF has usually not started to
		// the line's right, and with a white halo where it has.
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" fill="#555" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`, x+3, padT+ih-5, esc(m.Label))
	}
	for i, s := range p.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var pts []string
		for _, pt := range s.Points {
			if !p.drawable(pt) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(pt.X), sy(min(pt.Y, y1))))
		}
		dash := ""
		if s.Dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, esc(s.Dash))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`, color, dash, strings.Join(pts, " "))
		}
		if s.Markers {
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, color)
			}
		}
		ly := padT + 8 + float64(i)*16
		// The legend's sample is long enough to show a whole dash pattern.
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, padL+iw+8, ly, padL+iw+34, ly, color, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`, padL+iw+38, ly+4, esc(cut(s.Name, 22)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// drawable reports whether pt can be placed on p's axes.
func (p plot) drawable(pt point) bool {
	if math.IsNaN(pt.X) || math.IsNaN(pt.Y) || math.IsInf(pt.X, 0) || math.IsInf(pt.Y, 0) {
		return false
	}
	return (!p.XLog || pt.X > 0) && (!p.YLog || pt.Y > 0)
}

// bounds returns the axes' ranges: x from the data (whole decades on a log
// axis), y from 0 to YMax or a round number above the data.
func (p plot) bounds() (x0, x1, y0, y1 float64, ok bool) {
	x0, x1 = math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), 0.0
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if !p.drawable(pt) {
				continue
			}
			ok = true
			x0, x1 = min(x0, pt.X), max(x1, pt.X)
			ymin, ymax = min(ymin, pt.Y), max(ymax, pt.Y)
		}
	}
	if !ok {
		return 0, 0, 0, 0, false
	}
	for _, m := range p.Marks {
		if p.drawable(point{m.X, ymax}) {
			x0, x1 = min(x0, m.X), max(x1, m.X)
		}
	}
	if p.XLog {
		x0, x1 = decades(x0, x1)
	} else {
		x0 = min(x0, 0)
		if x1 <= x0 {
			x1 = x0 + 1
		}
		x1 = niceCeil(x1)
	}
	if p.YLog {
		y0, y1 = decades(ymin, ymax)
		return x0, x1, y0, y1, true
	}
	y1 = p.YMax
	if y1 <= 0 {
		y1 = niceCeil(ymax)
		if y1 <= 0 {
			y1 = 1
		}
	}
	return x0, x1, 0, y1, true
}

// decades widens [lo, hi] (lo > 0) to whole powers of ten.
func decades(lo, hi float64) (float64, float64) {
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

// niceStep returns 1, 2 or 5 times a power of ten, near raw.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / e; {
	case f <= 1:
		return e
	case f <= 2:
		return 2 * e
	case f <= 5:
		return 5 * e
	}
	return 10 * e
}

// niceCeil rounds v > 0 up to a multiple of a nice step.
func niceCeil(v float64) float64 {
	s := niceStep(v / 5)
	return math.Ceil(v/s-1e-9) * s
}

// linTicks returns about five round ticks from lo to hi.
func linTicks(lo, hi float64) []float64 {
	s := niceStep((hi - lo) / 5)
	var out []float64
	for k := math.Ceil(lo/s - 1e-9); k*s <= hi+s*1e-9; k++ {
		out = append(out, k*s+0) // +0 turns -0 into 0
	}
	return out
}

// logTicks returns the powers of ten from lo to hi, with 2 and 5 between
// them when there are few decades.
func logTicks(lo, hi float64) []float64 {
	decades := math.Log10(hi / lo)
	var out []float64
	for e := math.Floor(math.Log10(lo) + 1e-9); e <= math.Log10(hi)+1e-9; e++ {
		d := math.Pow(10, e)
		for _, m := range []float64{1, 2, 5} {
			if m > 1 && decades > 3 {
				break
			}
			if t := m * d; t >= lo*(1-1e-9) && t <= hi*(1+1e-9) {
				out = append(out, t)
			}
		}
	}
	return out
}

// tickLabel formats a tick value briefly: 0.05, 2, 1000, 25000.
func tickLabel(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func esc(s string) string { return html.EscapeString(s) }

// cut shortens s to n runes with an ellipsis.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
