package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pageWidth is the room the table has in a 1280-pixel window: less the
// body's 2em margins and a vertical scroll bar.
const pageWidth = 1280 - 2*32 - 15

// wideResults is a scenario as wide as the bench scenarios make: three
// systems with long names, two classes with long names, and numbers as
// long as a 4x overload step gives.
func wideResults() []*Result {
	var rs []*Result
	for _, sys := range []string{"hyper-sched-lanes1", "node-baseline", "go-baseline"} {
		for _, f := range []float64{1, 4} {
			r := fakeResult("lanes", sys, 2122.8*f, 900*time.Millisecond)
			r.LoadFactor = f
			for i := range r.Classes {
				c := &r.Classes[i]
				c.Name = []string{"long-fib35-D2000", "short-fib27-D8"}[i]
				c.DeadlineMs = []float64{2000, 8}[i]
				c.Sent, c.OK, c.Rejected, c.Missed, c.Errors = 142142, 102934, 39204, 10792, 15174
				c.OfferedPerS, c.ThroughputPerS, c.GoodputPerS, c.ClientGoodputPerS = 12107.6, 10146.9, 10146.7, 10145.3
				c.Latency = Summary{P50: 8254, P90: 12080, P99: 20401, P999: 21831, Max: 21834}
				c.Server.P50, c.Exec.P50 = 1862.27, 0.093
			}
			r.Total = r.Classes[0]
			r.Total.Name, r.Total.DeadlineMs = totalName, 0
			rs = append(rs, r)
		}
	}
	return rs
}

func TestTableLayout(t *testing.T) {
	for _, want := range []string{
		"body{font-family:sans-serif;margin:2em;max-width:1300px",
		".tablewrap{max-width:100%;overflow-x:auto}", // the last resort, for narrow windows
		"td.n{white-space:nowrap}",                   // names are not broken at their hyphens
		".plots svg{max-width:100%;height:auto}",
		"overflow-wrap:anywhere", // long paths in the commands
	} {
		if !strings.Contains(reportStyle, want) {
			t.Errorf("style does not contain %s", want)
		}
	}
	html := string(renderReport(wideResults(), time.Time{}))
	tables := regexp.MustCompile(`(?s)<div class="tablewrap"><table>.*?</table></div>`).FindAllString(html, -1)
	if got := strings.Count(html, "<table"); got != 1 || len(tables) != 1 {
		t.Fatalf("got %d tables, %d of them in a tablewrap, want 1 and 1", got, len(tables))
	}
	widths := columnWidths(t, strings.TrimSuffix(strings.TrimPrefix(tables[0], `<div class="tablewrap">`), `</div>`))
	if got, want := len(widths), 20; got != want {
		t.Errorf("got %d columns, want %d", got, want)
	}
	total := 1
	for _, w := range widths {
		total += w
	}
	t.Logf("estimated table width %d px for %d columns: %v", total, len(widths), widths)
	if total > pageWidth {
		t.Errorf("got an estimated table width of %d px, want at most %d (a 1280-pixel window)", total, pageWidth)
	}
	// Systems are named in the table's rows: the labels, not the files'
	// run names.
	for _, sys := range []string{"hyper-sched-lanes1", "node-baseline", "go-baseline"} {
		if got := strings.Count(tables[0], `">`+sys+`</td>`); got != 2 {
			t.Errorf("got %s in %d cells, want 2 (one per step)", sys, got)
		}
	}
}

