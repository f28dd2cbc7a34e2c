package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hyper-sched/hyper-sched/engine"
	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

// stages runs the checked-in .wasm files on the engine the workers run
// (engine.CallIO: a fresh instance per call, stdin, argv), the way the
// daemon runs a command module, without the daemon.
type stages struct {
	e    *engine.Engine
	mods map[string]*engine.Module
}

var (
	stagesOnce sync.Once
	stagesVal  *stages
	stagesErr  error
)

func loadStages(t testing.TB) *stages {
	t.Helper()
	stagesOnce.Do(func() {
		ctx := context.Background()
		// Outputs are kept whole: a blob list can be longer than the
		// engine's default 4 KiB.
		e, err := engine.New(ctx, engine.Config{StdoutLimit: 64 << 20})
		if err != nil {
			stagesErr = err
			return
		}
		s := &stages{e: e, mods: map[string]*engine.Module{}}
		for _, name := range []string{"decode", "detect", "count", "decide", "traffic"} {
			b, err := os.ReadFile(filepath.Join("stages", name+".wasm"))
			if err != nil {
				stagesErr = err
				return
			}
			m, err := e.Compile(ctx, b)
			if err != nil {
				stagesErr = fmt.Errorf("compile %s.wasm: %w", name, err)
				return
			}
			s.mods[name] = m
		}
		stagesVal = s
	})
	if stagesErr != nil {
		t.Fatal(stagesErr)
	}
	return stagesVal
}

// run runs one stage; exit is its exit status. A trap or any error other
// than an exit fails the test: a stage must never crash.
func (s *stages) run(t testing.TB, name string, stdin []byte, args ...string) (stdout, stderr []byte, exit uint32) {
	t.Helper()
	res, err := s.mods[name].CallIO(context.Background(), "_start", nil,
		engine.IO{Stdin: stdin, Args: append([]string{name}, args...)})
	var ee *engine.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exit = ee.Code
	default:
		t.Fatalf("%s crashed: %v (stderr %q)", name, err, res.Stderr)
	}
	if res.StdoutBytes > int64(len(res.Stdout)) {
		t.Fatalf("%s: %d bytes of output, over the limit", name, res.StdoutBytes)
	}
	return res.Stdout, res.Stderr, exit
}

// ok runs a stage that must succeed.
func (s *stages) ok(t testing.TB, name string, stdin []byte, args ...string) []byte {
	t.Helper()
	out, errb, exit := s.run(t, name, stdin, args...)
	if exit != 0 {
		t.Fatalf("%s: exit %d, stderr %q", name, exit, errb)
	}
	return out
}

// decision is decide's answer.
type decision struct {
	Phase   string         `json:"phase"`
	Lanes   []string       `json:"lanes"`
	Counts  []int          `json:"counts"`
	Waiting map[string]int `json:"waiting"`
	Reason  string         `json:"reason"`
}

// parseBlobs reads detect's output: the blobs as (area, sumx, sumy).
func parseBlobs(t *testing.T, out []byte) [][3]int64 {
	t.Helper()
	var bl [][3]int64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if f[0] != "blob" {
			continue
		}
		var v [3]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		bl = append(bl, v)
	}
	return bl
}

// wantPhase is decide's rule on the generator's truth.
func wantPhase(sc framegen.Scene, counts []int) string {
	var groups []string
	waiting := map[string]int{}
	for i, l := range sc.Lanes {
		if _, ok := waiting[l.Group]; !ok {
			groups = append(groups, l.Group)
		}
		waiting[l.Group] += counts[i]
	}
	best, tie := groups[0], false
	for _, g := range groups[1:] {
		switch {
		case waiting[g] > waiting[best]:
			best, tie = g, false
		case waiting[g] == waiting[best]:
			tie = true
		}
	}
	if tie {
		for _, g := range groups {
			if waiting[g] == waiting[best] && g+"_GREEN" == sc.Phase {
				return sc.Phase
			}
		}
	}
	return best + "_GREEN"
}

