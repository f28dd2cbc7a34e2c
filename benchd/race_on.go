//go:build race

package benchd

// raceFactor scales the compile budget of a race-instrumented build: the
// detector makes wazero's compiler several times slower (a 3 MiB Go wasip1
// module takes ~16 s of CPU), and the budget is set for production builds.
const raceFactor = 4
