// Package isolate places hyper-sched's processes on CPUs: the choice of
// worker CPUs (DESIGN.md §1) and the isolation ladder, best available first:
// cgroup v2 cpuset → cgroup v1 cpuset-only hierarchy → sched_setaffinity.
//
// The supervisor calls it; children call SetAffinity on themselves before
// doing any work. It never fails silently: every step that could not be
// taken is returned as an error for the caller to log and show in status.
package isolate
