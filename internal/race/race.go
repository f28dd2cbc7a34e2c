// Package race says whether the binary is built with the race detector,
// which makes some paths several times slower: bounds set for production
// builds are scaled for it, and tests build what they start the same way.
package race

import "time"

// Scale returns d, or d times factor in a race-instrumented build.
func Scale(d time.Duration, factor int) time.Duration {
	if Enabled {
		return d * time.Duration(factor)
	}
	return d
}
