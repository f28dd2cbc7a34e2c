package engine

import (
	"fmt"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	// DefaultMemoryLimitPages is the default maximum memory of one instance:
	// 4096 pages of 64 KiB, 256 MiB.
	DefaultMemoryLimitPages = 4096
	// DefaultStdoutLimit is the default number of bytes of a call's stdout,
	// and separately of its stderr, that are kept.
	DefaultStdoutLimit = 4096
)

// maxMemoryPages is the wasm32 maximum, 4 GiB; wazero panics above it.
const maxMemoryPages = 65536

// Config is the engine configuration. It is passed by value, validated once
// by [New], and identical for benchd and every worker so that they compile
// the same code. The zero value is valid: in-memory compilation only, the
// default memory limit and the default output limit.
type Config struct {
	// CacheDir is the directory of wazero's on-disk compilation cache. It is
	// created if missing. Processes that share it load each other's compiled
	// code instead of compiling again; entries are written atomically
	// (temporary file, then rename), so concurrent processes are safe.
	// "" keeps compiled code in memory only.
	CacheDir string

	// MemoryLimitPages caps the linear memory of one instance, in 64 KiB
	// pages. A module declaring a larger maximum is clamped to it, a module
	// whose minimum exceeds it fails to compile, and memory.grow past it
	// returns -1. On Linux the memory is mapped at its maximum and takes
	// what the guest touches, no more. 0 means DefaultMemoryLimitPages
	// (256 MiB); at most 65536. The rest of an instance (tables, globals,
	// call stack) is bounded by limits.go and wazero: see docs/RATIONALE.md.
	MemoryLimitPages uint32

	// StdoutLimit is how many bytes of a call's stdout, and separately of its
	// stderr, [Result] keeps; the rest is discarded without the guest seeing
	// an error. 0 means DefaultStdoutLimit (4096); negative is invalid.
	StdoutLimit int
}

// withDefaults returns c with zero fields set to their defaults, or an error
// naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if c.MemoryLimitPages > maxMemoryPages {
		return c, fmt.Errorf("engine: config: MemoryLimitPages %d over the wasm32 maximum of %d", c.MemoryLimitPages, maxMemoryPages)
	}
	if c.StdoutLimit == 0 {
		c.StdoutLimit = DefaultStdoutLimit
	}
	if c.StdoutLimit < 0 {
		return c, fmt.Errorf("engine: config: StdoutLimit %d is negative", c.StdoutLimit)
	}
	return c, nil
}
