//go:build race

package integration

// raceFlags builds the daemon with the race detector when the tests run
// with it, so that `go test -race` also checks the supervisor's goroutines.
var raceFlags = []string{"-race"}
