// Package engine runs WebAssembly functions with wazero under the one
// configuration that benchd and every coreworker share.
//
// Its one job: turn module bytes into a compiled [Module] and run one export
// of it in a fresh instance, reporting the results, the instantiate (warm
// start) and execution times, and the captured WASI stdout and stderr. benchd
// calls it to validate and calibrate modules; coreworker calls it to run jobs.
// Because both build their [Engine] from the same [Config], the code benchd
// measures is the code a worker runs, and benchd's compilations fill the
// on-disk cache that workers then load from.
//
// # What it never does
//
// It never enforces a deadline. Modules are compiled without wazero's
// context-done checks (RuntimeConfig.WithCloseOnContextDone), because those
// checks cost about 100x in tight loops and never fire in loop-free recursion,
// and compiled wasm cannot be preempted by the Go runtime anyway. A call
// therefore runs until it returns or traps; a call that must stop early is
// stopped by killing the process that runs it (see DESIGN.md §1). The context
// passed to [Module.Call] is checked only before the call starts.
//
// It never logs: it returns errors ([*TrapError], [*ImportError],
// [*ExitError], [ErrNoExport], [ErrInvalid], ...) and durations, and leaves
// reporting to its callers. It holds no package-level mutable state.
package engine
