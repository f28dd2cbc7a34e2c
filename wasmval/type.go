// Package wasmval converts WebAssembly values between their wire form (raw
// uint64 bits, as wazero passes them), the JSON forms clients send and
// receive, and the seed prototype's result string ("[I32(832040)]").
//
// It is pure: no I/O, no logging. The HTTP layer, the engine and the
// scheduler's estimator keys all use its Type.
package wasmval

// Type is a WebAssembly number type. The zero value is invalid.
type Type uint8

// The number types hyper-sched passes across the API. v128 is not supported:
// the seed accepted "u128" but never passed one through correctly.
const (
	I32 Type = iota + 1
	I64
	F32
	F64
)

// String returns the lowercase wasm name ("i32"), or "invalid".
func (t Type) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return "invalid"
}
