package isolate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseList parses a kernel CPU list ("0-3,5,7-8"). Whitespace around the
// list is ignored; an empty list is valid and yields no CPUs. The result is
// sorted and without duplicates.
func ParseList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpu list %q: range %d-%d is backwards", s, a, b)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// maxCPU bounds a CPU number; Linux's NR_CPUS tops out at 8192.
const maxCPU = 8191

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > maxCPU {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	return n, nil
}

// FormatList formats CPUs as a kernel CPU list, ranges collapsed.
func FormatList(cpus []int) string {
	c := slices.Clone(cpus)
	slices.Sort(c)
	c = slices.Compact(c)
	var b strings.Builder
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] == c[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(c[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Choice is the split of CPUs between workers and housekeeping.
type Choice struct {
	Workers      []int  // one coreworker each
	Housekeeping []int  // supervisor, benchd, HTTP; may overlap Workers on 1 CPU
	Source       string // "--cpus", "isolated", "online-but-first", "single-cpu"
}

// Choose applies DESIGN.md §1: the requested list if any, else the kernel's
// isolated CPUs, else every allowed CPU but the first; always intersected
// with allowed (the cgroup's cpuset.cpus.effective). On a one-CPU machine
// that CPU does both jobs.
func Choose(requested, isolated, allowed []int) (Choice, error) {
	if len(allowed) == 0 {
		return Choice{}, fmt.Errorf("choose cpus: no CPU is allowed")
	}
	var ch Choice
	switch {
	case requested != nil:
		ch.Source = "--cpus"
		ch.Workers = intersect(requested, allowed)
		if len(ch.Workers) == 0 {
			return Choice{}, fmt.Errorf("choose cpus: --cpus %s shares no CPU with the allowed %s",
				FormatList(requested), FormatList(allowed))
		}
	case len(intersect(isolated, allowed)) > 0:
		ch.Source = "isolated"
		ch.Workers = intersect(isolated, allowed)
	case len(allowed) == 1:
		ch.Source = "single-cpu"
		ch.Workers = slices.Clone(allowed)
	default:
		ch.Source = "online-but-first"
		ch.Workers = slices.Clone(allowed[1:])
	}
	for _, c := range allowed {
		if !slices.Contains(ch.Workers, c) {
			ch.Housekeeping = append(ch.Housekeeping, c)
		}
	}
	if len(ch.Housekeeping) == 0 {
		// Every allowed CPU runs a worker: housekeeping shares the first.
		ch.Housekeeping = []int{ch.Workers[0]}
	}
	return ch, nil
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
