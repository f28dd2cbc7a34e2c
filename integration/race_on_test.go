//go:build race

package integration

// raceFlags builds the daemon with the race detector when the tests run
// with it, so that `go test -race` also checks the supervisor's goroutines.
var raceFlags = []string{"-race"}

// raceBuild says the daemon under test is race-instrumented: several
// times slower on its own paths (a respawned lane's first job took 4-6 ms
// more), so timing bounds are checked only without -race.
const raceBuild = true