// columnWidths estimates each column's min-content width in pixels, which
// is what decides whether a table fits: a browser shrinks columns down to it
// and overflows only beyond it. A column's is its widest cell that spans one
// column, broken at spaces, hyphens and soft hyphens unless the cell has
// class n (nowrap), in 13-pixel Arial-like glyphs (Liberation Sans: digits
// 0.556 em, lower case about 0.5 em), header text bold. Checked against
// chromium with wideResults: estimated 1159 px; chromium laid it out in
// 1186 px (it had room to keep every header on one line) in a 1201-pixel
// container.
func columnWidths(t *testing.T, table string) []int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(table))
	d.Strict = true
	var (
		widths  []int
		taken   = map[[2]int]bool{} // cells covered by a rowspan from above
		row     = -1
		col     int
		inCell  bool
		text    strings.Builder
		nowrap  bool
		bold    bool
		colspan int
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return widths
		}
		if err != nil {
			t.Fatalf("table is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "tr":
				row++
				col = 0
			case "td", "th":
				for taken[[2]int{row, col}] {
					col++
				}
				inCell, nowrap, colspan, bold = true, false, 1, tok.Name.Local == "th"
				rowspan := 1
				text.Reset()
				for _, a := range tok.Attr {
					switch a.Name.Local {
					case "class":
						nowrap = strings.Contains(" "+a.Value+" ", " n ")
					case "colspan":
						fmt.Sscan(a.Value, &colspan)
					case "rowspan":
						fmt.Sscan(a.Value, &rowspan)
					}
				}
				for r := 1; r < rowspan; r++ {
					for c := range colspan {
						taken[[2]int{row + r, col + c}] = true
					}
				}
			}
		case xml.CharData:
			if inCell {
				text.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local != "td" && tok.Name.Local != "th" {
				continue
			}
			inCell = false
			for len(widths) < col+colspan {
				widths = append(widths, 0)
			}
			if colspan == 1 {
				s := text.String()
				words := []string{s}
				if !nowrap {
					// A break after a hyphen keeps the hyphen with the word.
					words = strings.FieldsFunc(strings.NewReplacer("-", "- ", "\u00ad", "- ").Replace(s), func(r rune) bool { return r == ' ' })
				}
				longest := 0.0
				for _, w := range words {
					longest = max(longest, textWidth(w, bold))
				}
				widths[col] = max(widths[col], int(math.Ceil(longest))+2*5+1) // padding and border
			}
			col += colspan
		}
	}
}

// textWidth is s's width in pixels in 13-pixel Arial-like glyphs.
func textWidth(s string, bold bool) float64 {
	em := 0.0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			em += 0.556
		case r == '.' || r == ' ' || r == '/' || r == 'i' || r == 'l' || r == 'j' || r == 't' || r == 'f' || r == 'r':
			em += 0.3
		case r == '-' || r == '(' || r == ')':
			em += 0.333
		case r == 'm' || r == 'w':
			em += 0.833
		case r >= 'A' && r <= 'Z':
			em += 0.667
		default:
			em += 0.556
		}
	}
	if bold {
		em *= 1.08
	}
	return em * 13
}

// TestTableFitsBrowser lays the report out in headless chromium, when it is
// installed, and measures what TestTableLayout only estimates: that the
// table fits a 1280-pixel window and the page does not scroll sideways.
func TestTableFitsBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("needs chromium (Debian package chromium) to measure the rendered table")
	}
	dir := t.TempDir()
	page := strings.Replace(string(renderReport(wideResults(), time.Time{})), "</body>",
		`<script>var t=document.querySelector("table"),w=document.querySelector(".tablewrap");`+
			`document.title=[document.documentElement.scrollWidth,innerWidth,t.offsetWidth,w.clientWidth].join(" ")</script></body>`, 1)
	path := filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two minutes: chromium takes about 10 s to start on a busy 2-CPU
	// machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=1280,2000", "--dump-dom", "file://"+path)
	out, err := cmd.Output()
	m := regexp.MustCompile(`<title>(\d+) (\d+) (\d+) (\d+)</title>`).FindSubmatch(out)
	if m == nil {
		t.Skipf("needs a chromium that runs here: %v (%d bytes of DOM)", err, len(out))
	}
	var scroll, inner, table, wrap int
	fmt.Sscan(string(m[1])+" "+string(m[2])+" "+string(m[3])+" "+string(m[4]), &scroll, &inner, &table, &wrap)
	t.Logf("page %d px in a %d px window; table %d px in %d px", scroll, inner, table, wrap)
	if table > wrap {
		t.Errorf("got a table %d px wide in a %d px container, want it to fit", table, wrap)
	}
	if scroll > inner {
		t.Errorf("got a page %d px wide in a %d px window, want no sideways scroll", scroll, inner)
	}
}
