package supervisor

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type emitted struct {
	line string
	cut  int
}

func collect(t *testing.T, r io.Reader, max int) []emitted {
	t.Helper()
	var out []emitted
	if err := readLines(r, max, func(line string, cut int) { out = append(out, emitted{line, cut}) }); err != nil {
		t.Fatalf("readLines: %v", err)
	}
	return out
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want []emitted
	}{
		{"plain", "a\nb\n", 100, []emitted{{"a", 0}, {"b", 0}}},
		{"last line without newline", "a\nfatal error: out of memory", 100, []emitted{{"a", 0}, {"fatal error: out of memory", 0}}},
		{"crlf", "a\r\n", 100, []emitted{{"a", 0}}},
		{"empty lines kept", "\n\nx\n", 100, []emitted{{"", 0}, {"", 0}, {"x", 0}}},
		// A line over the limit is cut, and the lines after it still come.
		{"long line cut, forwarding goes on", long + "\nafter\n", 64, []emitted{{long[:64], 10000 - 64}, {"after", 0}}},
		{"long last line", long, 100, []emitted{{long[:100], 10000 - 100}}},
		{"line of exactly max", strings.Repeat("y", 8) + "\n", 8, []emitted{{strings.Repeat("y", 8), 0}}},
		{"nothing", "", 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range map[string]io.Reader{"whole": strings.NewReader(tc.in), "byte by byte": iotest.OneByteReader(strings.NewReader(tc.in))} {
				got := collect(t, r, tc.max)
				if len(got) != len(tc.want) {
					t.Fatalf("got %d lines %+v, want %d", len(got), got, len(tc.want))
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("line %d: got %q cut %d, want %q cut %d", i, got[i].line, got[i].cut, tc.want[i].line, tc.want[i].cut)
					}
				}
			}
		})
	}
}

func TestReadLinesManyLongLines(t *testing.T) {
	// 100 lines of 200 KiB: every one arrives, cut, in order.
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 200<<10))
		b.WriteByte('\n')
	}
	got := collect(t, strings.NewReader(b.String()), stderrLineMax)
	if len(got) != 100 {
		t.Fatalf("got %d lines, want 100", len(got))
	}
	for i, e := range got {
		if len(e.line) != stderrLineMax || e.cut != 200<<10-stderrLineMax || e.line[0] != byte('a'+i%26) {
			t.Fatalf("line %d: len %d cut %d first %q", i, len(e.line), e.cut, e.line[0])
		}
	}
}
