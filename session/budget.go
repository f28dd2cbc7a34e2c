package session

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Budget bounds what compiling one module may cost the process. wazero's
// compile cannot be interrupted, so a compile over its budget is answered
// at once with an error and the process then kills itself, which is the
// only way to stop it; the supervisor starts it again. engine's static
// limits refuse the known costly forms before compiling; the budget catches
// the rest. The zero Budget bounds nothing.
type Budget struct {
	// For returns the CPU time and the growth of resident memory (bytes)
	// that compiling a module of size bytes may take; nil: unbounded.
	For func(size int) (cpu time.Duration, mem int64)
	// Exit ends the process; nil means killSelf. Tests replace it.
	Exit func()
	// Every is how often the compile is looked at; 0 means 20 ms.
	Every time.Duration
}

// killSelf ends the process with SIGKILL, as the kernel's OOM killer
// would: the supervisor counts a SIGKILL as an ordinary exit, never as a
// failed start, so a tenant uploading costly modules again and again cannot
// make the process FATAL (an exit of its own within a second of its start
// would count).
func killSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// usage is the process's CPU time (user and system) and resident memory.
type usage struct {
	cpu time.Duration
	rss int64
}

func readUsage() usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	// statm: size resident shared text lib data dt, in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				u.rss = pages * int64(os.Getpagesize())
			}
		}
	}
	return u
}

// watch looks at the process while a compile of size bytes runs, until
// done is closed, and calls over with the reason once the compile has
// taken more than the budget allows. Only the compile runs meanwhile (a
// session serves one frame at a time), so what the process spends is what
// the compile spends, garbage collection included.
func (b Budget) watch(size int, done <-chan struct{}, over func(reason string)) {
	cpu, mem := b.For(size)
	every := b.Every
	if every <= 0 {
		every = 20 * time.Millisecond
	}
	start := readUsage()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		u := readUsage()
		switch {
		case u.cpu-start.cpu > cpu:
			over(fmt.Sprintf("compiling took more than %v of CPU, the budget for a module of %d bytes",
				cpu.Round(100*time.Millisecond), size))
			return
		case u.rss-start.rss > mem:
			over(fmt.Sprintf("compiling took more than %d MiB of memory, the budget for a module of %d bytes",
				mem>>20, size))
			return
		}
	}
}
