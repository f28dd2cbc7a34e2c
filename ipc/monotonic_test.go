package ipc

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMonotonic checks that Monotonic, the runtime's clock since one
// reading, is CLOCK_MONOTONIC: a reading of it lies between two of
// Monotonic's (up to the start-up reading's skew, far below a
// millisecond).
func TestMonotonic(t *testing.T) {
	for range 1000 {
		m1 := Monotonic()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		m2 := Monotonic()
		if c := ts.Nano(); c < m1-int64(time.Millisecond) || c > m2+int64(time.Millisecond) {
			t.Fatalf("CLOCK_MONOTONIC %d not between Monotonic's %d and %d", c, m1, m2)
		}
	}
}
