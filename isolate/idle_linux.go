package isolate

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetIdlePolicy puts every thread of process pid under SCHED_IDLE: it runs
// only when its CPUs have nothing else to do. benchd uses it on the
// housekeeping CPUs so that a long calibration never delays the
// supervisor's HTTP answers (docs/benchmarks.md: p99 of /call during a
// calibration went from 0.35 ms to 4.7 ms without it).
func SetIdlePolicy(pid int) error {
	if err := everyThread(pid, hasPolicy(unix.SCHED_IDLE, 0), setPolicy(unix.SCHED_IDLE, 0)); err != nil {
		return fmt.Errorf("set SCHED_IDLE on %d: %w", pid, err)
	}
	return nil
}

// SetThreadIdle puts the calling thread under SCHED_IDLE. benchd calls it
// on the thread it locks for a calibration, so that the thread doing the
// heavy work is idle even if SetIdlePolicy's walk raced with its creation.
func SetThreadIdle() error {
	return setPolicy(unix.SCHED_IDLE, 0)(0)
}
