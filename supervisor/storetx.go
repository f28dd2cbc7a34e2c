package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The directories beside the modules that a change in progress uses, named
// <prefix><n>.<module name>. They start with a dot, which no module name
// does (ValidName), so they are never taken for modules; openStore removes
// them, or puts an aside version back (repair).
const (
	stagePrefix = ".new." // a version being written; after its swap, the version it replaced
	asidePrefix = ".old." // a version moved aside by a swap done with renames
	trashPrefix = ".del." // a deleted module, until it is removed
)

// version is one module version of a register.
type version struct {
	m   *Module
	old *Module // the version in memory it replaces; nil for a new name
	// staged is the directory m was written to. Once swapped, it holds
	// what the module's directory held before: the replaced version, or
	// nothing for a new name.
	staged  string
	swapped bool
}

// commit is the versions of one register, committed together.
type commit struct {
	st *store
	vs []*version
}

// commit makes ms, new versions of modules whose names' locks the caller
// holds, the store's, all or none: each is written whole into a staged
// directory, then each is swapped in, then memory follows. On a failure
// the versions swapped already are put back (abort) and the error
// returned. The replaced versions stay beside until finish, or revert puts
// them back.
func (st *store) commit(ms []*Module) (*commit, error) {
	c := &commit{st: st}
	for _, m := range ms {
		old, _ := st.get(m.Name)
		dir, err := st.stage(m)
		if err != nil {
			c.discard()
			return nil, fmt.Errorf("store module %s: %w", m.Name, err)
		}
		c.vs = append(c.vs, &version{m: m, old: old, staged: dir})
	}
	for _, v := range c.vs {
		if err := st.swapIn(v); err != nil {
			return nil, c.abort(fmt.Errorf("store module %s: %w", v.m.Name, err))
		}
	}
	st.mu.Lock()
	for _, v := range c.vs {
		v.m.legacy = false
		st.m[v.m.Name] = v.m
	}
	st.mu.Unlock()
	return c, nil
}

// stuckError is a failed commit whose undoing failed too: the versions in
// stuck stay committed, on disk and in memory alike.
type stuckError struct {
	err   error
	stuck []*Module
}

func (e *stuckError) Error() string {
	names := make([]string, len(e.stuck))
	for i, m := range e.stuck {
		names[i] = m.Name
	}
	return fmt.Sprintf("%v; %s could not be put back and stay at the new version", e.err, strings.Join(names, ", "))
}

func (e *stuckError) Unwrap() error { return e.err }

// abort undoes a failed commit: the swapped versions are put back, the
// last first, and the staged directories removed. It returns err, with
// what could not be undone (a *stuckError).
func (c *commit) abort(err error) error {
	var stuck []*Module
	for i := len(c.vs) - 1; i >= 0; i-- {
		v := c.vs[i]
		if rerr := c.revert(v); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if v.swapped {
			stuck = append(stuck, v.m)
		}
	}
	c.discard()
	if stuck != nil {
		return &stuckError{err: err, stuck: stuck}
	}
	return err
}

// revert puts v's previous version back, on disk and then in memory (none,
// for a new name). A version that does not go back stays at the new one,
// in memory too, and v.swapped stays set.
func (c *commit) revert(v *version) error {
	if !v.swapped {
		return nil
	}
	name := v.m.Name
	if err := c.st.swap(v.staged, filepath.Join(c.st.dir, name)); err != nil {
		c.st.mu.Lock()
		c.st.m[name] = v.m
		c.st.mu.Unlock()
		return fmt.Errorf("put module %s back: %w", name, err)
	}
	v.swapped = false
	c.st.mu.Lock()
	if v.old != nil {
		c.st.m[name] = v.old
	} else {
		delete(c.st.m, name)
	}
	c.st.mu.Unlock()
	if err := c.st.syncDir(c.st.dir); err != nil {
		return fmt.Errorf("put module %s back: %w", name, err)
	}
	return nil
}

// finish removes the replaced versions, and the new ones reverted: the
// commit is over. An error is only a leftover, which openStore removes.
func (c *commit) finish() error {
	return c.discard()
}

