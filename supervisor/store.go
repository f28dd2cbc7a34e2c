package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/hyper-sched/hyper-sched/httpapi"
	"github.com/hyper-sched/hyper-sched/ipc"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// Module is a registered module as the supervisor keeps it and persists it
// in the state dir. A *Module in the store is never modified: a new
// calibration replaces it with a copy.
type Module struct {
	Name       string       `json:"name"`
	SHA256     string       `json:"sha256"`
	Size       int          `json:"size"`
	Registered time.Time    `json:"registered"`
	Exports    []ExportInfo `json:"exports"`
	CompileNs  int64        `json:"compile_ns"` // cold compile in benchd at register
	// Calibrations are the latest calibration of each call measured, at
	// most maxCalibrations (addCalibration). They are shown by GET
	// /modules and kept in calibrations.json, not in meta.json, which
	// only state dirs written by older versions have them in.
	Calibrations []Calibration `json:"calibrations,omitempty"`

	// The module's bytes are not kept in memory — 50 modules of 30 MiB
	// held 1.5 GiB of the supervisor, and every record that pointed at a
	// deleted module kept its bytes too — but read from disk when a child
	// is to load them (wasmBytes): from spool, the upload's file, while
	// its register runs, then from dir, its directory in the store.
	spool, dir string
	// wasm, if not nil, holds the bytes in memory instead: tests.
	wasm []byte
	// legacy is set when meta.json still holds calibrations: it is
	// rewritten without them at the next chance (openStore, or the next
	// calibration of a module added by Reload).
	legacy bool
}

// ExportInfo is one exported function's signature. The types marshal as
// their wasm names ("i32"), in meta.json and GET /modules alike.
type ExportInfo struct {
	Name    string         `json:"name"`
	Params  []wasmval.Type `json:"params"`
	Results []wasmval.Type `json:"results"`
}

// Calibration is one measurement of a call by benchd.
type Calibration struct {
	Export        string    `json:"export"`
	Params        []string  `json:"params"`
	Runs          int       `json:"runs"`
	MinNs         int64     `json:"min_ns"`
	MedianNs      int64     `json:"median_ns"`
	P99Ns         int64     `json:"p99_ns"`
	MaxNs         int64     `json:"max_ns"`
	InstantiateNs int64     `json:"instantiate_ns"`
	CompileNs     int64     `json:"compile_ns"`
	TotalNs       int64     `json:"total_ns"`
	Stable        bool      `json:"stable"`
	At            time.Time `json:"at"`
	Err           string    `json:"error,omitempty"`
	// Source is what asked for it: calRegister, calTest, calCall or
	// calBackground; "" in records written before it existed. Last, so
	// the fields before it keep their order in JSON.
	Source string `json:"source,omitempty"`
	// Input is the digest of the input it was measured with (callInput
	// digest: stdin, argv, environment); "" for a call without input, as
	// in records written before it existed.
	Input string `json:"input_digest,omitempty"`
}

// What asked for a calibration (Calibration.Source).
const (
	calRegister   = "register"   // POST /register: authenticated when a token is set
	calTest       = "test"       // POST /test: likewise
	calCall       = "call"       // a /call's first use, when calls waited for one: in older state dirs
	calBackground = "background" // the background queue (calibqueue.go)
)

// sameCall reports whether c measured export with params and input.
func (c Calibration) sameCall(export string, params []string, input string) bool {
	return c.Export == export && slices.Equal(c.Params, params) && c.Input == input
}

// pinned reports whether c was asked for by an operator (register, /test,
// or a record older than Source), so that calibrations any client can
// cause are evicted first.
func (c Calibration) pinned() bool {
	return c.Source == calRegister || c.Source == calTest || c.Source == ""
}

// Bounds of a module's calibration records.
const (
	// maxCalibrations bounds the records kept per module, in memory and
	// in calibrations.json. With maxParams params of at most 20 digits
	// and a cut error, a record is under 2.5 KiB plus its export's name,
	// so the file stays under ~160 KiB plus 64 export names.
	maxCalibrations = 64
	// maxCalibrationErr bounds a record's error text.
	maxCalibrationErr = 512
)

