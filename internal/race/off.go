//go:build !race

package race

// Enabled is false: the binary is built without -race.
const Enabled = false
