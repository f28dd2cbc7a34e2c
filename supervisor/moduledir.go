package supervisor

// --module-dir: a read-only directory of .wasm files that the node keeps
// registered, one module per file named as the file (DESIGN.md §5b). A
// fleet ships the same directory to every node (a Kubernetes ConfigMap or
// volume, an rsync target) and each node compiles and calibrates the
// modules on its own hardware.
//
// The directory is scanned every Config.ModuleDirInterval and at once on
// SIGHUP. A file is loaded once its size, mtime and inode have stayed the
// same over two scans (a file still being copied in is left until it
// settles) and removed once it has been absent from two. Polling, not
// inotify: it sees every way a directory changes — a ConfigMap's atomic
// symlink swap, rsync's rename, NFS and other network file systems where
// inotify sees nothing — for a readdir and a stat per file per scan, and it
// debounces by construction (docs/RATIONALE.md, "Why does --module-dir poll
// instead of using inotify?").
//
// The names it registered are its own: POST /register and DELETE
// /modules/NAME refuse them with a 409 that says to change the file, and
// they are kept in <state-dir>/module-dir.json so that a file removed while
// the daemon was down is unregistered at the next start. A file that
// cannot be loaded is logged once per change of the file, and shown in
// /status (module_dir.errors) and /metrics until it loads or goes; a
// version that loaded before keeps being served meanwhile.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/httpapi"
)

// moduleDirState is the file in the state dir that lists the modules the
// directory registered, with their sha256.
const moduleDirState = "module-dir.json"

// fileStat identifies one version of a file for the scans: any write, a
// replacement or a rename over it changes one of these.
type fileStat struct {
	Size  int64
	MTime int64 // ns
	Dev   uint64
	Ino   uint64
}

// dirScan is one look at the directory: the .wasm files by module name,
// and the entries that cannot be modules, with why.
type dirScan struct {
	files map[string]fileStat
	bad   map[string]string
}

// dirPlan is what a scan changes.
type dirPlan struct {
	Load   []string // settled files not yet tried in this version
	Remove []string // registered from the dir, absent from two scans
}

// planDir decides what a scan does, from the previous scan, this one, the
// version of each file last tried (loaded or failed), and the names the
// directory registered. A file is loaded once it is the same in both scans
// and not the version last tried; a name is removed once it is in neither
// scan. force (SIGHUP, the first scan at start) takes this scan as settled
// and tries every file again, so a failure that was not the file's fault
// (benchd restarting) is retried by a SIGHUP.
func planDir(prev, cur dirScan, tried map[string]fileStat, owned map[string]string, force bool) dirPlan {
	var p dirPlan
	for name, st := range cur.files {
		settled := force
		if before, ok := prev.files[name]; ok && before == st {
			settled = true
		}
		if t, ok := tried[name]; settled && (force || !ok || t != st) {
			p.Load = append(p.Load, name)
		}
	}
	for name := range owned {
		if _, ok := cur.files[name]; ok {
			continue
		}
		if _, ok := prev.files[name]; ok && !force {
			continue // gone for one scan: a file being replaced by rm and cp
		}
		p.Remove = append(p.Remove, name)
	}
	slices.Sort(p.Load)
	slices.Sort(p.Remove)
	return p
}

// scanDir lists dir: every regular file (or symlink to one: a ConfigMap's
// files are) named *.wasm that is a valid module name. Names starting with
// a dot are skipped, as rsync's and editors' temporary files and a
// ConfigMap's ..data are.
func scanDir(dir string) (dirScan, error) {
	sc := dirScan{files: map[string]fileStat{}, bad: map[string]string{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return sc, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".wasm") {
			continue
		}
		if err := ValidName(name); err != nil {
			sc.bad[name] = err.Error()
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			sc.bad[name] = cutPathErr(err).Error()
			continue
		}
		if !fi.Mode().IsRegular() {
			sc.bad[name] = "not a regular file"
			continue
		}
		st := fileStat{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.Dev, st.Ino = uint64(sys.Dev), sys.Ino
		}
		sc.files[name] = st
	}
	return sc, nil
}

