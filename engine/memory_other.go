//go:build !linux

package engine

import "context"

// allocator leaves linear memory to wazero where this package maps none.
type allocator struct{}

func (a *allocator) context(ctx context.Context) context.Context { return ctx }

func (a *allocator) free() {}
