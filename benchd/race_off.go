//go:build !race

package benchd

// raceFactor scales the compile budget of a race-instrumented build
// (race_on.go); a production build has none.
const raceFactor = 1