// ModuleDirStatus is module_dir in /status.
type ModuleDirStatus struct {
	Dir      string           `json:"dir"`
	Modules  []string         `json:"modules"`          // registered from it
	Errors   []ModuleDirError `json:"errors,omitempty"` // files not loaded
	Scans    uint64           `json:"scans"`
	LastScan time.Time        `json:"last_scan,omitzero"`
	Loaded   bool             `json:"loaded"` // the first scan at start is done
}

// ModuleDirError is a file of the module dir that is not loaded. Serving
// is the sha256 of an older version still served, if any.
type ModuleDirError struct {
	File    string    `json:"file"`
	Error   string    `json:"error"`
	Since   time.Time `json:"since"`
	Serving string    `json:"serving_sha256,omitempty"`
}

// moduleDir keeps Config.ModuleDir registered. Its lock guards its maps;
// scans run one at a time, in run.
type moduleDir struct {
	s     *Supervisor
	dir   string
	every time.Duration
	poke  chan struct{} // SIGHUP: scan now, forced

	mu       sync.Mutex
	owned    map[string]string // name → sha256 registered from the dir
	claiming map[string]bool   // being registered by a scan: HTTP is refused already
	tried    map[string]fileStat
	errs     map[string]ModuleDirError
	prev     dirScan
	scans    uint64
	last     time.Time
	loaded   bool
	failures prometheus.Counter
}

func newModuleDir(s *Supervisor) *moduleDir {
	md := &moduleDir{s: s, dir: s.cfg.ModuleDir, every: s.cfg.ModuleDirInterval, poke: make(chan struct{}, 1),
		owned: map[string]string{}, claiming: map[string]bool{}, tried: map[string]fileStat{},
		errs: map[string]ModuleDirError{}}
	b, err := os.ReadFile(filepath.Join(s.cfg.StateDir, moduleDirState))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		s.log.Error("module dir: read the names it registered; modules removed from it while stopped stay registered", "err", err)
	default:
		if err := json.Unmarshal(b, &md.owned); err != nil {
			s.log.Error("module dir: "+moduleDirState+" is not valid; modules removed from it while stopped stay registered", "err", err)
		}
	}
	md.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hyper_sched_module_dir_load_failures_total", Help: "Files of --module-dir that failed to load, counted once per version of the file.",
	})
	s.met.reg.MustRegister(md.failures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hyper_sched_module_dir_files_failing", Help: "Files of --module-dir not loaded now (their errors are in /status, module_dir.errors).",
		}, func() float64 { md.mu.Lock(); defer md.mu.Unlock(); return float64(len(md.errs)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hyper_sched_module_dir_modules", Help: "Modules registered from --module-dir.",
		}, func() float64 { md.mu.Lock(); defer md.mu.Unlock(); return float64(len(md.owned)) }))
	return md
}

// moduleDirCtx marks the registers and deletes of the module dir, which
// alone may change its names.
type moduleDirCtx struct{}

// refuse is the 409 for a name the module dir owns, or nil.
func (md *moduleDir) refuse(name, what string) error {
	if md == nil {
		return nil
	}
	md.mu.Lock()
	_, owned := md.owned[name]
	owned = owned || md.claiming[name]
	md.mu.Unlock()
	if !owned {
		return nil
	}
	return apierr.New(apierr.Conflict, "module %q comes from --module-dir %s and cannot be %s over HTTP: change or remove the file %s there",
		name, md.dir, what, name)
}

// refuseForm is refuse for every module of a register form, unless the
// module dir itself registers it.
func (md *moduleDir) refuseForm(ctx context.Context, spec httpapi.RegisterSpec) error {
	if md == nil || ctx.Value(moduleDirCtx{}) != nil {
		return nil
	}
	for _, up := range spec.Modules {
		if err := md.refuse(up.Name, "replaced"); err != nil {
			return err
		}
	}
	return nil
}

