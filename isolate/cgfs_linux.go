package isolate

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers shared by the cgroup backends: mounts, membership, files, and
// removing groups left behind.

// cgMount is one cgroup mount from /proc/self/mountinfo.
type cgMount struct {
	dir    string   // where it is mounted
	root   string   // the part of the hierarchy it shows ("/" unless bind-mounted)
	v2     bool     // cgroup2
	supers []string // super options: the v1 controllers, "rw", …
}

// cgroupMounts lists the cgroup mounts of this process's mount namespace.
func cgroupMounts() ([]cgMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 25 0:31 / /sys/fs/cgroup/cpuset rw,… shared:15 - cgroup cgroup rw,cpuset
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		out = append(out, cgMount{dir: a[4], root: a[3], v2: b[0] == "cgroup2", supers: strings.Split(b[2], ",")})
	}
	return out, sc.Err()
}

// memberships returns this process's cgroup v2 path and its v1 paths by
// controller, from /proc/PID/cgroup (pid 0: self).
func memberships(pid int) (v2 string, v1 map[string]string, err error) {
	file := "/proc/self/cgroup"
	if pid > 0 {
		file = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", nil, err
	}
	v1 = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			v1[c] = parts[2]
		}
	}
	return v2, v1, nil
}

// readString reads a cgroup file, trimmed.
func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// readList reads a CPU list file.
func readList(path string) ([]int, error) {
	s, err := readString(path)
	if err != nil {
		return nil, err
	}
	return ParseList(s)
}

// writeString writes value to an existing cgroup file in one write, which
// is how the kernel wants it.
func writeString(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// procs lists the processes directly in a group.
func procs(dir string) ([]int, error) {
	s, err := readString(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// otherLive returns a process in dir that is not this one, or 0: a live
// supervisor in a base group means another instance owns it.
func otherLive(dir string) int {
	ps, _ := procs(dir)
	for _, p := range ps {
		if p != os.Getpid() && unix.Kill(p, 0) == nil {
			return p
		}
	}
	return 0
}

// claimStale removes the groups a previous run left at dir, unless its
// supervisor is still alive, and records dir in cleaned.
func claimStale(dir string, cleaned *[]string) error {
	if !exists(dir) {
		return nil
	}
	if pid := otherLive(filepath.Join(dir, Supervisor)); pid > 0 {
		return &BusyError{Path: dir, Pid: pid}
	}
	if err := purge(dir); err != nil {
		return fmt.Errorf("remove stale groups: %w", err)
	}
	*cleaned = append(*cleaned, dir)
	return nil
}

// purgeChildren removes every child group of base but the supervisor
// leaf, which this process may still be in.
func purgeChildren(base string) error {
	var errs []error
	for _, name := range subgroups(base) {
		if name != Supervisor {
			errs = append(errs, purge(filepath.Join(base, name)))
		}
	}
	return errors.Join(errs...)
}

// leaveBase moves this process back to origin (to root when origin is
// gone), then removes the supervisor leaf and base.
func leaveBase(root, origin, base string) error {
	var errs []error
	if err := moveSelf(origin); err != nil {
		// The group we came from is gone: the root always exists.
		if err2 := moveSelf(root); err2 != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, rmdir(filepath.Join(base, Supervisor)), rmdir(base))
	return errors.Join(errs...)
}

// moveSelf moves this process, every thread of it, into the group at dir.
func moveSelf(dir string) error {
	return writeString(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(os.Getpid()))
}

// purge kills every process in dir and its subgroups and removes them,
// deepest first. A group that does not exist is not an error. v2 groups are
// killed with cgroup.kill where the kernel has it (5.14+), which also gets
// processes forking meanwhile; elsewhere each process gets SIGKILL.
func purge(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, unwrapPath(err))
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, purge(filepath.Join(dir, e.Name())))
		}
	}
	if err := killGroup(dir); err != nil {
		errs = append(errs, err)
	}
	if err := rmdir(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killGroup sends SIGKILL to every process directly in dir and waits until
// they have left it.
func killGroup(dir string) error {
	ps, err := procs(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("kill group %s: %w", dir, unwrapPath(err))
	}
	if len(ps) == 0 {
		return nil
	}
	if slices.Contains(ps, os.Getpid()) {
		return fmt.Errorf("kill group %s: this process is in it", dir)
	}
	if kill := filepath.Join(dir, "cgroup.kill"); exists(kill) {
		if err := writeString(kill, "1"); err != nil {
			return fmt.Errorf("kill group %s: %w", dir, err)
		}
	} else {
		for _, p := range ps {
			if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill group %s: pid %d: %w", dir, p, err)
			}
		}
	}
	return waitEmpty(dir, 5*time.Second)
}

// waitEmpty waits until no process is left directly in dir. A SIGKILLed
// process leaves its cgroup within milliseconds of the signal (at exit, not
// when reaped), so a short bounded poll serves both cgroup versions; v1 has
// no cgroup.events to wait on.
func waitEmpty(dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		ps, err := procs(dir)
		if err != nil || len(ps) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("empty group %s: pids %v still in it after %v", dir, ps, limit)
		}
		time.Sleep(delay)
	}
}

// rmdir removes an empty cgroup directory; cgroupfs wants rmdir, not the
// unlinking of its files. A missing group is not an error.
func rmdir(dir string) error {
	var err error
	for i := 0; i < 5; i++ {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		// A dying task can hold the group for a moment after leaving
		// cgroup.procs.
		time.Sleep(time.Duration(10<<i) * time.Millisecond)
	}
	return fmt.Errorf("remove group %s: %w", dir, err)
}

// unmake removes the group dir that a step which failed with err had just
// made, and returns err, with why dir could not be removed if it could not.
func unmake(dir string, err error) error {
	if rerr := rmdir(dir); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// subgroups lists the child groups of dir, sorted.
func subgroups(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}
