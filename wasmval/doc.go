// Package wasmval converts WebAssembly values between their wire form (raw
// uint64 bits, as wazero passes them), the JSON forms clients send and
// receive, and the seed prototype's result string ("[I32(832040)]").
//
// The HTTP layer is its main caller: it reads a request's "params" with
// [ParseParams], its "param_type" with [ParseTypes] (nil means "take the
// export's signature"), converts with [Bits], and answers with [Seed] and
// [JSON]. Request fields that the seed's clients send as strings but others
// may send as numbers ("results_length", "expected_deadline", …) use [Flex].
// The engine, the IPC codec and the scheduler's estimator keys use [Type].
//
// It is pure: no I/O, no logging, no package-level mutable state, and no
// dependency outside the standard library. Every error caused by bad input
// matches [ErrInvalid] and has a message fit to show the client as is, such
// as `params[1]: "3.5" is not an i32`.
//
// # Accepted input
//
// Integer params (i32, i64) are decimal with an optional sign, or hexadecimal
// with a "0x" prefix; both the signed and the unsigned range are accepted, so
// an i32 may be -2147483648 … 4294967295 and "-1" and "4294967295" give the
// same bits. Fractions, exponents, underscores and octal are rejected.
// Float params (f32, f64) are decimal, exponent or hexadecimal ("0x1p-2")
// forms, or "nan", "inf", "-inf" (any case); "nan" gives the canonical quiet
// NaN. A value out of the type's range is an error, never rounded to ±Inf.
// A JSON number and a JSON string holding the same text mean the same value.
package wasmval
