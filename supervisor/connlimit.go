package supervisor

import (
	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/httpapi"
)

// connectionCap returns how many HTTP connections the daemon may hold
// open: want, lowered so that they fit in RLIMIT_NOFILE (nofile, also
// returned; Go raises the soft limit to the hard one at start) beside the
// descriptors the daemon needs for itself: the fdReserve, the refusals in
// progress (httpapi.RefuseReserve), a few per child (socket, stderr pipe,
// pidfd, cgroup), and the listener, control socket and its clients, store
// files and logs. It is at least 1.
func connectionCap(want, children int) (int, uint64) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return want, 0
	}
	return capConnections(want, children, rl.Cur), rl.Cur
}

// capConnections is connectionCap with RLIMIT_NOFILE given.
func capConnections(want, children int, nofile uint64) int {
	const perChild, own = 8, 128
	reserve := uint64(fdReserveSize + httpapi.RefuseReserve + perChild*children + own)
	if nofile <= reserve {
		return 1
	}
	return int(min(uint64(want), nofile-reserve))
}