// discard removes the staged directories: new versions never swapped in,
// or the versions that swapped ones replaced.
func (c *commit) discard() error {
	var errs []error
	for _, v := range c.vs {
		if err := c.st.removeAll(v.staged); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stage writes m whole into a fresh directory beside the modules, synced,
// and returns it.
func (st *store) stage(m *Module) (dir string, err error) {
	meta, err := metaJSON(m)
	if err != nil {
		return "", err
	}
	type file struct {
		name string
		data []byte
	}
	files := []file{{metaFile, meta}}
	if len(m.Calibrations) > 0 {
		b, err := calibrationsJSON(m.SHA256, m.Calibrations)
		if err != nil {
			return "", err
		}
		files = append(files, file{calibrationsFile, b})
	}
	dir, err = st.mkdirBeside(stagePrefix, m.Name)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			st.removeAll(dir)
		}
	}()
	if err := st.writeWasm(filepath.Join(dir, wasmFile), m); err != nil {
		return "", err
	}
	for _, f := range files {
		if err := st.writeNew(filepath.Join(dir, f.name), f.data); err != nil {
			return "", err
		}
	}
	return dir, st.syncDir(dir)
}

// writeWasm creates path with m's bytes, synced: a hard link to the
// upload's spool file, which holds them already (the spool is beside the
// modules), else a copy, checked against m's sha256 on the way. The bytes
// never pass through memory whole.
func (st *store) writeWasm(path string, m *Module) error {
	if m.wasm != nil {
		return st.writeNew(path, m.wasm)
	}
	if err := st.step("write", path); err != nil {
		return err
	}
	src := m.spool
	if src == "" {
		src = m.wasmPath()
	}
	if src == "" {
		return fmt.Errorf("module %s has no file to store", m.Name)
	}
	if err := os.Link(src, path); err == nil {
		return syncFile(path)
	}
	return copyChecked(src, path, m)
}

// syncFile syncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyChecked copies src to a new file at dst, synced, and fails unless
// what it copied has m's sha256.
func copyChecked(src, dst string, m *Module) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		err = fmt.Errorf("%s holds other bytes than sha256 %s", src, m.SHA256)
	}
	return err
}

// swapIn swaps v's staged directory with its module's and syncs the store
// directory, so that the swap survives a crash.
func (st *store) swapIn(v *version) error {
	if err := st.swap(v.staged, filepath.Join(st.dir, v.m.Name)); err != nil {
		return err
	}
	v.swapped = true
	return st.syncDir(st.dir)
}

// swap exchanges the directories staged and live in one step (renameat2
// RENAME_EXCHANGE): after it, live holds what staged held and staged what
// live held, and at no moment is live missing. When one of them is missing
// (a new module, or undoing one), it is one rename. A file system without
// RENAME_EXCHANGE gets swapByRenames.
func (st *store) swap(staged, live string) error {
	err := st.step("exchange", live)
	if err == nil {
		if err = unix.Renameat2(unix.AT_FDCWD, staged, unix.AT_FDCWD, live, unix.RENAME_EXCHANGE); err != nil {
			err = &os.LinkError{Op: "exchange", Old: staged, New: live, Err: err}
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return st.move(staged, live)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return st.swapByRenames(staged, live)
	}
	return err
}

// move renames whichever of a and b exists to the other.
func (st *store) move(a, b string) error {
	if _, err := os.Lstat(a); errors.Is(err, fs.ErrNotExist) {
		a, b = b, a
	}
	return st.rename(a, b)
}

// swapByRenames is swap in three renames: live aside, staged to live, the
// aside to staged. A crash after the first leaves no live directory and
// the previous version aside, which openStore puts back.
func (st *store) swapByRenames(staged, live string) error {
	for _, p := range []string{staged, live} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return st.move(staged, live)
		}
	}
	aside, err := st.mkdirBeside(asidePrefix, filepath.Base(live))
	if err != nil {
		return err
	}
	if err := st.rename(live, aside); err != nil {
		st.removeAll(aside)
		return err
	}
	if err := st.rename(staged, live); err != nil {
		return errors.Join(err, st.rename(aside, live))
	}
	if err := st.rename(aside, staged); err != nil {
		// Undone, so that the caller's view — not swapped — holds.
		return errors.Join(err, st.rename(live, staged), st.rename(aside, live))
	}
	return nil
}

// moveAside takes module name out of the store, on disk first: its
// directory is renamed to a trash directory beside, synced, and only then
// is the module dropped from memory. It returns the trash directory for
// purge. A step that fails leaves the module where it was, on disk and in
// memory. The caller holds name's lock.
func (st *store) moveAside(name string) (trash string, err error) {
	live := filepath.Join(st.dir, name)
	if trash, err = st.mkdirBeside(trashPrefix, name); err != nil {
		return "", err
	}
	err = st.rename(live, trash)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Gone from disk already (by hand): memory follows.
		st.removeAll(trash)
		trash = ""
	case err != nil:
		st.removeAll(trash)
		return "", err
	}
	if err := st.syncDir(st.dir); err != nil && trash != "" {
		if rerr := st.rename(trash, live); rerr == nil {
			return "", err
		}
		// It cannot go back: it is deleted, though a crash might undo that.
	}
	st.mu.Lock()
	delete(st.m, name)
	st.mu.Unlock()
	return trash, nil
}

