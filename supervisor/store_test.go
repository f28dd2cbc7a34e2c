package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hyper-sched/hyper-sched/wasmval"
)

func TestValidName(t *testing.T) {
	for _, name := range []string{"fib.wasm", "a", "detect-v2.wasm", "ünïcode.wasm", strings.Repeat("x", MaxNameLen),
		"v1.2_3-4+5@6~7=8,9.wasm", "caf\u00e9.wasm", "фиб", "фиб-2", "αβγ.1", "日本語.wasm", "ひらがなカタカナ漢字.wasm",
		"한국어.wasm", "中文注音ㄅ.wasm", "हिन्दी.wasm", "العربية.wasm", "עברית.wasm", "ελληνικά", "ქართული.wasm"} {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%+q): got %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".hidden", "a/b", `a\b`, "../etc/passwd", "a\x00b", "a\nb", "a b",
		"\xff", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidName(name); err == nil {
			t.Errorf("ValidName(%+q): got nil, want an error", name)
		}
	}
}

// TestValidNameHostile: names that look like another name, or hide what
// they are, are refused with an error that says why (issue 14 item 4).
func TestValidNameHostile(t *testing.T) {
	for _, tt := range []struct {
		name string
		want string // in the error
	}{
		{"fib\u202e.wasm", "U+202E"},                             // right-to-left override: "fib" + "msaw."
		{"fib\u202dx.wasm", "U+202D"},                            // left-to-right override
		{"fib\u2066x\u2069.wasm", "U+2066"},                      // isolates
		{"fib\u200b.wasm", "U+200B"},                             // zero-width space
		{"fib\u200c.wasm", "U+200C"},                             // zero-width non-joiner
		{"fib\u200d.wasm", "U+200D"},                             // zero-width joiner
		{"fib\u2060.wasm", "U+2060"},                             // word joiner
		{"fib\u00ad.wasm", "U+00AD"},                             // soft hyphen
		{"\ufefffib.wasm", "U+FEFF"},                             // byte order mark
		{"fib\U000e0041.wasm", "U+E0041"},                        // tag character
		{"fib\ufe0f.wasm", "U+FE0F"},                             // variation selector
		{"fib\u034f.wasm", "U+034F"},                             // combining grapheme joiner
		{"fib\u3164.wasm", "U+3164"},                             // Hangul filler: a letter that shows nothing
		{"fib\u115f.wasm", "U+115F"},                             // Hangul choseong filler
		{"fib\u0085.wasm", "U+0085"},                             // next line (C1 control)
		{"fib\u00a0.wasm", "U+00A0"},                             // no-break space
		{"fib\u3000.wasm", "U+3000"},                             // ideographic space
		{"fib\u2028.wasm", "U+2028"},                             // line separator
		{"fib\ue000.wasm", "U+E000"},                             // private use
		{"fib\U0010fffe.wasm", "U+10FFFE"},                       // noncharacter
		{"fib\u2215x.wasm", "U+2215"},                            // division slash, looks like /
		{"fib\u2044x.wasm", "U+2044"},                            // fraction slash
		{"fib\uff0fx.wasm", "U+FF0F"},                            // fullwidth solidus
		{"fib\u2024wasm", "U+2024"},                              // one dot leader, looks like .
		{"fib\u2010x.wasm", "U+2010"},                            // hyphen, looks like -
		{"fib\U0001f680.wasm", "U+1F680"},                        // emoji
		{"cafe\u0301.wasm", "NFC"},                               // NFD of café.wasm
		{"\u212b.wasm", "NFC"},                                   // angstrom sign: NFC is Å
		{"\uff46\uff49\uff42.wasm", "compatibility"},             // fullwidth fib
		{"\U0001d41f\U0001d422\U0001d41b.wasm", "compatibility"}, // mathematical bold fib
		{"\ufb01b.wasm", "compatibility"},                        // fi ligature
		{"fib\u00b2.wasm", "compatibility"},                      // superscript two
		{"f\u0456b.wasm", "Cyrillic"},                            // Cyrillic і in a Latin name
		{"\u0430\u0440\u0435.wasm", "Cyrillic"},                  // Cyrillic аре, looks like ape.wasm
		{"fib\u03bf.wasm", "Greek"},                              // Greek omicron
		{"fib\u13a0.wasm", "Cherokee"},                           // Cherokee Ꭰ, looks like D
		{"фиб\u03b1", "Cyrillic and Greek"},                      // two scripts, neither Latin
		{"עברית\u0627.wasm", "Arabic and Hebrew and Latin"},
		{"日本\u0430.wasm", "Cyrillic and Han and Latin"},
		{"\u0301fib.wasm", "starts with a combining mark"},
	} {
		err := ValidName(tt.name)
		if err == nil {
			t.Errorf("ValidName(%+q): got nil, want an error", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidName(%+q): got %q, want an error saying %q", tt.name, err, tt.want)
		}
		if strings.ContainsFunc(err.Error(), func(r rune) bool { return r >= utf8.RuneSelf }) {
			t.Errorf("ValidName(%+q): got %q, want an error in ASCII (it repeats the name escaped)", tt.name, err)
		}
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	m := &Module{Name: "m.wasm", SHA256: Sum(wasm), Size: len(wasm), Registered: time.Unix(1, 0).UTC(), wasm: wasm,
		Exports: []ExportInfo{{Name: "f", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{}}}}
	if err := st.put(m); err != nil {
		t.Fatal(err)
	}
	// Reopened, the module is back with its bytes.
	st2, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got, ok := st2.get("m.wasm")
	if !ok || got.SHA256 != m.SHA256 || len(got.Exports) != 1 {
		t.Fatalf("reloaded: got %+v, want %+v", got, m)
	}
	// Its bytes stay on disk, read when a child needs them.
	if b, err := got.wasmBytes(); got.wasm != nil || err != nil || string(b) != string(wasm) {
		t.Errorf("reloaded module's bytes: in memory %q; from disk %q, %v; want none in memory, %q from disk", got.wasm, b, err, wasm)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "modules", "m.wasm"))
	if len(ents) != 2 {
		t.Errorf("module dir has %d entries, want module.wasm and meta.json", len(ents))
	}
	// A corrupted module is skipped and reported; others still load.
	os.WriteFile(filepath.Join(dir, "modules", "m.wasm", "module.wasm"), []byte("changed"), 0o600)
	os.MkdirAll(filepath.Join(dir, "modules", "junk"), 0o750)
	st3, errs := openStore(dir)
	if len(errs) != 2 || st3.len() != 0 {
		t.Errorf("corrupt store: got %d errors and %d modules, want 2 and 0", len(errs), st3.len())
	}
	if err := st.remove("m.wasm"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules", "m.wasm")); !os.IsNotExist(err) {
		t.Errorf("after remove: got %v, want not exist", err)
	}
}

// testModule is a module with export f(i32) and its bytes.
func testModule(name, wasm string) *Module {
	return &Module{Name: name, SHA256: Sum([]byte(wasm)), Size: len(wasm), Registered: time.Unix(1, 0).UTC(), wasm: []byte(wasm),
		Exports: []ExportInfo{{Name: "f", Params: []wasmval.Type{wasmval.I32}, Results: []wasmval.Type{}}}}
}

// testCalibration is a calibration of f(i).
func testCalibration(i int, source string) Calibration {
	return Calibration{Export: "f", Source: source, Params: []string{strconv.Itoa(i)}, Runs: 100, MinNs: 1000,
		MedianNs: 2000, P99Ns: 3000, MaxNs: 4000, At: time.Unix(int64(1000+i), 0).UTC()}
}

// tmpfsDir is a temporary directory on tmpfs where there is one, so that
// tests making a thousand fsyncs stay quick; else t.TempDir.
func tmpfsDir(t *testing.T) string {
	d, err := os.MkdirTemp("/dev/shm", "hyper-sched-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fileID is what changes when a file is written: its inode, size, mtime.
type fileID struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func statID(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileID{fi.Sys().(*syscall.Stat_t).Ino, fi.Size(), fi.ModTime()}
}

// TestStoreCalibrationsApart checks that a calibration rewrites only
// calibrations.json: module.wasm and meta.json are written once.
func TestStoreCalibrationsApart(t *testing.T) {
	dir := tmpfsDir(t)
	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m := testModule("m.wasm", "\x00asm\x01\x00\x00\x00")
	if err := st.put(m); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "modules", "m.wasm")
	wasm0, meta0 := statID(t, filepath.Join(d, wasmFile)), statID(t, filepath.Join(d, metaFile))
	for i := range 200 {
		if ok, err := st.putCalibration("m.wasm", m.SHA256, testCalibration(i, calBackground)); !ok || err != nil {
			t.Fatalf("calibration %d: got %v %v", i, ok, err)
		}
	}
	if got := statID(t, filepath.Join(d, wasmFile)); got != wasm0 {
		t.Errorf("module.wasm after 200 calibrations: got %+v, want unchanged %+v", got, wasm0)
	}
	if got := statID(t, filepath.Join(d, metaFile)); got != meta0 {
		t.Errorf("meta.json after 200 calibrations: got %+v, want unchanged %+v", got, meta0)
	}
	if meta, _ := os.ReadFile(filepath.Join(d, metaFile)); strings.Contains(string(meta), "calibrations") {
		t.Errorf("meta.json holds calibrations:\n%s", meta)
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 3 {
		t.Errorf("module dir has %d entries, want module.wasm, meta.json and calibrations.json", len(ents))
	}
	// In memory and reloaded: the most recent maxCalibrations, oldest first.
	cur, _ := st.get("m.wasm")
	st2, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	re, _ := st2.get("m.wasm")
	for _, got := range [][]Calibration{cur.Calibrations, re.Calibrations} {
		if len(got) != maxCalibrations || got[0].Params[0] != strconv.Itoa(200-maxCalibrations) || got[len(got)-1].Params[0] != "199" {
			t.Fatalf("calibrations: got %d, from %v to %v; want %d, from %d to 199", len(got), got[0].Params, got[len(got)-1].Params, maxCalibrations, 200-maxCalibrations)
		}
	}
	// The same call again replaces its record.
	st2.putCalibration("m.wasm", m.SHA256, testCalibration(199, calTest))
	if re, _ := st2.get("m.wasm"); len(re.Calibrations) != maxCalibrations || re.Calibrations[maxCalibrations-1].Source != calTest {
		t.Errorf("recalibrated: got %d records, last %+v", len(re.Calibrations), re.Calibrations[len(re.Calibrations)-1])
	}
	// A module deleted or replaced is left alone.
	if ok, err := st2.putCalibration("m.wasm", Sum([]byte("other")), testCalibration(1, calCall)); ok || err != nil {
		t.Errorf("calibration of replaced bytes: got %v %v, want not stored", ok, err)
	}
	if err := st2.remove("m.wasm"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st2.putCalibration("m.wasm", m.SHA256, testCalibration(1, calCall)); ok || err != nil {
		t.Errorf("calibration of a deleted module: got %v %v, want not stored", ok, err)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Errorf("a calibration recreated the deleted module's dir: %v", err)
	}
}

// TestStoreCalibrationsBounded checks that calibrations.json stays bounded
// however many different calls are calibrated.
func TestStoreCalibrationsBounded(t *testing.T) {
	dir := tmpfsDir(t)
	st, _ := openStore(dir)
	m := testModule("m.wasm", "\x00asm\x01\x00\x00\x00")
	if err := st.put(m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "modules", "m.wasm", calibrationsFile)
	long := strings.Repeat("e", 10_000)
	var full int64
	for i := range 1000 {
		c := testCalibration(i, calBackground)
		c.Params = []string{strconv.Itoa(1_000_000_000 + i)}
		if i%8 == 0 {
			c.Err = long // cut to maxCalibrationErr
		}
		if _, err := st.putCalibration("m.wasm", m.SHA256, c); err != nil {
			t.Fatal(err)
		}
		if i == maxCalibrations-1 {
			full = statID(t, path).size
		}
	}
	size := statID(t, path).size
	if size > full || size > maxCalibrations*(maxCalibrationErr+1024) {
		t.Errorf("calibrations.json after 1000 calibrations: %d bytes, want at most %d (its size at %d records)", size, full, maxCalibrations)
	}
	var rec calibrationRecords
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Calibrations) != maxCalibrations || rec.SHA256 != m.SHA256 {
		t.Errorf("calibrations.json: %d records, sha256 %s, err %v; want %d records of %s", len(rec.Calibrations), rec.SHA256, err, maxCalibrations, m.SHA256)
	}
}

func TestAddCalibration(t *testing.T) {
	var list []Calibration
	// Pinned records (register, /test, older records without a source)
	// survive any number of calibrations any client can cause.
	for i, src := range []string{calRegister, calTest, ""} {
		list = addCalibration(list, testCalibration(i, src))
	}
	for i := 10; i < 1000; i++ {
		list = addCalibration(list, testCalibration(i, []string{calCall, calBackground}[i%2]))
	}
	if len(list) != maxCalibrations {
		t.Fatalf("got %d records, want %d", len(list), maxCalibrations)
	}
	for i, src := range []string{calRegister, calTest, ""} {
		if list[i].Source != src || list[i].Params[0] != strconv.Itoa(i) {
			t.Errorf("record %d: got %+v, want the %q one kept", i, list[i], src)
		}
	}
	if last := list[len(list)-1]; last.Params[0] != "999" {
		t.Errorf("last record: got %v, want the newest", last.Params)
	}
	// When every record is pinned, the oldest goes.
	list = nil
	for i := range maxCalibrations + 5 {
		list = addCalibration(list, testCalibration(i, calTest))
	}
	if len(list) != maxCalibrations || list[0].Params[0] != "5" {
		t.Errorf("all pinned: got %d records from %v, want %d from 5", len(list), list[0].Params, maxCalibrations)
	}
	// The same call replaces its record, and moves to the end.
	list = addCalibration(list, testCalibration(5, calBackground))
	if len(list) != maxCalibrations || list[0].Params[0] != "6" || list[len(list)-1].Params[0] != "5" {
		t.Errorf("recalibrated: got %d records from %v to %v", len(list), list[0].Params, list[len(list)-1].Params)
	}
	// A long error is cut, on a rune boundary.
	c := testCalibration(1, calCall)
	c.Err = strings.Repeat("é", maxCalibrationErr)
	list = addCalibration(nil, c)
	if e := list[0].Err; len(e) > maxCalibrationErr+len("…") || !utf8.ValidString(e) {
		t.Errorf("long error: got %d bytes, valid UTF-8 %v", len(e), utf8.ValidString(e))
	}
}

// TestStoreLegacyFormat loads a state dir written before calibrations.json:
// calibrations appended to meta.json. They are moved out, bounded.
func TestStoreLegacyFormat(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "modules", "old.wasm")
	os.MkdirAll(d, 0o750)
	wasm := "\x00asm\x01\x00\x00\x00"
	os.WriteFile(filepath.Join(d, wasmFile), []byte(wasm), 0o600)
	// meta.json as the previous version wrote it (json.MarshalIndent of
	// its Module), with 100 calibrations.
	var cals []string
	for i := range 100 {
		cals = append(cals, fmt.Sprintf(`    {
      "export": "f",
      "params": [
        "%d"
      ],
      "runs": 100,
      "min_ns": 1000,
      "median_ns": 2000,
      "p99_ns": %d,
      "max_ns": 4000,
      "instantiate_ns": 500,
      "compile_ns": 7000,
      "total_ns": 300000,
      "stable": true,
      "at": "2025-01-01T00:%02d:%02d.5Z"
    }`, i, 3000+i, i/60, i%60))
	}
	meta := fmt.Sprintf(`{
  "name": "old.wasm",
  "sha256": "%s",
  "size": %d,
  "registered": "2025-01-01T00:00:00Z",
  "exports": [
    {
      "name": "f",
      "params": [
        "i32"
      ],
      "results": []
    }
  ],
  "compile_ns": 7000,
  "calibrations": [
%s
  ]
}`, Sum([]byte(wasm)), len(wasm), strings.Join(cals, ",\n"))
	os.WriteFile(filepath.Join(d, metaFile), []byte(meta), 0o600)
	wasm0 := statID(t, filepath.Join(d, wasmFile))

	st, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m, ok := st.get("old.wasm")
	if !ok {
		t.Fatal("old-format module not loaded")
	}
	check := func(what string, m *Module) {
		t.Helper()
		if len(m.Calibrations) != maxCalibrations || m.Calibrations[0].Params[0] != strconv.Itoa(100-maxCalibrations) ||
			m.Calibrations[maxCalibrations-1].P99Ns != 3099 || len(m.Exports) != 1 || m.Exports[0].Params[0] != wasmval.I32 || m.legacy {
			t.Errorf("%s: got %d calibrations from %v, exports %+v, legacy %v", what, len(m.Calibrations), m.Calibrations[0].Params, m.Exports, m.legacy)
		}
	}
	check("migrated", m)
	if b, _ := os.ReadFile(filepath.Join(d, metaFile)); strings.Contains(string(b), "calibrations") {
		t.Errorf("meta.json after migration still holds calibrations")
	}
	if got := statID(t, filepath.Join(d, wasmFile)); got != wasm0 {
		t.Errorf("module.wasm rewritten by the migration")
	}
	st2, errs := openStore(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m2, _ := st2.get("old.wasm")
	check("reloaded", m2)

	// A Reload of an old-format module (load: no writes) migrates at its
	// next calibration.
	os.WriteFile(filepath.Join(d, metaFile), []byte(meta), 0o600)
	os.Remove(filepath.Join(d, calibrationsFile))
	st3 := &store{dir: filepath.Join(dir, "modules"), m: map[string]*Module{}}
	m3, err := st3.load("old.wasm")
	if err != nil || !m3.legacy || len(m3.Calibrations) != maxCalibrations {
		t.Fatalf("load: got %v, legacy %v, %d calibrations", err, m3.legacy, len(m3.Calibrations))
	}
	st3.addIfAbsent(m3)
	if _, err := st3.putCalibration("old.wasm", m3.SHA256, testCalibration(500, calTest)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, metaFile)); strings.Contains(string(b), "calibrations") {
		t.Errorf("meta.json after a calibration of a reloaded module still holds calibrations")
	}
	st4, _ := openStore(dir)
	if m4, _ := st4.get("old.wasm"); len(m4.Calibrations) != maxCalibrations || m4.Calibrations[maxCalibrations-1].Params[0] != "500" {
		t.Errorf("after a calibration of a reloaded module: got %d, last %v", len(m4.Calibrations), m4.Calibrations[len(m4.Calibrations)-1].Params)
	}
}

// TestStoreStaleCalibrations checks that calibrations never outlive the
// bytes they measured, and that unreadable ones do not stop a module.
func TestStoreStaleCalibrations(t *testing.T) {
	dir := t.TempDir()
	st, _ := openStore(dir)
	a := testModule("m.wasm", "\x00asm\x01\x00\x00\x00")
	st.put(a)
	st.putCalibration("m.wasm", a.SHA256, testCalibration(1, calRegister))
	path := filepath.Join(dir, "modules", "m.wasm", calibrationsFile)
	stale, _ := os.ReadFile(path)

	// Replaced by other bytes: their calibrations go.
	b := testModule("m.wasm", "\x00asm\x01\x00\x00\x00\x00")
	if err := st.put(b); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.get("m.wasm"); len(m.Calibrations) != 0 {
		t.Errorf("after replacement: got %d calibrations, want 0", len(m.Calibrations))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("calibrations.json after replacement: %v, want removed", err)
	}
	// A crash left the old bytes' calibrations.json: ignored.
	os.WriteFile(path, stale, 0o600)
	st2, errs := openStore(dir)
	if m, _ := st2.get("m.wasm"); len(errs) != 0 || m == nil || len(m.Calibrations) != 0 {
		t.Errorf("stale calibrations.json: got %v errors, module %+v; want loaded without calibrations", errs, m)
	}
	// Unreadable: reported, and the module still loads.
	os.WriteFile(path, []byte("{"), 0o600)
	st3, errs := openStore(dir)
	if m, _ := st3.get("m.wasm"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "calibrations skipped") || m == nil {
		t.Errorf("corrupt calibrations.json: got %v, module %v; want one warning and the module", errs, m)
	}
}

// A module directory whose name the rules refuse (they tightened since it
// was registered) is reported at start, not skipped without a word.
func TestOpenStoreReportsRefusedNames(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "modules", "a\u200bb.wasm")
	if err := os.MkdirAll(bad, 0o750); err != nil {
		t.Fatal(err)
	}
	_, errs := openStore(dir)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "is not loaded") {
		t.Fatalf("errs: %v, want the refused directory reported", errs)
	}
}