// source names where a module comes from, for /modules.
func (md *moduleDir) source(name string) string {
	if md != nil {
		md.mu.Lock()
		defer md.mu.Unlock()
		if _, ok := md.owned[name]; ok {
			return "module-dir"
		}
	}
	return "http"
}

// ready reports whether the first scan is done, for /healthz: a node is
// not sent calls before the modules every node is meant to have.
func (md *moduleDir) ready() bool {
	if md == nil {
		return true
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	return md.loaded
}

// request asks for a forced scan (SIGHUP).
func (md *moduleDir) request() {
	if md == nil {
		return
	}
	select {
	case md.poke <- struct{}{}:
	default: // one is pending already
	}
}

// run scans until ctx ends: at once (forced), then every md.every and on
// request.
func (md *moduleDir) run(ctx context.Context) {
	tick := time.NewTicker(md.every)
	defer tick.Stop()
	force := true
	for {
		md.scan(ctx, force)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			force = false
		case <-md.poke:
			force = true
		}
	}
}

// scan looks at the directory once and applies the plan.
func (md *moduleDir) scan(ctx context.Context, force bool) {
	log := md.s.log.With("module_dir", md.dir)
	cur, err := scanDir(md.dir)
	md.mu.Lock()
	md.scans++
	md.last = time.Now().UTC()
	if err != nil {
		// Nothing is removed on a directory that cannot be read (an
		// unmounted volume): that would empty the node.
		first := md.errs[""].Error != err.Error()
		md.errs[""] = ModuleDirError{File: "", Error: err.Error(), Since: md.last}
		md.mu.Unlock()
		if first {
			md.failures.Inc()
			log.Error("module dir: read the directory; its modules stay as they are", "err", err)
		}
		md.setLoaded()
		return
	}
	delete(md.errs, "")
	// A module replaced behind the dir's back (a register that began
	// before the dir claimed the name) is loaded from its file again.
	for name, sha := range md.owned {
		if m, ok := md.s.store.get(name); !ok || m.SHA256 != sha {
			delete(md.tried, name)
		}
	}
	plan := planDir(md.prev, cur, md.tried, md.owned, force)
	md.prev = cur
	for name, why := range cur.bad {
		if e, ok := md.errs[name]; !ok || e.Error != why {
			md.errs[name] = ModuleDirError{File: name, Error: why, Since: md.last, Serving: md.owned[name]}
			md.failures.Inc()
			log.Error("module dir: file not loaded", "file", name, "err", why)
		}
	}
	for name := range md.errs {
		_, isFile := cur.files[name]
		if _, isBad := cur.bad[name]; name != "" && !isFile && !isBad {
			delete(md.errs, name) // the file went
		}
	}
	md.mu.Unlock()

	for _, name := range plan.Load {
		if ctx.Err() != nil {
			return
		}
		md.load(ctx, log, name, cur.files[name])
	}
	for _, name := range plan.Remove {
		if _, bad := cur.bad[name]; bad {
			continue // still there, but not loadable: its last version stays
		}
		err := md.s.deleteModule(name)
		if err != nil && apierr.CodeOf(err) != apierr.InvalidWasmName {
			log.Error("module dir: unregister a removed file's module; retried at the next scan", "module", name, "err", err)
			continue
		}
		log.Info("module dir: unregistered the module of a removed file", "module", name)
		md.mu.Lock()
		delete(md.owned, name)
		delete(md.tried, name)
		md.mu.Unlock()
		md.save(log)
	}
	md.setLoaded()
}

// setLoaded marks the first scan done, and wakes startNotify, whose
// READY=1 waits for it.
func (md *moduleDir) setLoaded() {
	md.mu.Lock()
	first := !md.loaded
	md.loaded = true
	md.mu.Unlock()
	if first {
		md.s.mu.Lock()
		md.s.broadcast()
		md.s.mu.Unlock()
	}
}

