package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

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
}

// What asked for a calibration (Calibration.Source).
const (
	calRegister   = "register"   // POST /register: authenticated when a token is set
	calTest       = "test"       // POST /test: likewise
	calCall       = "call"       // a /call's first use, when calls waited for one: in older state dirs
	calBackground = "background" // the background queue (calibqueue.go)
)

// sameCall reports whether c measured export with params.
func (c Calibration) sameCall(export string, params []string) bool {
	return c.Export == export && slices.Equal(c.Params, params)
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
		if !c.sameCall(cal.Export, cal.Params) {
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

// loadFrame is the frame that has a child compile m.
func (m *Module) loadFrame() *ipc.Load {
	return &ipc.Load{Name: m.Name, SHA256: m.SHA256, Wasm: m.wasm}
}

// MaxNameLen bounds a module name; it becomes a directory name.
const MaxNameLen = 128

// ValidName reports why name cannot be a module name, or nil. Names become
// directory names in the state dir, so anything that could leave it, hide
// it, or confuse a terminal is refused.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("module name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("module name is longer than %d bytes", MaxNameLen)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("module name %q starts with a dot", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("module name %q contains a path separator", name)
	}
	for _, r := range name {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("module name %q contains a control or space character", name)
		}
	}
	return nil
}

// store is the module registry, mirrored in <state-dir>/modules/<name>/:
//
//	module.wasm        the module's bytes, written once when it is registered
//	meta.json          name, sha256, size, exports, compile time; written once
//	calibrations.json  {"sha256", "calibrations": [...]}: the latest
//	                   calibration of each call measured, at most
//	                   maxCalibrations, replaced (atomically) after each one
//
// Each file is written atomically (writeAtomic). A registration writes
// module.wasm, then meta.json, so a crash between the two leaves a module
// that fails its sha256 check and is skipped. calibrations.json names the
// sha256 it belongs to and is ignored when that is not the module's, so
// calibrations never outlive the bytes they measured.
//
// Older versions kept the calibrations in meta.json, appended one per
// calibration, and rewrote module.wasm with each; openStore moves them to
// calibrations.json (written first, then meta.json without them).
//
// The store has its own lock because workers read it while starting.
type store struct {
	dir string
	wmu sync.Mutex // serialises the writes to dir, held across their fsyncs
	mu  sync.RWMutex
	m   map[string]*Module

	// hook, if not nil, is called before each step that changes the
	// state dir — op is "mkdir", "write", "sync", "rename" or "remove" —
	// and an error it returns is that step's. Tests inject failures and
	// crashes with it; nil in the daemon.
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

// openStore loads every module under dir. A module that cannot be loaded is
// skipped and reported in errs; the rest still load. A problem that does not
// stop a module loading (unreadable calibrations, a failed migration) is
// reported too.
func openStore(dir string) (st *store, errs []error) {
	st = &store{dir: filepath.Join(dir, "modules"), m: map[string]*Module{}}
	if err := os.MkdirAll(st.dir, 0o750); err != nil {
		return st, []error{fmt.Errorf("open module store: %w", err)}
	}
	names, err := st.moduleDirs()
	if err != nil {
		return st, []error{fmt.Errorf("open module store: %w", err)}
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
		st.addIfAbsent(m)
	}
	return st, errs
}

// moduleDirs lists the directories under the store that may hold a module:
// those with a valid module name.
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

// addIfAbsent makes m, loaded from disk, visible unless a module of that
// name is already, and reports whether it did.
func (st *store) addIfAbsent(m *Module) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.m[m.Name]; ok {
		return false
	}
	st.m[m.Name] = m
	return true
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
	m = &Module{}
	if err := json.Unmarshal(meta, m); err != nil {
		return nil, nil, fmt.Errorf("load module %s: meta.json: %w", name, err)
	}
	if m.wasm, err = os.ReadFile(filepath.Join(d, wasmFile)); err != nil {
		return nil, nil, fmt.Errorf("load module %s: %w", name, err)
	}
	if m.Name != name {
		return nil, nil, fmt.Errorf("load module %s: meta.json names module %q", name, m.Name)
	}
	if got := Sum(m.wasm); got != m.SHA256 {
		return nil, nil, fmt.Errorf("load module %s: module.wasm has sha256 %s, meta.json says %s", name, got, m.SHA256)
	}
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
			// Left by the module these bytes replaced (a crash between
			// the writes of a replacement): they measured other code.
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
	st.wmu.Lock()
	defer st.wmu.Unlock()
	d := filepath.Join(st.dir, m.Name)
	if err := st.writeCalibrations(d, m.SHA256, m.Calibrations); err != nil {
		return fmt.Errorf("migrate module %s: %w", m.Name, err)
	}
	if err := st.writeMeta(d, m); err != nil {
		return fmt.Errorf("migrate module %s: %w", m.Name, err)
	}
	m.legacy = false
	return nil
}

