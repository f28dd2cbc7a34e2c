//go:build !race

package coreworker

// raceFactor scales prepareMax in a race-instrumented build
// (race_on.go); a production build has none.
const raceFactor = 1
