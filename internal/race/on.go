//go:build race

package race

// Enabled is true: the binary is built with -race.
const Enabled = true