// purge removes a deleted module's trash directory, if any. An error is
// only a leftover, which openStore removes.
func (st *store) purge(trash string) error {
	if trash == "" {
		return nil
	}
	return st.removeAll(trash)
}

// repair puts right what a crash in the middle of a change left beside
// the modules: staged versions and trash are removed, and a version that
// a swap had moved aside goes back when nothing took its place. Temporary
// files of writeAtomic are removed too. Nothing else is touched; errs are
// the leftovers that could not be put right.
func (st *store) repair() (errs []error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		return []error{fmt.Errorf("open module store: %w", err)}
	}
	for _, e := range ents {
		prefix, name, ok := cutBeside(e.Name())
		if !ok {
			continue
		}
		p := filepath.Join(st.dir, e.Name())
		if prefix == asidePrefix {
			live := filepath.Join(st.dir, name)
			if _, err := os.Lstat(live); errors.Is(err, fs.ErrNotExist) {
				if err := st.rename(p, live); err != nil {
					errs = append(errs, fmt.Errorf("restore module %s: %w", name, err))
				}
				continue
			}
		}
		if err := st.removeAll(p); err != nil {
			errs = append(errs, fmt.Errorf("open module store: %w", err))
		}
	}
	names, _ := st.moduleDirs()
	for _, name := range names {
		files, _ := os.ReadDir(filepath.Join(st.dir, name))
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".tmp-") {
				if err := st.removeFile(filepath.Join(st.dir, name, f.Name())); err != nil {
					errs = append(errs, fmt.Errorf("open module store: %w", err))
				}
			}
		}
	}
	if err := st.syncDir(st.dir); err != nil {
		errs = append(errs, fmt.Errorf("open module store: %w", err))
	}
	return errs
}

// cutBeside splits the name of a directory beside the modules into its
// prefix and module name.
func cutBeside(entry string) (prefix, name string, ok bool) {
	for _, prefix := range []string{stagePrefix, asidePrefix, trashPrefix} {
		rest, ok := strings.CutPrefix(entry, prefix)
		if !ok {
			continue
		}
		n, name, ok := strings.Cut(rest, ".")
		if !ok || n == "" || strings.Trim(n, "0123456789") != "" || ValidName(name) != nil {
			return "", "", false
		}
		return prefix, name, true
	}
	return "", "", false
}

// mkdirBeside makes a fresh directory beside the modules for a change of
// module name.
func (st *store) mkdirBeside(prefix, name string) (string, error) {
	for {
		p := filepath.Join(st.dir, fmt.Sprintf("%s%d.%s", prefix, rand.Uint32(), name))
		err := st.step("mkdir", p)
		if err == nil {
			err = os.Mkdir(p, 0o750)
		}
		if !errors.Is(err, fs.ErrExist) {
			return p, err
		}
	}
}

// step asks the test hook, if any, whether the step op on path may go on.
func (st *store) step(op, path string) error {
	if st.hook == nil {
		return nil
	}
	return st.hook(op, path)
}

// writeNew creates path with data, synced.
func (st *store) writeNew(path string, data []byte) error {
	if err := st.step("write", path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic replaces path with data: a temporary file beside it, written
// and synced, renamed over it, then the directory synced so that the
// rename survives a crash. It never creates the directory. renamed reports
// whether path now holds data: true with an error when only the last sync
// failed, so that the caller's memory can follow what the disk holds.
func (st *store) writeAtomic(path string, data []byte) (renamed bool, err error) {
	dir := filepath.Dir(path)
	if err := st.step("write", path); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return false, err
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
		err = st.rename(tmp, path)
	}
	if err != nil {
		st.removeFile(tmp)
		return false, err
	}
	return true, st.syncDir(dir)
}

// rename is rename(2), which os.Rename is not: a directory may replace an
// empty one, the way mkdirBeside reserves a name for it.
func (st *store) rename(from, to string) error {
	if err := st.step("rename", to); err != nil {
		return err
	}
	if err := unix.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

func (st *store) removeFile(path string) error {
	if err := st.step("remove", path); err != nil {
		return err
	}
	return os.Remove(path)
}

func (st *store) removeAll(path string) error {
	if err := st.step("remove", path); err != nil {
		return err
	}
	return os.RemoveAll(path)
}

// syncDir syncs dir's entries: the renames and creations in it.
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