// load registers one file of the directory, unless the module of that
// name already has its bytes.
func (md *moduleDir) load(ctx context.Context, log interface {
	Info(string, ...any)
	Error(string, ...any)
}, name string, st fileStat) {
	sha, err := md.register(ctx, name, st)
	md.mu.Lock()
	md.tried[name] = st
	if err != nil {
		if transient(err) {
			delete(md.tried, name) // not the file's fault: the next scan tries again
		}
		e, had := md.errs[name]
		if had && e.Error == err.Error() {
			md.mu.Unlock()
			return // the same failure: logged and counted once
		}
		md.errs[name] = ModuleDirError{File: name, Error: err.Error(), Since: time.Now().UTC(), Serving: md.owned[name]}
		md.mu.Unlock()
		md.failures.Inc()
		if transient(err) {
			log.Error("module dir: file not loaded; retried at the next scan", "file", name, "err", err)
		} else {
			log.Error("module dir: file not loaded; retried when it changes or on SIGHUP", "file", name, "err", err)
		}
		return
	}
	delete(md.errs, name)
	changed := md.owned[name] != sha
	md.owned[name] = sha
	md.mu.Unlock()
	if changed {
		log.Info("module dir: registered", "module", name, "sha256", sha[:12])
		md.save(log)
	}
}

// transient reports a failure that is not the file's: benchd or a lane
// lost or restarting, the daemon stopping, a disk error.
func transient(err error) bool {
	switch apierr.CodeOf(err) {
	case apierr.WorkerLost, apierr.Unschedulable, apierr.ShuttingDown, apierr.Internal:
		return true
	}
	return false
}

// register reads the file and registers its bytes under its name,
// replacing what is registered under it. It returns their sha256.
func (md *moduleDir) register(ctx context.Context, name string, st fileStat) (string, error) {
	if st.Size > md.s.cfg.MaxUpload {
		return "", fmt.Errorf("%d bytes, over the largest module accepted (--max-upload %d)", st.Size, md.s.cfg.MaxUpload)
	}
	f, err := os.Open(filepath.Join(md.dir, name))
	if err != nil {
		return "", cutPathErr(err)
	}
	wasm, err := io.ReadAll(io.LimitReader(f, md.s.cfg.MaxUpload+1))
	f.Close()
	if err != nil {
		return "", cutPathErr(err)
	}
	if int64(len(wasm)) > md.s.cfg.MaxUpload {
		return "", fmt.Errorf("over the largest module accepted (--max-upload %d)", md.s.cfg.MaxUpload)
	}
	sha := Sum(wasm)
	if m, ok := md.s.store.get(name); ok && m.SHA256 == sha {
		return sha, nil // registered already: at start, or a touch
	}
	md.mu.Lock()
	md.claiming[name] = true
	md.mu.Unlock()
	defer func() {
		md.mu.Lock()
		delete(md.claiming, name)
		md.mu.Unlock()
	}()
	_, err = md.s.Register(context.WithValue(ctx, moduleDirCtx{}, true), httpapi.RegisterSpec{
		Modules: []httpapi.Upload{{Name: name, Wasm: wasm, Size: int64(len(wasm)), SHA256: sha}}, Replace: true})
	if err != nil {
		return "", err
	}
	return sha, nil
}

// save writes the names the directory registered, atomically and synced
// (store.writeAtomic).
func (md *moduleDir) save(log interface{ Error(string, ...any) }) {
	md.mu.Lock()
	b, err := json.Marshal(maps.Clone(md.owned))
	md.mu.Unlock()
	if err == nil {
		_, err = md.s.store.writeAtomic(filepath.Join(md.s.cfg.StateDir, moduleDirState), b)
	}
	if err != nil {
		log.Error("module dir: save the names it registered; a file removed while the daemon is stopped may stay registered", "err", err)
	}
}

// status is module_dir in /status.
func (md *moduleDir) status() *ModuleDirStatus {
	if md == nil {
		return nil
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	out := &ModuleDirStatus{Dir: md.dir, Modules: slices.Sorted(maps.Keys(md.owned)), Scans: md.scans,
		LastScan: md.last, Loaded: md.loaded}
	for _, name := range slices.Sorted(maps.Keys(md.errs)) {
		out.Errors = append(out.Errors, md.errs[name])
	}
	return out
}
