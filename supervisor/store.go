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
// in the state dir.
type Module struct {
	Name         string        `json:"name"`
	SHA256       string        `json:"sha256"`
	Size         int           `json:"size"`
	Registered   time.Time     `json:"registered"`
	Exports      []ExportInfo  `json:"exports"`
	CompileNs    int64         `json:"compile_ns"` // cold compile in benchd at register
	Calibrations []Calibration `json:"calibrations,omitempty"`

	wasm []byte
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
}

// sameCall reports whether c measured export with params.
func (c Calibration) sameCall(export string, params []string) bool {
	return c.Export == export && slices.Equal(c.Params, params)
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

// store is the module registry, mirrored in <state-dir>/modules/<name>/.
// It has its own lock because workers read it while starting.
type store struct {
	dir string
	mu  sync.RWMutex
	m   map[string]*Module
}

// openStore loads every module under dir. A module that cannot be loaded is
// skipped and reported in errs; the rest still load.
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
		m, err := st.load(name)
		if err != nil {
			errs = append(errs, err)
			continue
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

func (st *store) load(name string) (*Module, error) {
	d := filepath.Join(st.dir, name)
	meta, err := os.ReadFile(filepath.Join(d, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("load module %s: %w", name, err)
	}
	var m Module
	if err := json.Unmarshal(meta, &m); err != nil {
		return nil, fmt.Errorf("load module %s: meta.json: %w", name, err)
	}
	if m.wasm, err = os.ReadFile(filepath.Join(d, "module.wasm")); err != nil {
		return nil, fmt.Errorf("load module %s: %w", name, err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("load module %s: meta.json names module %q", name, m.Name)
	}
	if got := Sum(m.wasm); got != m.SHA256 {
		return nil, fmt.Errorf("load module %s: module.wasm has sha256 %s, meta.json says %s", name, got, m.SHA256)
	}
	return &m, nil
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

// put persists m (wasm first, meta last, each atomically) and then makes it
// visible. A crash in between leaves either the old module or none.
func (st *store) put(m *Module) error {
	d := filepath.Join(st.dir, m.Name)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	meta, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := writeAtomic(filepath.Join(d, "module.wasm"), m.wasm); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	if err := writeAtomic(filepath.Join(d, "meta.json"), meta); err != nil {
		return fmt.Errorf("store module %s: %w", m.Name, err)
	}
	st.mu.Lock()
	st.m[m.Name] = m
	st.mu.Unlock()
	return nil
}

// remove deletes a module from disk and memory.
func (st *store) remove(name string) error {
	st.mu.Lock()
	delete(st.m, name)
	st.mu.Unlock()
	d := filepath.Join(st.dir, name)
	// Remove meta first: a half-removed module is then skipped at load.
	if err := os.Remove(filepath.Join(d, "meta.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove module %s: %w", name, err)
	}
	if err := os.RemoveAll(d); err != nil {
		return fmt.Errorf("remove module %s: %w", name, err)
	}
	return syncDir(st.dir)
}

// writeAtomic writes data to path through a temporary file, fsync and
// rename, then syncs the directory so the rename survives a crash.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
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
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