// addCalibration returns list with cal added: it replaces the record of
// the same call, and beyond maxCalibrations the oldest record is evicted —
// the oldest not pinned while there is one, so clients that need no token
// cannot push out what register and /test measured. list is not modified;
// the order is oldest first.
func addCalibration(list []Calibration, cal Calibration) []Calibration {
	if len(cal.Err) > maxCalibrationErr {
		cal.Err = strings.ToValidUTF8(cal.Err[:maxCalibrationErr], "") + "…"
	}
	out := make([]Calibration, 0, min(len(list)+1, maxCalibrations+1))
	for _, c := range list {
		if !c.sameCall(cal.Export, cal.Params, cal.Input) {
			out = append(out, c)
		}
	}
	out = append(out, cal)
	for len(out) > maxCalibrations {
		i := evictee(out)
		out = slices.Delete(out, i, i+1)
	}
	return out
}

// evictee is the index of the record to evict: the oldest unpinned one,
// else the oldest. The list is in the order the records were made (the
// previous version kept that order too), which a clock step cannot upset.
func evictee(list []Calibration) int {
	for i, c := range list {
		if !c.pinned() {
			return i
		}
	}
	return 0
}

// export returns the named export.
func (m *Module) export(name string) (ExportInfo, bool) {
	for _, e := range m.Exports {
		if e.Name == name {
			return e, true
		}
	}
	return ExportInfo{}, false
}

// loadFrame is the frame that has a child compile m, with its bytes read
// from disk (wasmBytes).
func (m *Module) loadFrame() (*ipc.Load, error) {
	b, err := m.wasmBytes()
	if err != nil {
		return nil, err
	}
	return &ipc.Load{Name: m.Name, SHA256: m.SHA256, Wasm: b}, nil
}

