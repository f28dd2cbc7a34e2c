//go:build !race

package integration

var raceFlags []string

// raceBuild: see race_on_test.go.
const raceBuild = false
