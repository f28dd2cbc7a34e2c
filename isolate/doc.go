// Package isolate places hyper-sched's processes on CPUs: the choice of
// worker CPUs (DESIGN.md §1) and the isolation ladder, best available first:
//
//  1. cgroup v2 cpuset (ModeCgroup2). Under systemd with Delegate=yes the
//     base is the service's own cgroup: the supervisor moves into its
//     "supervisor" leaf and "worker-N" and "benchd" are made beside it. Run
//     by hand as root the base is /sys/fs/cgroup/hyper-sched. Each group gets
//     cpuset.cpus and cpuset.mems; a worker whose CPU is not a housekeeping
//     CPU is also made an isolated partition (cpuset.cpus.partition), and the
//     state the kernel reports, valid or "isolated invalid (reason)", is kept
//     for status. Children start inside their group (CLONE_INTO_CGROUP), so
//     they never run unconfined.
//  2. cgroup v1 cpuset-only hierarchy (ModeCgroup1):
//     <own cpuset>/hyper-sched/{supervisor,benchd,worker-N} with cpuset.cpus
//     and cpuset.mems copied from the parent. No group is cpu_exclusive: v1
//     would then need the base exclusive too, and with it every CPU, the
//     housekeeping ones included, would be refused to every other cpuset on
//     the host. A child is moved in by pid before its hello (it does nothing
//     before). Only the cpuset controller is used: in a v1 cpu cgroup
//     SCHED_FIFO needs cpu.rt_runtime_us.
//  3. sched_setaffinity alone (ModeAffinity).
//
// Optionally workers run SCHED_FIFO (Options.RealTime; by default only on
// isolated CPUs).
//
// The supervisor calls Setup once, Prepare and Place for every start of a
// child, Kill to kill a child's whole group, Inspect for status and Close
// at exit; children call SetAffinity on themselves before doing any work.
// Groups a killed previous run left are removed at Setup, after killing
// what is in them; groups are removed at Close.
//
// It never fails silently: every rung or step that could not be taken is
// returned (Setup's Skipped, Prepare's and Place's errors) and kept in the
// group's Placement.Err for status. It never touches a group it did not
// make, apart from enabling the cpuset controller for the root's children
// when run by hand, and never kills a process outside its own groups.
// It uses github.com/containerd/cgroups/v3 for both cgroup versions and
// writes directly only the files that library does not know
// (cpuset.cpus.partition, cpuset.cpus.exclusive, one level of
// cgroup.subtree_control).
package isolate