// wasmBytes reads m's bytes: from the upload's spool file while its
// register runs, else from m's directory in the store. They must have m's
// size and sha256: a version replaced or deleted since m was taken is
// never sent in its place. Hashing costs ~1 ms per MiB read, far less than
// the compile the bytes are read for.
func (m *Module) wasmBytes() ([]byte, error) {
	if m.wasm != nil {
		return m.wasm, nil
	}
	var errs []error
	for _, p := range []string{m.spool, m.wasmPath()} {
		if p == "" {
			continue
		}
		b, err := readSized(p, int64(m.Size))
		if err == nil && Sum(b) != m.SHA256 {
			err = fmt.Errorf("%s holds other bytes than sha256 %s: a version that replaced it, or changed by hand", p, m.SHA256)
		}
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	switch len(errs) {
	case 0:
		return nil, fmt.Errorf("read module %s: no file holds its bytes", m.Name)
	case 1:
		return nil, fmt.Errorf("read module %s: %w", m.Name, errs[0])
	}
	return nil, fmt.Errorf("read module %s: %w; %w", m.Name, errs[0], errs[1])
}

// wasmPath is module.wasm in m's directory in the store, or "".
func (m *Module) wasmPath() string {
	if m.dir == "" {
		return ""
	}
	return filepath.Join(m.dir, wasmFile)
}

// readSized reads the file at path if it has size bytes: a file of
// another size is not read.
func readSized(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != size {
		return nil, fmt.Errorf("%s has %d bytes, not %d", path, fi.Size(), size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// hashFile returns the sha256 and size of the file at path, read in
// small pieces.
func hashFile(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if size, err = io.Copy(h, f); err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// MaxNameLen bounds a module name; it becomes a directory name.
const MaxNameLen = 128

// ValidName reports why name cannot be a module name, or nil. Names become
// directory names in the state dir, so anything that could leave it, hide
// it, or confuse a terminal is refused; and since anyone reading a name
// trusts what they see, so is whatever lets two names look alike:
//
//   - control and format characters (Unicode Cc, Cf: bidi overrides,
//     zero-width spaces and joiners, the BOM, tags), spaces and separators
//     (Z*), private use, surrogates, unassigned code points, and every
//     other default-ignorable one (variation selectors, the combining
//     grapheme joiner, Hangul fillers);
//   - a name not in Unicode NFC: the NFC and NFD forms of "café" would be
//     two modules that look the same. The error names the NFC form;
//   - beyond ASCII, anything but letters, marks and digits: U+2215 looks
//     like '/', U+2024 like '.';
//   - compatibility characters (a name NFKC changes): fullwidth and
//     mathematical letters, ligatures, superscripts;
//   - letters of scripts that are not used together (UTS #39's
//     "moderately restrictive" level): a Cyrillic 'а' in a Latin name.
//     Latin goes with Han and Japanese kana, Bopomofo or Hangul, or with
//     any one other script but Cyrillic, Greek and Cherokee, whose letters
//     look like Latin ones: "हिन्दी.wasm" is a name, "фиб.wasm" is not.
//
// # Notes
//
// A name written wholly in another script that looks like a Latin one
// ("аре"), or a look-alike from a script allowed beside Latin, needs UTS
// #39's confusables data to be caught; module names mostly end in ".wasm",
// which is Latin, so a Cyrillic or Greek look-alike shows.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("module name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("module name is longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("module name %+q is not valid UTF-8", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("module name %q starts with a dot", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("module name %q contains a path separator", name)
	}
	scripts := map[string]bool{}
	for i, r := range name {
		if r < utf8.RuneSelf {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("module name %+q contains a control or space character", name)
			}
			if unicode.IsLetter(r) {
				scripts["Latin"] = true
			}
			continue
		}
		switch {
		case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Z, unicode.Variation_Selector,
			unicode.Other_Default_Ignorable_Code_Point) || r == utf8.RuneError:
			return fmt.Errorf("module name %+q contains %U, an invisible, control, format or space character "+
				"(bidi overrides, zero-width characters and the like are refused)", name, r)
		case !unicode.In(r, unicode.L, unicode.M, unicode.N):
			return fmt.Errorf("module name %+q contains %U: beyond ASCII a module name holds only letters, marks and digits "+
				"(punctuation and symbols such as U+2215, which looks like '/', are refused)", name, r)
		case i == 0 && unicode.Is(unicode.M, r):
			return fmt.Errorf("module name %+q starts with a combining mark (%U)", name, r)
		}
		if sc := scriptOf(r); sc != "" {
			scripts[sc] = true
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Errorf("module name %+q is not in Unicode NFC, the one form a name is registered in: register it as %+q", name, norm.NFC.String(name))
	}
	if k := norm.NFKC.String(name); k != name {
		return fmt.Errorf("module name %+q contains compatibility characters that look like %+q: register it as that", name, k)
	}
	if mixed := mixedScripts(scripts); mixed != "" {
		return fmt.Errorf("module name %+q mixes letters of the scripts %s, which can make it look like another name", name, mixed)
	}
	return nil
}

// scriptOf returns the Unicode script of r, "" for Common and Inherited
// (digits, punctuation, combining marks), which go with any script.
func scriptOf(r rune) string {
	for name, table := range unicode.Scripts {
		if name != "Common" && name != "Inherited" && unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

// scriptSets are the sets of scripts a name may mix beside Latin with one
// other script (UTS #39 §5.2): those written together in Chinese, Japanese
// and Korean.
var scriptSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// latinLookalikes are the scripts whose letters are taken for Latin ones:
// they may not be mixed with Latin (UTS #39 §5.2, moderately restrictive).
var latinLookalikes = []string{"Cyrillic", "Greek", "Cherokee"}

// mixedScripts returns the scripts of scripts, sorted and joined, when
// they may not go together in one name; "" when they may.
func mixedScripts(scripts map[string]bool) string {
	if len(scripts) <= 1 {
		return ""
	}
	if len(scripts) == 2 && scripts["Latin"] {
		for sc := range scripts {
			if sc != "Latin" && !slices.Contains(latinLookalikes, sc) {
				return ""
			}
		}
	}
	for _, set := range scriptSets {
		all := true
		for sc := range scripts {
			all = all && slices.Contains(set, sc)
		}
		if all {
			return ""
		}
	}
	names := make([]string, 0, len(scripts))
	for sc := range scripts {
		names = append(names, sc)
	}
	slices.Sort(names)
	return strings.Join(names, " and ")
}

// store is the module registry, mirrored in <state-dir>/modules/<name>/:
//
//	module.wasm        the module's bytes
//	meta.json          name, sha256, size, exports, compile time
//	calibrations.json  {"sha256", "calibrations": [...]}: the latest
//	                   calibration of each call measured, at most
//	                   maxCalibrations, replaced (atomically) after each one
//
// What is in memory is what is on disk: every change is made on disk
// first, and in memory only once it is there (storetx.go).
//
//   - A module version is written whole into a fresh directory beside the
//     modules (.new.<n>.<name>), synced, and swapped in with one rename
//     (renameat2 RENAME_EXCHANGE when replacing); the replaced version is
//     removed afterwards. A crash leaves the old version or the new, whole;
//     openStore removes or restores what a crash left beside them.
//   - A delete renames the module's directory to .del.<n>.<name> and only
//     then drops it from memory; the rename failing leaves it served.
//   - calibrations.json is replaced atomically (writeAtomic); it names the
//     sha256 it belongs to and is ignored when that is not the module's,
//     so calibrations never outlive the bytes they measured.
//
// Registers, deletes and calibration saves of one name are serialised by
// that name's lock (lock), held across their disk steps, so they apply in
// one order on disk, in memory and, for the supervisor, on the workers.
// Other names go on meanwhile. mu guards only the map: readers never wait
// for a disk.
//
// Older versions kept the calibrations in meta.json, appended one per
// calibration, and rewrote module.wasm with each; openStore moves them to
// calibrations.json (written first, then meta.json without them).
type store struct {
	dir   string
	locks nameLocks
	// uploads is the spool of register forms, <state-dir>/uploads, beside
	// the modules so that a stored version can be a hard link to its
	// upload; openStore empties it.
	uploads string

	mu      sync.RWMutex
	m       map[string]*Module
	pending int // new names reserved by registers not yet committed (reserve)

	// hook, if not nil, is called before each step that changes the
	// state dir — op is "mkdir", "write", "sync", "rename", "exchange" or
	// "remove" — and an error it returns is that step's; and, with op
	// "lockwait" and a module name as path, when a writer has to wait for
	// that name's lock. Tests inject failures and crashes with it, and see
	// who waits; nil in the daemon.
	hook func(op, path string) error
}

// File names in a module's directory.
const (
	wasmFile         = "module.wasm"
	metaFile         = "meta.json"
	calibrationsFile = "calibrations.json"
)

// calibrationRecords is calibrations.json.
type calibrationRecords struct {
	SHA256       string        `json:"sha256"`
	Calibrations []Calibration `json:"calibrations"`
}

// openStore loads every module under dir, after putting right what a crash
// in the middle of a change left (repair). A module that cannot be loaded is
// skipped and reported in errs; the rest still load. A problem that does not
// stop a module loading (unreadable calibrations, a failed migration, a
// leftover that could not be removed) is reported too.
func openStore(dir string) (st *store, errs []error) {
	st = &store{dir: filepath.Join(dir, "modules"), uploads: filepath.Join(dir, "uploads"), m: map[string]*Module{}}
	if err := os.MkdirAll(st.dir, 0o750); err != nil {
		return st, []error{fmt.Errorf("open module store: %w", err)}
	}
	// Uploads left by a crash belong to no request.
	if err := os.RemoveAll(st.uploads); err != nil {
		errs = append(errs, fmt.Errorf("open module store: empty the upload spool: %w", err))
	}
	if err := os.MkdirAll(st.uploads, 0o700); err != nil {
		errs = append(errs, fmt.Errorf("open module store: %w", err))
	}
	errs = append(errs, st.repair()...)
	errs = append(errs, st.refusedDirs()...)
	names, err := st.moduleDirs()
	if err != nil {
		return st, append(errs, fmt.Errorf("open module store: %w", err))
	}
	for _, name := range names {
		m, warn, err := st.loadModule(name)
		if warn != nil {
			errs = append(errs, warn)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.legacy {
			if err := st.migrate(m); err != nil {
				errs = append(errs, err)
			}
		}
		st.m[m.Name] = m // nobody else has st yet
	}
	return st, errs
}

// refusedDirs reports the directories under the store that are not loaded
// because their names are not valid module names (any more: the rules
// tightened), so that such a module does not vanish without a word.
func (st *store) refusedDirs() (errs []error) {
	ents, _ := os.ReadDir(st.dir)
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if err := ValidName(e.Name()); err != nil {
				errs = append(errs, fmt.Errorf("module directory %q is not loaded: %v; register it again under a valid name", e.Name(), err))
			}
		}
	}
	return errs
}

// moduleDirs lists the directories under the store that may hold a module:
// those with a valid module name. The directories of changes in progress
// start with a dot, which no module name does.
func (st *store) moduleDirs() ([]string, error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// addIfAbsent makes m, loaded from disk by load, visible unless a module of
// that name already is, or its directory no longer holds m — deleted or
// replaced since load read it — and reports whether it did.
func (st *store) addIfAbsent(m *Module) bool {
	unlock, _ := st.lock(context.Background(), m.Name)
	defer unlock()
	if _, ok := st.get(m.Name); ok {
		return false
	}
	if sha, err := st.diskSHA(m.Name); err != nil || sha != m.SHA256 {
		return false
	}
	st.mu.Lock()
	st.m[m.Name] = m
	st.mu.Unlock()
	return true
}

// diskSHA is the sha256 that module name's meta.json records.
func (st *store) diskSHA(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(st.dir, name, metaFile))
	if err != nil {
		return "", err
	}
	var meta struct {
		SHA256 string `json:"sha256"`
	}
	err = json.Unmarshal(b, &meta)
	return meta.SHA256, err
}

// load reads one module from disk without writing anything; see
// loadModule.
func (st *store) load(name string) (*Module, error) {
	m, _, err := st.loadModule(name)
	return m, err
}

// loadModule reads one module: its bytes, meta.json, and its calibrations,
// from calibrations.json or, in a state dir written by an older version,
// from meta.json (then m.legacy is set). warn reports what was skipped
// while the module still loads: calibrations that cannot be read.
func (st *store) loadModule(name string) (m *Module, warn, err error) {
	d := filepath.Join(st.dir, name)
	meta, err := os.ReadFile(filepath.Join(d, metaFile))
	if err != nil {
		return nil, nil, fmt.Errorf("load module %s: %w", name, err)
	}
	m = &Module{dir: d}
	if err := json.Unmarshal(meta, m); err != nil {
		return nil, nil, fmt.Errorf("load module %s: meta.json: %w", name, err)
	}
	if m.Name != name {
		return nil, nil, fmt.Errorf("load module %s: meta.json names module %q", name, m.Name)
	}
	got, size, err := hashFile(filepath.Join(d, wasmFile))
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("load module %s: %w", name, err)
	case got != m.SHA256:
		return nil, nil, fmt.Errorf("load module %s: module.wasm has sha256 %s, meta.json says %s", name, got, m.SHA256)
	}
	m.Size = int(size) // the bytes are the sha256's: theirs is the size
	m.legacy = len(m.Calibrations) > 0
	b, err := os.ReadFile(filepath.Join(d, calibrationsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// none yet, or an older state dir: meta.json's, if any
	case err != nil:
		warn = fmt.Errorf("load module %s: calibrations skipped: %w", name, err)
	default:
		var rec calibrationRecords
		switch err := json.Unmarshal(b, &rec); {
		case err != nil:
			warn = fmt.Errorf("load module %s: calibrations skipped: %s: %w", name, calibrationsFile, err)
		case rec.SHA256 != m.SHA256:
			// Left by bytes these replaced, in a state dir written by a
			// version that replaced the files one by one: they measured
			// other code.
			m.Calibrations = nil
		default:
			m.Calibrations = rec.Calibrations
		}
	}
	var list []Calibration
	for _, c := range m.Calibrations {
		list = addCalibration(list, c)
	}
	m.Calibrations = list
	return m, warn, nil
}

// migrate moves a legacy module's calibrations from meta.json to
// calibrations.json (written first: a crash in between leaves them in
// both, and calibrations.json wins). m is not in the store yet.
func (st *store) migrate(m *Module) error {
	d := filepath.Join(st.dir, m.Name)
	if _, err := st.writeCalibrations(d, m.SHA256, m.Calibrations); err != nil {
		return fmt.Errorf("migrate module %s: %w", m.Name, err)
	}
	if err := st.writeMeta(d, m); err != nil {
		return fmt.Errorf("migrate module %s: %w", m.Name, err)
	}
	m.legacy = false
	return nil
}

// metaJSON is m's meta.json: m without the calibrations.
func metaJSON(m *Module) ([]byte, error) {
	c := *m
	c.Calibrations = nil
	return json.MarshalIndent(&c, "", "  ")
}

// calibrationsJSON is calibrations.json: compact, since it is rewritten
// after every calibration (jq reads it).
func calibrationsJSON(sha string, list []Calibration) ([]byte, error) {
	return json.Marshal(calibrationRecords{SHA256: sha, Calibrations: list})
}

// writeMeta replaces m's meta.json in dir.
func (st *store) writeMeta(dir string, m *Module) error {
	meta, err := metaJSON(m)
	if err != nil {
		return err
	}
	_, err = st.writeAtomic(filepath.Join(dir, metaFile), meta)
	return err
}

// writeCalibrations replaces calibrations.json in dir; renamed is
// writeAtomic's.
func (st *store) writeCalibrations(dir, sha string, list []Calibration) (renamed bool, err error) {
	b, err := calibrationsJSON(sha, list)
	if err != nil {
		return false, err
	}
	return st.writeAtomic(filepath.Join(dir, calibrationsFile), b)
}

// moduleDir is module name's directory.
func (st *store) moduleDir(name string) string {
	return filepath.Join(st.dir, name)
}

// spoolAll writes the uploads of spec that came with their bytes in memory
// (Upload.Wasm: tests, and callers of Register other than the HTTP API) to
// the spool, as the HTTP API writes a form's files, and returns spec with
// them there. unspool removes what it wrote; it may be called more than
// once.
func (st *store) spoolAll(spec httpapi.RegisterSpec) (out httpapi.RegisterSpec, unspool func(), err error) {
	var files []string
	unspool = func() {
		for _, f := range files {
			os.Remove(f)
		}
		files = nil
	}
	out = spec
	out.Modules = slices.Clone(spec.Modules)
	for i, up := range out.Modules {
		if up.Wasm == nil {
			continue
		}
		f, err := os.CreateTemp(st.uploads, "upload-*.wasm")
		if err != nil {
			return out, unspool, fmt.Errorf("spool module %s: %w", up.Name, err)
		}
		files = append(files, f.Name())
		_, err = f.Write(up.Wasm)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return out, unspool, fmt.Errorf("spool module %s: %w", up.Name, err)
		}
		out.Modules[i] = httpapi.Upload{Name: up.Name, File: f.Name(), Size: int64(len(up.Wasm)), SHA256: Sum(up.Wasm)}
	}
	return out, unspool, nil
}

// Sum is the hex sha256 of wasm.
func Sum(wasm []byte) string {
	h := sha256.Sum256(wasm)
	return hex.EncodeToString(h[:])
}

func (st *store) get(name string) (*Module, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	m, ok := st.m[name]
	return m, ok
}

// all returns the modules sorted by name.
func (st *store) all() []*Module {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]*Module, 0, len(st.m))
	for _, m := range st.m {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Module) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (st *store) len() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.m)
}

