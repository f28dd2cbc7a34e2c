// Package traffic is the smart-traffic pipeline, shipped as an example of
// real functions under deadlines: a camera frame in, the signal phase out.
//
// The stages are WASI commands written in C (stages/*.c, built by
// stages/build.sh with clang and wasi-libc; the .wasm files are checked in
// beside them): decode (netpbm frames to gray), detect (blobs that differ
// from the background), count (vehicles per lane) and decide (the phase, as
// JSON); traffic.wasm is the four fused. Each reads stdin and writes stdout,
// so they can run as one call each, as a chain, or fused. The frames come
// from framegen, which knows what it drew, so the tests of this package
// check every stage's answer against that ground truth by running the
// stages on the workers' engine (package engine). See README.md for running the example against a daemon.
//
// This package has no code of its own: only the stages' tests.
package traffic
