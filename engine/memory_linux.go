package engine

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// mappedMemory is a linear memory in an anonymous mapping of its maximum
// size, made without reserving swap (MAP_NORESERVE): pages take memory only
// once the guest touches them, and memory.grow only lengthens the slice.
//
// wazero's own linear memory is a Go slice that memory.grow reallocates and
// copies. While compiled wasm runs, Go's garbage collector cannot finish a
// cycle (the call cannot be preempted), so every outgrown copy stays until
// the call returns: a guest growing to 256 MiB a page at a time held 1.1 GB.
// In a mapping nothing is copied and nothing is left behind, so an
// instance's linear memory never takes more than Config.MemoryLimitPages.
type mappedMemory struct {
	buf  []byte // the whole mapping; nil once freed
	heap []byte // when the mapping could not be made: a Go slice, as wazero's
	max  uint64 // bytes
}

// Reallocate returns the first size bytes of the memory, or nil past its
// maximum, which memory.grow answers with -1.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if m.buf != nil {
		return m.buf[:size:size]
	}
	if size > uint64(cap(m.heap)) {
		m.heap = append(m.heap, make([]byte, size-uint64(len(m.heap)))...)
	}
	m.heap = m.heap[:size]
	return m.heap
}

// Free unmaps the memory; later calls do nothing.
func (m *mappedMemory) Free() {
	if m.buf != nil {
		_ = unix.Munmap(m.buf) // only fails for a range that is not mapped
		m.buf = nil
	}
	m.heap = nil
}

// allocator hands out the linear memory of one instance and remembers it,
// so that the memory is freed even when the instantiation fails (wazero
// frees it only when an instance it returned is closed).
type allocator struct {
	mem *mappedMemory
}

// context returns ctx carrying a, for InstantiateModule.
func (a *allocator) context(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, a)
}

// Allocate implements experimental.MemoryAllocator.
func (a *allocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	m := &mappedMemory{max: max}
	if max > 0 {
		b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err == nil {
			m.buf = b
		}
	}
	if m.buf == nil {
		// No address space for the mapping: a Go slice, grown by copying
		// as wazero's own.
		m.heap = make([]byte, 0, capacity)
	}
	a.free()
	a.mem = m
	return m
}

// free frees the memory handed out, if any.
func (a *allocator) free() {
	if a.mem != nil {
		a.mem.Free()
		a.mem = nil
	}
}
