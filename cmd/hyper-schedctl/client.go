package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// socket is the control socket to use and where its path came from, which
// an error names so the operator knows what to change.
type socket struct {
	url    string // unix:///run/hyper-sched/control.sock
	path   string
	source string // "-s", "HYPER_SCHED_SOCKET" or "" for the default
}

// parseSocket accepts unix:///absolute/path, or the bare absolute path.
func parseSocket(v, source string) (socket, error) {
	path, ok := strings.CutPrefix(v, "unix://")
	if !ok && !strings.HasPrefix(v, "/") {
		return socket{}, fmt.Errorf("%s %q: want unix:///path/to/control.sock", sourceName(source), v)
	}
	if !ok {
		path = v
	}
	if !filepath.IsAbs(path) {
		return socket{}, fmt.Errorf("%s %q: the socket path must be absolute, as in unix:///run/hyper-sched/control.sock", sourceName(source), v)
	}
	return socket{url: "unix://" + path, path: path, source: source}, nil
}

func sourceName(source string) string {
	if source == "" {
		return "socket"
	}
	return source
}

// exitError is an error that decides the exit status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func asExit(err error) (int, string, bool) {
	var e *exitError
	if errors.As(err, &e) {
		return e.code, e.msg, true
	}
	return 0, "", false
}

// unreachable explains a failed connect: which socket, the kernel's reason,
// and what to do about it.
func unreachable(s socket, err error) error {
	cause := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		cause = errno.Error()
	}
	return &exitError{code: exitUnreachable, msg: fmt.Sprintf("%s: connect: %s (%s)", s.url, cause, hint(s, errno))}
}

func hint(s socket, errno syscall.Errno) string {
	from := "set -s or HYPER_SCHED_SOCKET"
	if s.source != "" {
		from = "the path came from " + s.source
	}
	switch errno {
	case syscall.EACCES, syscall.EPERM:
		return "the socket is mode 0600, or 0660 with --control-group: run as root, as the daemon's user, or as a member of its control group"
	case syscall.ECONNREFUSED:
		return "nothing serves it: hyper-sched is not running, or died without removing it; " + from
	}
	return "is hyper-sched running? " + from
}

// session is one command's connection, past the hellos.
type session struct {
	nc     net.Conn
	conn   *ipc.Conn
	sock   socket
	verb   string // the request's, which a failure names
	unhook func() bool
}

// open connects, sends the hello and the request, and reads the daemon's
// hello; the caller reads the response(s). The connection closes when ctx
// ends, which is how Ctrl-C ends a tail -f.
func (c *ctl) open(req *ipc.Request) (*session, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(c.ctx, "unix", c.sock.path)
	if err != nil {
		return nil, unreachable(c.sock, err)
	}
	s := &session{nc: nc, conn: ipc.NewConn(nc, ipc.ControlMaxFrame), sock: c.sock, verb: req.Verb,
		unhook: context.AfterFunc(c.ctx, func() { nc.Close() })}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	// Written without waiting: the daemon reads both before it answers.
	if err := s.conn.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "ctl", Pid: os.Getpid(), CPU: -1}); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: send hello: %w", c.sock.url, err)
	}
	if err := s.conn.Write(ipc.KindRequest, req); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: send request: %w", c.sock.url, err)
	}
	if _, err := ipc.ReadHello(s.conn); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: %w", c.sock.url, err)
	}
	nc.SetDeadline(time.Time{})
	return s, nil
}

// next reads the next response. io.EOF means the daemon closed the
// connection between responses. A refusal of our credentials (exit status
// 4) and a failure of the whole request, Response.Err (exit status 1,
// printed as "VERB: ERR"), are returned as an *exitError.
func (s *session) next() (*ipc.Response, error) {
	k, err := s.conn.Read()
	if err != nil {
		return nil, err
	}
	if k != ipc.KindResponse {
		return nil, fmt.Errorf("%s: got a %v frame, want a response", s.sock.url, k)
	}
	var r ipc.Response
	if err := s.conn.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", s.sock.url, err)
	}
	if r.Denied {
		return nil, &exitError{code: exitUnreachable, msg: fmt.Sprintf("%s: refused by hyper-sched: %s", s.sock.url, r.Err)}
	}
	if r.Err != "" {
		return nil, &exitError{code: exitFailure, msg: s.verb + ": " + r.Err}
	}
	return &r, nil
}

func (s *session) close() {
	s.unhook()
	s.nc.Close()
}

// call sends req and returns its one response.
func (c *ctl) call(req *ipc.Request) (*ipc.Response, error) {
	s, err := c.open(req)
	if err != nil {
		return nil, err
	}
	defer s.close()
	r, err := s.next()
	if err != nil {
		if _, _, ok := asExit(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("%s: read response: %w (did hyper-sched exit?)", c.sock.url, err)
	}
	return r, nil
}
