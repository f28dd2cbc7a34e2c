// Command gowasm is a large test module: Go compiled with
// GOOS=wasip1 -buildmode=c-shared, a WASI reactor of a few MiB whose cold
// compile takes seconds. It exports fib and a JSON round trip so that the
// module pulls in a realistic part of the standard library.
package main

import (
	"encoding/json"
	"fmt"
)

func main() {}

//go:wasmexport fib
func fib(n int32) int32 {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

//go:wasmexport jsonlen
func jsonlen(n int32) int32 {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprint("k", i)] = []int32{i, i * 2}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return -1
	}
	return int32(len(b))
}
