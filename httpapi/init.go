package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// initBody is the seed prototype's GET /init body, its RegisterConfig:
// {"path": "/srv/wasm/fib.wasm", "wasm_name": "fib.wasm", "is_infer": false}.
type initBody struct {
	Path     string `json:"path"`
	WasmName string `json:"wasm_name"`
	// IsInfer asked the prototype to link its inference host function,
	// code its last version had commented out; it is accepted (a bool, or
	// the string "true" or "false") and changes nothing. A module that
	// imports a host function hyper-sched lacks is refused at compile,
	// naming the import.
	IsInfer json.RawMessage `json:"is_infer"`
}

// initModule registers a module from a file on the server (GET /init, the
// prototype's way to load a module, which its test clients all use): only
// a regular file under Options.InitDir, named by a path without ".."
// whose symlinks, resolved, stay inside the directory. Off unless the
// directory is set. The file is copied to the upload spool and registered
// as an upload of a form with that one module, without export_func: the
// answer is the register answer.
func (h *handler) initModule(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if h.o.InitDir == "" {
		writeError(w, errorf(apierr.NoEndpoint,
			"%s /init registers a file on the server and is off: start hyper-sched with --init-dir DIR (or HYPER_SCHED_INIT_DIR=DIR) to register the modules under DIR this way, or upload the module: curl -F \"NAME=@FILE\" …/register", r.Method))
		return
	}
	raw, err := readBody(w, r, h.o.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	var b initBody
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&b); err != nil {
		writeError(w, errorf(apierr.BadRequest, `/init wants {"path": "...", "wasm_name": "...", "is_infer": false}: %v`, err))
		return
	}
	switch v := strings.TrimSpace(string(b.IsInfer)); v {
	case "", "null", "true", "false", `"true"`, `"false"`:
	default:
		writeError(w, errorf(apierr.BadRequest, "is_infer is %s, want true or false", v))
		return
	}
	if b.WasmName == "" || b.Path == "" {
		writeError(w, errorf(apierr.BadRequest, "/init needs both path and wasm_name"))
		return
	}
	if c, ok := h.b.(UploadChecker); ok {
		if err := c.CheckUpload(b.WasmName); err != nil {
			writeError(w, err)
			return
		}
	}
	f, size, err := openUnder(h.o.InitDir, b.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	defer f.Close()
	if size > h.o.MaxUpload {
		writeError(w, errorf(apierr.TooLarge, "module %q is larger than %d bytes", b.Path, h.o.MaxUpload))
		return
	}
	hold := &hold{u: h.o.Uploads}
	spec := RegisterSpec{release: hold.release}
	defer spec.Release()
	if err := hold.grow(size); err != nil {
		writeError(w, err)
		return
	}
	up, err := h.o.Uploads.spool(hold, b.WasmName, f, h.o.MaxUpload)
	if err != nil {
		writeError(w, err)
		return
	}
	spec.Modules = []Upload{up}
	h.registerSpec(w, r, spec)
}

// openUnder opens the regular file at path, which must be inside dir once
// its symlinks are resolved (a relative path is taken from dir), and
// returns it with its size. A path with a ".." element is refused
// whatever it resolves to. The file opened is checked again through
// /proc/self/fd, so that a directory on the way swapped for a symlink
// between the check and the open is caught.
func openUnder(dir, path string) (*os.File, int64, error) {
	for _, el := range strings.Split(filepath.ToSlash(path), "/") {
		if el == ".." {
			return nil, 0, errorf(apierr.BadRequest, "path %q has a .. element: give the module's path under the init dir", path)
		}
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, 0, errorf(apierr.Internal, "init dir: %v", err)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, errorf(apierr.BadRequest, "path %q: no such file", path)
		}
		return nil, 0, errorf(apierr.BadRequest, "path %q: %v", path, cutPathError(err))
	}
	if !inside(root, real) {
		return nil, 0, errorf(apierr.BadRequest, "path %q is not under the init dir %s (symlinks followed)", path, dir)
	}
	// O_NONBLOCK: a FIFO must not hang the request; it is refused below.
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, errorf(apierr.BadRequest, "open %q: %v", path, cutPathError(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if err == nil {
		if got, lerr := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); lerr == nil && !inside(root, got) {
			err = errors.New("it left the init dir while it was opened")
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, errorf(apierr.BadRequest, "path %q: %v", path, err)
	}
	return f, fi.Size(), nil
}

// inside reports whether path is strictly inside dir; both are clean and
// absolute.
func inside(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// cutPathError is err without the path a *fs.PathError repeats.
func cutPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
