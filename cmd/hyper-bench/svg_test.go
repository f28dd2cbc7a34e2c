package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed parses s as XML and counts its elements by name.
func wellFormed(t *testing.T, s string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return counts
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
}

func TestPlotSVG(t *testing.T) {
	tests := []struct {
		name          string
		p             plot
		polys, circle int
		contains      string
	}{
		{name: "log CDF", p: plot{Title: "a <b> & c", XLog: true, YMax: 1, Series: []series{
			{Name: "x", Points: []point{{0.2, 0.1}, {3, 0.9}, {40, 1}}},
			{Name: "y", Points: []point{{0, 0.5}, {1, 1}}}, // x=0 cannot go on a log axis
		}}, polys: 2, contains: "a &lt;b&gt; &amp; c"},
		{name: "sweep with markers", p: plot{Series: []series{
			{Name: "s", Markers: true, Points: []point{{100, 90}, {200, 150}, {400, 140}}},
			{Name: "ref", Dash: "5 4", Points: []point{{0, 0}, {400, 400}}},
		}}, polys: 2, circle: 3, contains: "stroke-dasharray"},
		{name: "log y", p: plot{YLog: true, Series: []series{
			{Name: "s", Markers: true, Points: []point{{100, 0.5}, {200, 30}, {400, 0}}}, // y=0 cannot go on a log axis
		}}, polys: 1, circle: 2, contains: ">100<"},
		{name: "style and mark", p: plot{XLog: true, YMax: 1, Marks: []mark{{X: 8, Label: "D 8 ms"}}, Series: []series{
			{Name: "s", Color: "#123456", Dash: "2 2", Points: []point{{1, 0.5}, {3, 1}}}, // the mark widens the axis to 10
		}}, polys: 1, contains: `stroke="#123456" stroke-width="1.6" stroke-dasharray="2 2"`},
		{name: "no data", p: plot{Title: "t", Series: []series{{Name: "s"}}}, contains: "no data"},
		{name: "NaN skipped", p: plot{Series: []series{{Name: "s", Points: []point{{1, math.NaN()}, {2, 3}}}}}, polys: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.p.svg()
			c := wellFormed(t, s)
			if c["polyline"] != tt.polys || c["circle"] != tt.circle {
				t.Errorf("got %d polylines and %d circles, want %d and %d", c["polyline"], c["circle"], tt.polys, tt.circle)
			}
			if !strings.Contains(s, tt.contains) {
				t.Errorf("svg does not contain %q", tt.contains)
			}
		})
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{fmt.Sprint(linTicks(0, 1)), "[0 0.2 0.4 0.6000000000000001 0.8 1]"},
		{fmt.Sprint(linTicks(0, 700)), "[0 200 400 600]"},
		{fmt.Sprint(logTicks(0.1, 100)), "[0.1 0.2 0.5 1 2 5 10 20 50 100]"},
		{fmt.Sprint(logTicks(0.001, 10)), "[0.001 0.01 0.1 1 10]"},
		{fmt.Sprint(niceCeil(137)), "150"},
		{fmt.Sprint(niceCeil(0.93)), "1"},
		{tickLabel(2000), "2000"},
		{tickLabel(0.05), "0.05"},
		{cut("abcdef", 4), "abc…"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %s, want %s", i, tt.got, tt.want)
		}
	}
}

func TestStyles(t *testing.T) {
	names := []string{"b", "a", "b", "c", "d", "e"}
	st := styles(names)
	if got, want := len(st), 5; got != want {
		t.Fatalf("got %d styles, want %d", got, want)
	}
	// In name order: a is first; colours and patterns both change from one
	// system to the next.
	if got, want := st["a"], (style{palette[0], dashes[0]}); got != want {
		t.Errorf("got %v for a, want %v", got, want)
	}
	if got, want := st["e"], (style{palette[4], dashes[0]}); got != want {
		t.Errorf("got %v for e, want %v", got, want)
	}
	seen := map[style]bool{}
	for i := range 20 {
		s := style{palette[i%len(palette)], dashes[i%len(dashes)]}
		if seen[s] {
			t.Errorf("style %d repeats: %v", i, s)
		}
		seen[s] = true
	}
}

func TestPlotMark(t *testing.T) {
	p := plot{XLog: true, YMax: 1, Marks: []mark{{X: 8, Label: "D 8 ms"}}, Series: []series{{Name: "s", Points: []point{{1, 0.5}, {3, 1}}}}}
	s := p.svg()
	wellFormed(t, s)
	// The mark is drawn, and the x axis widened from 1–3 to 1–10 to hold it.
	for _, want := range []string{">D 8 ms<", ">10<", `stroke="#888" stroke-dasharray="5 4"`} {
		if !strings.Contains(s, want) {
			t.Errorf("svg does not contain %s", want)
		}
	}
	p.Series = nil
	if s := p.svg(); !strings.Contains(s, "no data") || strings.Contains(s, "D 8 ms") {
		t.Errorf("got %s, want a plot of marks alone to say no data", s)
	}
}