// TestPipelineTruth runs generated frames through the four stages and the
// fused module and checks every step against the generator's ground truth:
// decode against the Go decoder, each blob against a drawn vehicle, the
// counts against the truth, the phase against the rule, and the fused
// answer against the chain's, byte for byte.
func TestPipelineTruth(t *testing.T) {
	s := loadStages(t)
	for _, tc := range []struct {
		format string
		w, h   int
		camera int
		frames int
	}{
		{"pgm", 320, 240, 0, 12},
		{"ppm", 320, 240, 1, 6},
		{"pgm", 160, 120, 2, 12},
		{"ppm", 640, 480, 3, 3},
	} {
		cfg := framegen.DefaultConfig()
		cfg.Format, cfg.Width, cfg.Height = tc.format, tc.w, tc.h
		cam, err := framegen.NewCamera(cfg, tc.camera)
		if err != nil {
			t.Fatal(err)
		}
		counted := 0
		for range tc.frames {
			f := cam.Next()
			name := fmt.Sprintf("%s %dx%d camera %d frame %d", tc.format, tc.w, tc.h, tc.camera, f.Index)
			in := f.PNM()

			gray := s.ok(t, "decode", in)
			bg, fr, sc, err := framegen.DecodePair(in)
			if err != nil {
				t.Fatalf("%s: Go decoder: %v", name, err)
			}
			if want := framegen.EncodePGMPair(bg, fr, sc); !bytes.Equal(gray, want) {
				t.Fatalf("%s: decode wrote %d bytes that differ from the Go decoder's %d", name, len(gray), len(want))
			}

			blobsOut := s.ok(t, "detect", gray)
			var want [][3]int64
			for _, v := range f.Vehicles {
				if v.Area >= framegen.MinArea {
					want = append(want, [3]int64{v.Area, v.SumX, v.SumY})
				}
			}
			got := parseBlobs(t, blobsOut)
			if !sameSet(got, want) {
				t.Fatalf("%s: detect found blobs %v, want the vehicles %v", name, got, want)
			}

			countsOut := s.ok(t, "count", blobsOut)
			answer := s.ok(t, "decide", countsOut)
			var d decision
			if err := json.Unmarshal(answer, &d); err != nil {
				t.Fatalf("%s: decide answered %q: %v", name, answer, err)
			}
			if !reflect.DeepEqual(d.Counts, f.Counts) {
				t.Fatalf("%s: counts %v, want the truth %v", name, d.Counts, f.Counts)
			}
			if want := wantPhase(f.Scene, f.Counts); d.Phase != want || d.Reason == "" {
				t.Fatalf("%s: phase %q (%q), want %q", name, d.Phase, d.Reason, want)
			}
			if !reflect.DeepEqual(d.Lanes, []string{"N", "S", "E", "W"}) {
				t.Fatalf("%s: lanes %v", name, d.Lanes)
			}
			if fused := s.ok(t, "traffic", in); !bytes.Equal(fused, answer) {
				t.Fatalf("%s: fused answered %q, the chain %q", name, fused, answer)
			}
			for _, c := range d.Counts {
				counted += c
			}
		}
		if counted == 0 {
			t.Errorf("%s %dx%d camera %d: no vehicle in %d frames: the test saw nothing to count", tc.format, tc.w, tc.h, tc.camera, tc.frames)
		}
	}
}

func sameSet(a, b [][3]int64) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[[3]int64]int{}
	for _, v := range a {
		seen[v]++
	}
	for _, v := range b {
		if seen[v] == 0 {
			return false
		}
		seen[v]--
	}
	return true
}

