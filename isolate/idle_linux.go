package isolate

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SetIdlePolicy puts every thread of process pid under SCHED_IDLE: it runs
// only when its CPUs have nothing else to do. benchd uses it on the
// housekeeping CPUs so that a long calibration never delays the
// supervisor's HTTP answers (docs/benchmarks.md: p99 of /call during a
// calibration went from 0.35 ms to 4.7 ms without it).
func SetIdlePolicy(pid int) error {
	tids, err := tasks(pid)
	if err != nil {
		return fmt.Errorf("set SCHED_IDLE on %d: %w", pid, err)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	for _, tid := range tids {
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("set SCHED_IDLE on %d/%d: %w", pid, tid, err)
		}
	}
	return nil
}