// reserve counts n modules about to be added against max, and reports
// whether they fit. Registers of different names hold different locks:
// without it, several could each see room for one more. release gives the
// reservation back once the register is committed or has failed.
func (st *store) reserve(n, max int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m)+st.pending+n > max {
		return false
	}
	st.pending += n
	return true
}

// release ends a reservation of n modules.
func (st *store) release(n int) {
	st.mu.Lock()
	st.pending -= n
	st.mu.Unlock()
}

// put registers m alone, replacing any module of its name, and removes
// the version it replaced; an error means m is not registered.
// Supervisor.Register commits its own versions (commit) to install them on
// the workers before they are final.
func (st *store) put(m *Module) error {
	unlock, err := st.lock(context.Background(), m.Name)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := st.commit([]*Module{m})
	if err != nil {
		return err
	}
	c.finish() // a leftover at worst, which openStore removes
	return nil
}

// putCalibration adds cal to module name's calibrations (addCalibration),
// rewrites calibrations.json, and replaces the module in memory with a copy
// that has them. A module deleted, or replaced by other bytes than sha,
// is left alone and stored reports false: it holds name's lock, so the
// module in memory is the one on disk, and the file is written into its
// directory, never into one it creates.
func (st *store) putCalibration(name, sha string, cal Calibration) (stored bool, err error) {
	unlock, err := st.lock(context.Background(), name)
	if err != nil {
		return false, err
	}
	defer unlock()
	cur, ok := st.get(name)
	if !ok || cur.SHA256 != sha {
		return false, nil
	}
	next := *cur
	next.Calibrations = addCalibration(cur.Calibrations, cal)
	d := filepath.Join(st.dir, name)
	renamed, err := st.writeCalibrations(d, sha, next.Calibrations)
	if !renamed {
		return false, fmt.Errorf("store calibration of %s: %w", name, err)
	}
	// Renamed into place: memory follows the disk, even if the directory
	// could not be synced.
	if err == nil && cur.legacy {
		if err = st.writeMeta(d, &next); err == nil {
			next.legacy = false
		}
	}
	st.mu.Lock()
	st.m[name] = &next
	st.mu.Unlock()
	if err != nil {
		return true, fmt.Errorf("store calibration of %s: %w", name, err)
	}
	return true, nil
}

// remove deletes module name from disk and memory (moveAside, purge); an
// error means it is still there.
func (st *store) remove(name string) error {
	unlock, err := st.lock(context.Background(), name)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := st.get(name); !ok {
		return nil
	}
	trash, err := st.moveAside(name)
	if err != nil {
		return err
	}
	st.purge(trash) // a leftover at worst, which openStore removes
	return nil
}