// pnmCases are decoder inputs with their verdict, for the C decoder and the
// Go one alike.
var pnmCases = []struct {
	name, in string
	ok       bool
}{
	{"gray pair", "P5 2 1 255\n\x00\x01P5 2 1 255\n\x02\x03", true},
	{"colour pair", "P6 1 1 255\n\xff\x00\x00P6 1 1 255\n\x00\x00\xff", true},
	{"16-bit", "P5 1 1 65535\n\xff\xffP5 1 1 65535\n\x00\x00", true},
	{"mixed formats", "P5 1 1 255\n\x10P6 1 1 15\n\x01\x02\x03", true},
	{"comments everywhere", "P5#a\n1#b\n1\r#c\n255 \x00P5\n1 1\n255\n\x00", true},
	{"lane and phase", "P5\n# lane N NS 0 0 1 1\n# phase NS_GREEN\n1 1 255\n\x00P5 1 1 255\n\x00", true},
	{"other comment", "P5\n# CREATOR: GIMP lane x y z\n1 1 255\n\x00P5 1 1 255\n\x00", true},
	{"one image", "P5 1 1 255\n\x00", false},
	{"empty", "", false},
	{"plain PGM", "P2 1 1 255\n0\nP2 1 1 255\n0\n", false},
	{"not netpbm", "\x89PNG\r\n\x1a\n", false},
	{"zero width", "P5 0 1 255\n", false},
	{"width over max", "P5 4097 1 255\n", false},
	{"huge width digits", "P5 99999999999999999999 1 255\n", false},
	{"maxval 0", "P5 1 1 0\n\x00P5 1 1 0\n\x00", false},
	{"maxval over 65535", "P5 1 1 65536\n\x00\x00P5 1 1 65536\n\x00\x00", false},
	{"negative", "P5 -1 1 255\n", false},
	{"letter in number", "P5 1x 1 255\n", false},
	{"truncated raster", "P5 2 2 255\n\x00\x00\x00", false},
	{"truncated header", "P5 2 2", false},
	{"comment to end", "P5 2 # no end", false},
	{"comment after maxval", "P5 1 1 255#x\n\x00P5 1 1 255\n\x00", false},
	{"sample over maxval", "P5 1 1 10\n\x0bP5 1 1 10\n\x00", false},
	{"sizes differ", "P5 1 1 255\n\x00P5 2 1 255\n\x00\x00", false},
	{"trailing bytes", "P5 1 1 255\n\x00P5 1 1 255\n\x00\n", false},
	{"bad lane", "P5\n# lane N NS 0 0 0 1\n1 1 255\n\x00P5 1 1 255\n\x00", false},
	{"lane fields", "P5\n# lane N NS 0 0 1\n1 1 255\n\x00P5 1 1 255\n\x00", false},
	{"lane name", "P5\n# lane N! NS 0 0 1 1\n1 1 255\n\x00P5 1 1 255\n\x00", false},
	{"lane outside", "P5\n# lane N NS 0 0 2 1\n1 1 255\n\x00P5 1 1 255\n\x00", false},
	{"phase fields", "P5\n# phase A B\n1 1 255\n\x00P5 1 1 255\n\x00", false},
	{"too many lanes", "P5\n" + strings.Repeat("# lane N NS 0 0 1 1\n", 17) + "1 1 255\n\x00P5 1 1 255\n\x00", false},
}

// decodeMsg is a refusal's message: what was wrong, after the image it was
// in, never the context alone.
var decodeMsg = regexp.MustCompile(`^decode: ((background|frame) image: )?[^:\s][^\n]*[^\s:]\n$`)

// TestDecodeInputs holds the C decoder and the Go one (framegen.DecodePair)
// to one verdict per input. A refusal is exit status 1 with a message on
// stderr and nothing on stdout, never a trap.
func TestDecodeInputs(t *testing.T) {
	s := loadStages(t)
	for _, c := range pnmCases {
		t.Run(c.name, func(t *testing.T) {
			out, errb, exit := s.run(t, "decode", []byte(c.in))
			_, _, _, goErr := framegen.DecodePair([]byte(c.in))
			if (goErr == nil) != c.ok {
				t.Errorf("Go decoder: got error %v, want ok %v", goErr, c.ok)
			}
			if c.ok {
				if exit != 0 {
					t.Fatalf("decode: exit %d (%q), want 0", exit, errb)
				}
				return
			}
			if exit != 1 || !decodeMsg.Match(errb) || bytes.HasSuffix(errb, []byte(": \n")) || len(out) != 0 {
				t.Fatalf("decode: exit %d, stderr %q, stdout %d bytes; want exit 1, a message, no output", exit, errb, len(out))
			}
		})
	}
}

