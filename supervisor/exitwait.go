package supervisor

import (
	"os"

	"golang.org/x/sys/unix"
)

// awaitExit returns once process p has exited, waiting in the runtime's
// poller on a pidfd, and leaves p waitable (WNOWAIT): cmd.Wait then reaps
// it at once.
//
// Why not cmd.Wait alone: it blocks in waitid(2), and a goroutine blocked in
// a system call keeps its P until sysmon takes it back, which is up to 10 ms
// once sysmon has backed off. The supervisor has one P (its GOMAXPROCS
// follows its housekeeping CPUs), so each child's start stalled every
// goroutine of the supervisor that long, the lanes' answers unread: the
// honest calls that came back late after a lane's kill and respawn in
// TestHonestLiar's sleeper case (docs/benchmarks.md, "Fourth pass").
//
// Without a pidfd (pidfd_open, Linux 5.3; PIDFD_NONBLOCK, 5.10) it returns
// at once, and cmd.Wait blocks as before.
func awaitExit(p *os.Process) {
	fd, err := unix.PidfdOpen(p.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		// Zeroed, the answer's signal number says whether p has exited
		// (Linux fills siginfo with zeros when nothing is waitable).
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err != nil || info.Signo != 0 // an error is Wait's to report
	})
}
