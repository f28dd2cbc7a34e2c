// Package systemd speaks systemd's notify protocol (sd_notify(3)) for the
// supervisor, which runs as a Type=notify service: READY=1 once every
// worker is up, STATUS= lines for `systemctl status`, WATCHDOG=1 pings
// within WatchdogSec. The unit file hyper-sched.service lives beside it and
// docs/ops.md explains it line by line.
//
// Every function is silent — it returns nil and does nothing — when
// NOTIFY_SOCKET is unset, so the daemon runs by hand exactly as under
// systemd. The package touches nothing but the notify socket: no D-Bus, no
// environment changes, no goroutines.
//
// # Notes
//
// This is ~40 lines of our own instead of github.com/coreos/go-systemd's
// daemon package: the protocol is one datagram per call, we need exactly
// the silent-without-systemd behaviour and a watchdog check of
// WATCHDOG_PID, and a dependency would bring API surface we do not use.
package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notify sends state, one or more newline-separated VAR=value
// assignments, to the service manager. Without NOTIFY_SOCKET it does
// nothing and returns nil.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	// Go's net package maps a leading '@' to the abstract namespace, as
	// systemd means it.
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("notify systemd: NOTIFY_SOCKET %q is not a unix socket", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}

// Enabled reports whether a service manager listens (NOTIFY_SOCKET is set).
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// Ready tells systemd that start-up is complete: `systemctl start` returns.
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd that shutdown has begun.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows; newlines in s
// become spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// Watchdog pings the service watchdog (WatchdogSec=).
func Watchdog() error { return Notify("WATCHDOG=1") }

// WatchdogInterval returns the watchdog timeout systemd expects pings
// within (WATCHDOG_USEC), and false when there is none for this process:
// unset, malformed, or meant for another pid (WATCHDOG_PID). Ping at half
// of it.
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		if pid, err := strconv.Atoi(p); err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}