// TestStageErrors feeds each later stage input it must refuse.
func TestStageErrors(t *testing.T) {
	s := loadStages(t)
	pair := "P5\n# lane N NS 0 0 2 1\n2 1 255\n\x00\x00P5 2 1 255\n\xff\x00"
	for _, c := range []struct {
		stage, in string
		args      []string
		msg       string
	}{
		{"detect", pair, []string{"threshold=300"}, "want threshold=0..254"},
		{"detect", pair, []string{"min_area=0"}, "want min_area="},
		{"detect", pair, []string{"speed=1"}, "unknown argument"},
		{"traffic", pair, []string{"bogus"}, "unknown argument"},
		{"traffic", "P5 2 1 255\n\x00\x00P5 2 1 255\n\xff\x00", nil, "no lanes"},
		{"count", "", nil, "not a blob list"},
		{"count", "blobs 2 1\nlane N NS 0 0 2 1\nblob 1 0 0 0 0 3 1\n", nil, "outside"},
		{"count", "blobs 2 1\nlane N NS 0 0 2 1\nblob x\n", nil, "want blob AREA"},
		{"count", "blobs 2 1\nblob 1 0 0 0 0 1 1\n", nil, "no lanes"},
		{"count", "blobs 2 1\nlane N NS 0 0 3 1\n", nil, "outside"},
		{"count", "blobs 2 1\nlane N NS 0 0 0 1\n", nil, "line 2: bad lane N: want 0 <= X0 < X1"},
		{"decode", "P5 2 2 255\n\x00", nil, "decode: background image: truncated raster: 2x2 P5 needs 4 bytes, 1 left"},
		{"decode", "P5 1 1 255\n\x00P5 1 1 0\n", nil, "decode: frame image: maxval 0: want 1..65535"},
		{"decide", "counts\nphase A B\n", nil, "want count NAME GROUP N or phase NAME"},
		{"count", "blobs 2 1\n" + strings.Repeat("x", 200) + "\n", nil, "line over"},
		{"decide", "", nil, "not a count list"},
		{"decide", "counts\n", nil, "no counts"},
		{"decide", "counts\ncount N NS -1\n", nil, "want count NAME GROUP N"},
		{"decide", "counts\ncount N NS 1 2\n", nil, "want count NAME GROUP N"},
		{"decide", "counts\nphase A B\n", nil, "want count NAME GROUP N"},
		{"decide", "counts\ncount N NS 1\x00\n", nil, "NUL"},
	} {
		out, errb, exit := s.run(t, c.stage, []byte(c.in), c.args...)
		if exit != 1 || !strings.HasPrefix(string(errb), c.stage+": ") || !strings.Contains(string(errb), c.msg) || len(out) != 0 {
			t.Errorf("%s %q %v: exit %d, stderr %q, stdout %q; want exit 1 and a message with %q", c.stage, c.in, c.args, exit, errb, out, c.msg)
		}
	}
}

