package systemd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket as systemd does for NOTIFY_SOCKET and
// points the environment at it.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	conn := listen(t, filepath.Join(t.TempDir(), "notify"))
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"watchdog", Watchdog, "WATCHDOG=1"},
		{"status", func() error { return Status("2 workers\nrunning") }, "STATUS=2 workers running"},
		{"several", func() error { return Notify("STATUS=x\nREADY=1") }, "STATUS=x\nREADY=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if !Enabled() {
		t.Error("Enabled: got false with NOTIFY_SOCKET set")
	}
}

func TestNotifyAbstract(t *testing.T) {
	conn := listen(t, fmt.Sprintf("@hyper-sched-test-%d", os.Getpid()))
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
}

func TestSilentWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	for _, f := range []func() error{Ready, Stopping, Watchdog, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: got %v, want nil", err)
		}
	}
	if Enabled() {
		t.Error("Enabled: got true without NOTIFY_SOCKET")
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Ready(); err == nil || !strings.HasPrefix(err.Error(), "notify systemd: ") {
		t.Errorf("to a missing socket: got %v, want a notify systemd error", err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := Ready(); err == nil {
		t.Error("to a vsock address: got nil, want an error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := fmt.Sprint(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"20000000", "", 20 * time.Second, true},
		{"20000000", self, 20 * time.Second, true},
		{"20000000", "1", 0, false},
		{"20000000", "x", 0, false},
		{"-5", "", 0, false},
		{"soon", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.usec+"/"+tt.pid, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
