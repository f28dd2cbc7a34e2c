package engine

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// helperEnv selects the helper role of the test binary: "fixture:export".
const helperEnv = "ENGINE_TEST_HANG_HELPER"

// TestHang checks that calls which never return really do not: an infinite
// loop and a start function that loops. They run in a helper process (this
// test binary, re-run), because a running wasm call cannot be stopped, not
// even by the Go runtime's garbage collector; the test kills the helper, as
// the supervisor kills a worker.
func TestHang(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in helper process")
	}
	for _, tt := range []string{"loop.wasm:forever", "startloop.wasm:noop"} {
		t.Run(tt, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHangHelper$")
			cmd.Env = append(os.Environ(), helperEnv+"="+tt)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The helper prints "calling" just before the call.
			sc := bufio.NewScanner(out)
			for sc.Scan() && sc.Text() != "calling" {
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				t.Fatalf("helper returned (%v), want it stuck in the call", err)
			case <-time.After(300 * time.Millisecond):
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-exited
		})
	}
}

// TestHangHelper is the helper process of TestHang.
func TestHangHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	file, export, _ := strings.Cut(spec, ":")
	e := newEngine(t, Config{})
	m := compile(t, e, file)
	os.Stdout.WriteString("calling\n")
	_, err := m.Call(context.Background(), export, nil)
	t.Fatalf("Call returned %v, want it never to return", err)
}
