package supervisor

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// awaitExit returns when the process exits, not before, and leaves it for
// cmd.Wait to reap with its status: an exit code, a kill, or a process that
// was gone before the wait began.
func TestAwaitExit(t *testing.T) {
	wait := func(cmd *exec.Cmd) <-chan struct{} {
		done := make(chan struct{})
		go func() { awaitExit(cmd.Process); close(done) }()
		return done
	}

	// A running process: no return until it is killed; then Wait reports
	// the kill.
	long := exec.Command("sleep", "30")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	done := wait(long)
	select {
	case <-done:
		t.Fatal("awaitExit returned while the process still ran")
	case <-time.After(100 * time.Millisecond):
	}
	long.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("awaitExit did not return 10 s after the process was killed")
	}
	var ee *exec.ExitError
	if err := long.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after awaitExit: %v, want killed by SIGKILL", err)
	}

	// An exit code survives the wait (WNOWAIT): Wait still reaps it.
	short := exec.Command("sh", "-c", "exit 3")
	if err := short.Start(); err != nil {
		t.Fatal(err)
	}
	<-wait(short)
	if err := short.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait after awaitExit: %v, want exit status 3", err)
	}

	// A process that exited before the wait began.
	gone := exec.Command("true")
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // long enough for true to have exited, most often
	<-wait(gone)
	if err := gone.Wait(); err != nil {
		t.Errorf("Wait after awaitExit: %v, want a clean exit", err)
	}
}