// TestStageFormats pins each hand-off format with small golden examples.
func TestStageFormats(t *testing.T) {
	s := loadStages(t)
	// A 4×3 frame: one 2×2 blob changed by 100 at the top left, one pixel
	// changed by 31 (over the threshold) and one by 30 (not over it).
	bg := "P5\n# lane L G 0 0 2 3\n# lane R G2 2 0 4 3\n# phase G2_GREEN\n4 3 255\n" + strings.Repeat("\x50", 12)
	frame := "P5 4 3 255\n" + "\xb4\xb4\x50\x50" + "\xb4\xb4\x50\x6f" + "\x50\x50\x50\x6e"
	gray := s.ok(t, "decode", []byte(bg+frame))
	if want := "P5\n# lane L G 0 0 2 3\n# lane R G2 2 0 4 3\n# phase G2_GREEN\n4 3\n255\n" + strings.Repeat("\x50", 12) +
		"P5\n4 3\n255\n" + frame[len("P5 4 3 255\n"):]; string(gray) != want {
		t.Fatalf("decode: got %q, want %q", gray, want)
	}
	if got := s.ok(t, "detect", gray); strings.Contains(string(got), "blob ") {
		t.Fatalf("detect: got %q, want no blob under the default min_area=12", got)
	}
	blobs := s.ok(t, "detect", gray, "min_area=4")
	if want := "blobs 4 3\nlane L G 0 0 2 3\nlane R G2 2 0 4 3\nphase G2_GREEN\nblob 4 2 2 0 0 2 2\n"; string(blobs) != want {
		t.Fatalf("detect: got %q, want %q", blobs, want)
	}
	if got := s.ok(t, "detect", gray, "min_area=1"); !strings.HasSuffix(string(got), "blob 4 2 2 0 0 2 2\nblob 1 3 1 3 1 4 2\n") {
		t.Fatalf("detect min_area=1: got %q, want the one-pixel blob too", got)
	}
	if got := s.ok(t, "detect", gray, "threshold=100", "min_area=1"); strings.Contains(string(got), "blob ") {
		t.Fatalf("detect threshold=100: got %q, want no blob (a change of exactly the threshold is no change)", got)
	}
	counts := s.ok(t, "count", blobs)
	if want := "counts\ncount L G 1\ncount R G2 0\nphase G2_GREEN\n"; string(counts) != want {
		t.Fatalf("count: got %q, want %q", counts, want)
	}
	for _, c := range []struct{ in, want string }{
		{string(counts), `{"phase":"G_GREEN","lanes":["L","R"],"counts":[1,0],"waiting":{"G":1,"G2":0},"reason":"G 1 waiting vs G2 0"}`},
		{"counts\ncount A NS 2\ncount B EW 2\nphase EW_GREEN\n", `{"phase":"EW_GREEN","lanes":["A","B"],"counts":[2,2],"waiting":{"NS":2,"EW":2},"reason":"tie at 2 waiting: EW_GREEN kept"}`},
		{"counts\ncount A NS 2\ncount B EW 2\n", `{"phase":"NS_GREEN","lanes":["A","B"],"counts":[2,2],"waiting":{"NS":2,"EW":2},"reason":"tie at 2 waiting: first group NS"}`},
		{"counts\ncount A NS 1\ncount B EW 3\ncount C NS 1\ncount D X 0\n", `{"phase":"EW_GREEN","lanes":["A","B","C","D"],"counts":[1,3,1,0],"waiting":{"NS":2,"EW":3,"X":0},"reason":"EW 3 waiting vs NS 2, X 0"}`},
	} {
		if got := s.ok(t, "decide", []byte(c.in)); string(got) != c.want+"\n" {
			t.Errorf("decide %q: got %s, want %s", c.in, got, c.want)
		}
	}
	if got := s.ok(t, "traffic", []byte(bg+frame), "min_area=4"); string(got) != `{"phase":"G_GREEN","lanes":["L","R"],"counts":[1,0],"waiting":{"G":1,"G2":0},"reason":"G 1 waiting vs G2 0"}`+"\n" {
		t.Errorf("traffic: got %s", got)
	}
}

// FuzzStageDecode holds the C decoder to the Go one on any input: both
// accept or both refuse, an accepted input decodes to the same bytes, and
// a refusal is a message and exit status 1, never a trap.
func FuzzStageDecode(f *testing.F) {
	for _, c := range pnmCases {
		f.Add([]byte(c.in))
	}
	s := loadStages(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, errb, exit := s.run(t, "decode", in)
		bg, fr, sc, err := framegen.DecodePair(in)
		if err != nil {
			if exit != 1 || !decodeMsg.Match(errb) || bytes.HasSuffix(errb, []byte(": \n")) || len(out) != 0 {
				t.Fatalf("Go refused (%v), C: exit %d, stderr %q, %d bytes out", err, exit, errb, len(out))
			}
			return
		}
		if exit != 0 {
			t.Fatalf("Go accepted, C: exit %d, stderr %q", exit, errb)
		}
		if want := framegen.EncodePGMPair(bg, fr, sc); !bytes.Equal(out, want) {
			t.Fatalf("C decoded to %q, Go to %q", out, want)
		}
	})
}