// writeMeta writes m's meta.json, without the calibrations.
func (st *store) writeMeta(dir string, m *Module) error {
	c := *m
	c.Calibrations = nil
	meta, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return err
	}
	return st.writeAtomic(filepath.Join(dir, metaFile), meta)
}

// writeCalibrations writes calibrations.json: compact, since it is
// rewritten after every calibration (jq reads it).
func (st *store) writeCalibrations(dir, sha string, list []Calibration) error {
	b, err := json.Marshal(calibrationRecords{SHA256: sha, Calibrations: list})
	if err != nil {
		return err
	}
	return st.writeAtomic(filepath.Join(dir, calibrationsFile), b)
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

// put persists a newly registered module — the previous calibrations
// file removed, then module.wasm, meta.json and m's calibrations, if any,
// each atomically — and then makes it visible. A crash in between leaves
// either the old module or none. Only a registration calls it: module.wasm
// and meta.json are written once per registered module, and a calibration
// goes through putCalibration.
func (st *store) put(m *Module) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	d := filepath.Join(st.dir, m.Name)
	if err := st.step("mkdir", d); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := os.MkdirAll(d, 0o750); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := st.remove1(filepath.Join(d, calibrationsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := st.writeAtomic(filepath.Join(d, wasmFile), m.wasm); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := st.writeMeta(d, m); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if len(m.Calibrations) > 0 {
		if err := st.writeCalibrations(d, m.SHA256, m.Calibrations); err != nil {
			return fmt.Errorf("store module %s: %w", m.Name, err)
		}
	}
	m.legacy = false
	st.mu.Lock()
	st.m[m.Name] = m
	st.mu.Unlock()
	return nil
}

// putCalibration adds cal to module name's calibrations (addCalibration),
// rewrites calibrations.json, and replaces the module in memory with a copy
// that has them. A module deleted, or replaced by other bytes than sha,
// is left alone and stored reports false.
func (st *store) putCalibration(name, sha string, cal Calibration) (stored bool, err error) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	cur, ok := st.get(name)
	if !ok || cur.SHA256 != sha {
		return false, nil
	}
	next := *cur
	next.Calibrations = addCalibration(cur.Calibrations, cal)
	d := filepath.Join(st.dir, name)
	if err := st.writeCalibrations(d, sha, next.Calibrations); err != nil {
		return false, fmt.Errorf("store calibration of %s: %w", name, err)
	}
	if cur.legacy {
		if err := st.writeMeta(d, &next); err != nil {
			return false, fmt.Errorf("store calibration of %s: %w", name, err)
		}
		next.legacy = false
	}
	st.mu.Lock()
	st.m[name] = &next // every writer holds wmu: still cur
	st.mu.Unlock()
	return true, nil
}

// remove deletes a module from disk and memory.
func (st *store) remove(name string) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	st.mu.Lock()
	delete(st.m, name)
	st.mu.Unlock()
	d := filepath.Join(st.dir, name)
	// Remove meta first: a half-removed module is then skipped at load.
	if err := st.remove1(filepath.Join(d, metaFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove module %s: %w", name, err)
	}
	if err := st.step("remove", d); err != nil {
		return fmt.Errorf("remove module %s: %w", name, err)
	}
	if err := os.RemoveAll(d); err != nil {
		return fmt.Errorf("remove module %s: %w", name, err)
	}
	return st.syncDir(st.dir)
}

// step asks the test hook, if any, whether the step op on path may go on.
func (st *store) step(op, path string) error {
	if st.hook == nil {
		return nil
	}
	return st.hook(op, path)
}

// remove1 removes one file.
func (st *store) remove1(path string) error {
	if err := st.step("remove", path); err != nil {
		return err
	}
	return os.Remove(path)
}

// writeAtomic writes data to path through a temporary file, fsync and
// rename, then syncs the directory so the rename survives a crash.
func (st *store) writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := st.step("write", path); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = st.step("rename", path)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return st.syncDir(dir)
}

func (st *store) syncDir(dir string) error {
	if err := st.step("sync", dir); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
