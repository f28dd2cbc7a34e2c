package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tetratelabs/wazero/sys"
)

var (
	// ErrInvalid is returned, wrapped with the decoder's reason, by
	// [Engine.Compile] for bytes that are not a valid module. An
	// [*ImportError] also matches it with errors.Is.
	ErrInvalid = errors.New("engine: invalid module")

	// ErrNoExport is returned, wrapped with the name, by [Module.Call] for a
	// name that is not a callable exported function (see [Module.Exports]).
	ErrNoExport = errors.New("engine: no such export")

	// ErrParamCount is returned, wrapped with both counts, by [Module.Call]
	// when the number of params does not match the export's signature.
	ErrParamCount = errors.New("engine: wrong number of params")

	// ErrClosed is returned by calls on a closed [Engine] or [Module].
	ErrClosed = errors.New("engine: closed")
)

// ImportError reports the imports of a module that the engine cannot
// satisfy. The engine provides only wasi_snapshot_preview1 functions, so any
// other import, and a WASI import whose name or signature wazero does not
// know, is unresolved. It matches [ErrInvalid] with errors.Is.
type ImportError struct {
	// Names lists every unresolved import as "module.name", in the module's
	// import order.
	Names []string

	reasons []string // parallel to Names; "" or why a WASI import is wrong
}

// Error returns e.g. `unresolved import "env.host_fn"`.
func (e *ImportError) Error() string {
	var b strings.Builder
	b.WriteString("unresolved import")
	if len(e.Names) > 1 {
		b.WriteString("s")
	}
	for i, n := range e.Names {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %q", n)
		if i < len(e.reasons) && e.reasons[i] != "" {
			fmt.Fprintf(&b, " (%s)", e.reasons[i])
		}
	}
	return b.String()
}

// Is reports whether target is ErrInvalid: a module with unresolved imports
// is an invalid module for hyper-sched.
func (e *ImportError) Is(target error) bool { return target == ErrInvalid }

// TrapError is a WebAssembly trap: unreachable, integer divide by zero or
// overflow, out-of-bounds memory or table access, invalid conversion,
// indirect call type mismatch, or call stack exhaustion. It ends that call's
// instance only; the [Module] and [Engine] stay usable. memory.grow beyond
// the limit is not a trap: it returns -1.
type TrapError struct {
	// Msg is wazero's trap reason, e.g. "unreachable", "integer divide by
	// zero", "out of bounds memory access" or "stack overflow".
	Msg string
	// Stack is the wasm stack trace, one frame per line, innermost first;
	// "" when wazero gives none, as for a stack overflow.
	Stack string
}

// Error returns "wasm trap: " followed by Msg.
func (e *TrapError) Error() string { return "wasm trap: " + e.Msg }

// Failure splits a [Module.Call] error the way the IPC answers report it:
// a trap's text in trap, anything else's in msg; both "" for nil and for an
// [*ExitError], which is the guest's answer (Result.ExitCode), not a
// failure.
func Failure(err error) (trap, msg string) {
	var exit *ExitError
	if err == nil || errors.As(err, &exit) {
		return "", ""
	}
	var t *TrapError
	if errors.As(err, &t) {
		return t.Error(), ""
	}
	return "", err.Error()
}

// ExitError reports that the guest called WASI proc_exit. An exit with code
// 0 from an export without results is a success and is not reported.
type ExitError struct {
	// Code is the guest's exit code.
	Code uint32
}

// Error returns e.g. "wasm exit code 3".
func (e *ExitError) Error() string { return fmt.Sprintf("wasm exit code %d", e.Code) }

// wazero reports a trap with an error of its internal wasmruntime package,
// which cannot be imported from here: usually wrapped as "wasm error:
// <reason>\nwasm stack trace:\n\t<frames>", but bare for a stack overflow.
// It is recognised by its package path.
const (
	trapPkg     = "github.com/tetratelabs/wazero/internal/wasmruntime"
	stackPrefix = "wasm stack trace:\n"
)

func isTrap(err error) bool {
	t := reflect.TypeOf(err)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == trapPkg
}

// exitCode returns the code of a WASI proc_exit reported by wazero.
func exitCode(err error) (uint32, bool) {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), true
	}
	return 0, false
}

// classify turns an error from wazero's Call or InstantiateModule into the
// package's typed errors. It returns nil for a successful exit (code 0)
// when allowExit0 is set.
func classify(err error, allowExit0 bool) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == 0 && allowExit0 {
			return nil
		}
		return &ExitError{Code: exit.ExitCode()}
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if !isTrap(e) {
			continue
		}
		t := &TrapError{Msg: e.Error()}
		if _, stack, ok := strings.Cut(err.Error(), stackPrefix); ok {
			t.Stack = strings.TrimSpace(strings.ReplaceAll(stack, "\n\t", "\n"))
		}
		return t
	}
	return err
}
