package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyper-sched/hyper-sched/dispatch"
	"github.com/hyper-sched/hyper-sched/ipc"
)

// ControlSocket is the control socket's file name in Config.RuntimeDir.
const ControlSocket = "control.sock"

const (
	// ctlHandshake bounds a control peer's hello and request.
	ctlHandshake = 5 * time.Second
	// followEvery is how often tail -f looks for new lines. The rings have
	// no waiters to wake (a child's is filled by its stderr reader); a
	// 100 ms check costs nothing and follows as fast as an operator reads.
	followEvery = 100 * time.Millisecond
	// tailDefault is how many lines tail and maintail show without -N,
	// about supervisorctl's 1600 bytes of log.
	tailDefault = 20
	// stopGrace is how long a stopped child may take to exit after its
	// socket closed (its stop signal) before it is killed.
	stopGrace = 5 * time.Second
	// startWait bounds how long start waits for RUNNING: spawn, hello and
	// the loading of every module, with up to startRetries quick failures.
	startWait = 2 * time.Minute
)

// controlServer serves hyper-schedctl on <runtime-dir>/control.sock.
type controlServer struct {
	s        *Supervisor
	ln       *net.UnixListener
	path     string
	uid      uint32 // the daemon's effective uid
	gid      int    // control group; -1 when none
	shutdown context.CancelFunc
	done     chan struct{} // closed by close

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// listenControl creates the control socket, replacing a stale one left by
// a daemon that died, and refusing to start when a live daemon serves it.
// The socket is mode 0600, or 0660 owned by Config.ControlGroup. shutdown
// is what the shutdown command calls.
func (s *Supervisor) listenControl(shutdown context.CancelFunc) (*controlServer, error) {
	gid, err := lookupGroup(s.cfg.ControlGroup)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	path := filepath.Join(s.cfg.RuntimeDir, ControlSocket)
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The socket exists with the umask's mode for a moment; a peer that
	// connects then is still checked by SO_PEERCRED.
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket: %w", err)
		}
		if fi, err := os.Stat(s.cfg.RuntimeDir); err == nil && !groupCanEnter(fi, gid) {
			s.log.Warn("control group cannot reach the control socket: its directory is not searchable by the group",
				"dir", s.cfg.RuntimeDir, "mode", fi.Mode().Perm().String(), "gid", gid)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	cs := &controlServer{s: s, ln: ln, path: path, uid: uint32(os.Geteuid()), gid: gid,
		shutdown: shutdown, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.log.Info("control socket", "path", path, "mode", mode.String(), "group", s.cfg.ControlGroup)
	return cs, nil
}

// lookupGroup resolves a group name or number; "" is none (-1).
func lookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err == nil {
		return strconv.Atoi(g.Gid)
	}
	if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
		return n, nil
	}
	return -1, fmt.Errorf("control group %q: %w", name, err)
}

// groupCanEnter reports whether members of gid can search dir.
func groupCanEnter(fi fs.FileInfo, gid int) bool {
	perm := fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) == gid {
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// removeStale removes a control socket nobody serves. A live one means
// another daemon uses the same runtime dir, which would be unsafe to share.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is served by another process (another hyper-sched with the same --runtime-dir?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return os.Remove(path)
}

// serve accepts connections until close. A failed accept (EMFILE) is
// retried after a pause, as net/http does, so that the socket outlives a
// burst of connections.
func (cs *controlServer) serve() {
	var pause time.Duration
	for {
		nc, err := cs.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			cs.s.log.Error("control socket: accept", "err", err, "retry_in", pause)
			select {
			case <-cs.done:
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		cs.mu.Lock()
		select {
		case <-cs.done:
			cs.mu.Unlock()
			nc.Close()
			return
		default:
		}
		cs.conns[nc] = struct{}{}
		cs.wg.Add(1)
		cs.mu.Unlock()
		go func() {
			defer cs.wg.Done()
			cs.handle(nc)
			cs.mu.Lock()
			delete(cs.conns, nc)
			cs.mu.Unlock()
			nc.Close()
		}()
	}
}

// close stops accepting, ends every open connection (a tail -f, a
// shutdown waiting for the end) and removes the socket.
func (cs *controlServer) close() {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return
	}
	cs.closed = true
	close(cs.done)
	for nc := range cs.conns {
		nc.Close()
	}
	cs.mu.Unlock()
	cs.ln.Close() // unlinks the socket
	cs.wg.Wait()
	if err := os.Remove(cs.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		cs.s.log.Warn("remove control socket", "err", err)
	}
}

// handle runs one command: hellos, the peer check, the request, its answer.
func (cs *controlServer) handle(nc *net.UnixConn) {
	log := cs.s.log
	peer, credErr := readPeer(nc)
	// Reads are capped small until the peer is known; answers may be large.
	in := ipc.NewConn(nc, ipc.ControlMaxRequest)
	out := ipc.NewConn(nc, ipc.ControlMaxFrame)
	nc.SetDeadline(time.Now().Add(ctlHandshake))
	if err := out.Write(ipc.KindHello, &ipc.Hello{Version: ipc.Version, Role: "supervisor", Proc: "hyper-sched",
		Pid: os.Getpid(), CPU: -1}); err != nil {
		return
	}
	h, err := ipc.ReadHello(in)
	if err != nil || h.Role != "ctl" {
		log.Debug("control socket: bad hello", "err", err, "role", h.Role)
		return
	}
	var req ipc.Request
	if k, err := in.Read(); err != nil || k != ipc.KindRequest {
		log.Debug("control socket: no request", "err", err, "kind", k)
		return
	}
	if err := in.Decode(&req); err != nil {
		log.Debug("control socket: bad request", "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	if credErr == nil && cs.gid >= 0 && peer.uid != 0 && peer.uid != cs.uid && peer.gid != uint32(cs.gid) {
		peer.groups = procGroups(peer.pid)
	}
	deny := credErr
	if deny == nil {
		deny = peerAllowed(peer, cs.uid, cs.gid)
	}
	if deny != nil {
		log.Warn("control socket: refused a peer", "peer_uid", peer.uid, "peer_pid", peer.pid, "verb", req.Verb, "err", deny)
		out.Write(ipc.KindResponse, &ipc.Response{Denied: true, Err: deny.Error()})
		return
	}
	log.Debug("control command", "verb", req.Verb, "names", req.Names, "peer_uid", peer.uid)
	cs.dispatch(in, out, &req)
}

// dispatch answers one allowed request.
func (cs *controlServer) dispatch(in, out *ipc.Conn, req *ipc.Request) {
	s := cs.s
	reply := func(r *ipc.Response) { out.Write(ipc.KindResponse, r) }
	switch req.Verb {
	case ipc.VerbStatus:
		reply(s.ctlStatus(req.Names))
	case ipc.VerbPid:
		if len(req.Names) == 0 {
			reply(&ipc.Response{Pid: os.Getpid()})
			return
		}
		reply(s.ctlStatus(req.Names))
	case ipc.VerbStart, ipc.VerbStop, ipc.VerbRestart:
		if len(req.Names) == 0 {
			reply(&ipc.Response{Err: req.Verb + " needs a process name or all"})
			return
		}
		reply(cs.act(req.Verb, req.Names))
	case ipc.VerbTail, ipc.VerbMainTail:
		r, resp := cs.tailSource(req)
		if r == nil {
			reply(resp)
			return
		}
		cs.tail(in, out, r, req)
	case ipc.VerbModules:
		reply(s.ctlModules())
	case ipc.VerbVersion:
		reply(&ipc.Response{Version: s.cfg.Version})
	case ipc.VerbShutdown:
		s.mu.Lock()
		shutting := s.shutting
		s.mu.Unlock()
		if shutting {
			reply(&ipc.Response{Results: []ipc.ProcResult{{Name: "hyper-sched", Fault: ipc.FaultShuttingDown}}})
			return
		}
		s.log.Info("shutdown requested over the control socket")
		cs.shutdown()
		reply(&ipc.Response{Pid: os.Getpid()})
		<-cs.done // the client sees EOF once every call is answered
	default:
		reply(&ipc.Response{Err: fmt.Sprintf("unknown command %q", req.Verb)})
	}
}

// named returns the processes called name: benchd, one lane
// ("worker-1:0"), or every lane of a CPU ("worker-1"); nil if none.
func (s *Supervisor) named(name string) []*child {
	if name == s.benchd.name {
		return []*child{s.benchd}
	}
	var out []*child
	for _, w := range s.workers {
		if w.name == name || w.group == name {
			out = append(out, w)
		}
	}
	return out
}

// choose resolves names (none or "all": every process) to children, and
// reports the unknown ones.
func (s *Supervisor) choose(names []string) ([]*child, []ipc.ProcResult) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return s.children(), nil
	}
	var cs []*child
	var bad []ipc.ProcResult
	for _, n := range names {
		named := s.named(n)
		if named == nil {
			bad = append(bad, ipc.ProcResult{Name: n, Fault: ipc.FaultBadName})
		}
		for _, c := range named {
			if !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
	}
	return cs, bad
}

// ctlStatus answers status and pid NAME.
func (s *Supervisor) ctlStatus(names []string) *ipc.Response {
	cs, bad := s.choose(names)
	resp := &ipc.Response{Results: bad}
	s.mu.Lock()
	_, cores, _ := s.disp.Stats()
	for _, c := range cs {
		resp.Procs = append(resp.Procs, s.procInfo(c, cores))
	}
	s.mu.Unlock()
	// The kernel's view, read without the lock (as GET /status does).
	for i, c := range cs {
		pl := s.isolationOf(c, resp.Procs[i].Pid)
		resp.Procs[i].Affinity, resp.Procs[i].Isolation = pl.Affinity, string(pl.Mode)
	}
	return resp
}

// procInfo describes c for hyper-schedctl, all but its placement (see
// ctlStatus); s.mu held.
func (s *Supervisor) procInfo(c *child, cores []dispatch.CoreInfo) ipc.ProcInfo {
	p := s.procStatus(c)
	info := ipc.ProcInfo{Name: c.name, State: p.State, Pid: c.pid, CPU: c.cpu, Spawned: c.gen > 0, Restarts: c.restarts, LastExit: c.lastExit, Stderr: p.Stderr}
	if c.pid > 0 {
		info.UptimeNs = time.Since(c.upAt).Nanoseconds()
	}
	if c.core >= 0 {
		cs := cores[c.core]
		info.Worker, info.Available, info.Queued = true, cs.Available, cs.Queued
		l := cs.Lanes[c.lane]
		info.Running, info.Lane = l.Task, l.State
	}
	return info
}

// ctlModules answers modules.
func (s *Supervisor) ctlModules() *ipc.Response {
	resp := &ipc.Response{}
	for _, m := range s.store.all() {
		b := ipc.ModuleBrief{Name: m.Name, SHA256: m.SHA256, Size: m.Size, Calibrations: len(m.Calibrations),
			Registered: m.Registered.UTC().Format(time.RFC3339)}
		for _, e := range m.Exports {
			sig := e.Name + "(" + typesString(e.Params) + ")"
			if len(e.Results) > 0 {
				sig += " " + typesString(e.Results)
			}
			b.Exports = append(b.Exports, sig)
		}
		resp.Modules = append(resp.Modules, b)
	}
	return resp
}

// act runs start, stop or restart on every named process at once (a
// worker's stop waits for its running call) and answers in name order.
func (cs *controlServer) act(verb string, names []string) *ipc.Response {
	s := cs.s
	procs, bad := s.choose(names)
	results := make([][]ipc.ProcResult, len(procs))
	var wg sync.WaitGroup
	for i, c := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if verb == ipc.VerbStop || verb == ipc.VerbRestart {
				results[i] = append(results[i], s.stopProc(cs.done, c))
			}
			if verb == ipc.VerbStart || verb == ipc.VerbRestart {
				results[i] = append(results[i], s.startProc(cs.done, c))
			}
		}()
	}
	wg.Wait()
	resp := &ipc.Response{Results: bad}
	for _, r := range results {
		resp.Results = append(resp.Results, r...)
	}
	return resp
}

// stopProc takes c out of service as supervisorctl stop does: its socket
// closes, on which it exits 0. A worker lane leaves its core at once: a
// call started on it is answered Error_Worker_lost and the lane killed;
// once every lane of a CPU is stopped, the core leaves admission and its
// queued calls go to other cores (or are answered when none can meet
// their deadlines). It returns once c is STOPPED, or done is closed.
func (s *Supervisor) stopProc(done <-chan struct{}, c *child) ipc.ProcResult {
	res := ipc.ProcResult{Name: c.name, Op: ipc.VerbStop}
	s.mu.Lock()
	if !c.wanted && (c.state == Stopped || c.state == Fatal) {
		s.mu.Unlock()
		res.Fault = ipc.FaultNotRunning
		return res
	}
	c.wanted = false
	s.transition(c, EvStop)
	limit := stopGrace
	if c.lp != nil {
		// Out of the dispatcher first: it sends this lane nothing more.
		busy := s.disp.LaneDown(c.core, c.lane, c.lp, c.name+" was stopped by hyper-schedctl")
		c.lp = nil
		if busy && c.proc != nil {
			c.kill(c.proc, "it held a call when it was stopped") // perhaps SIGSTOPped: no clean exit to wait for
		}
	}
	s.coreDownIfUnwanted(c, "was stopped")
	s.loseBestEffortIfNoWorker()
	if c.nc != nil {
		c.nc.Close()
	}
	gen := c.gen
	s.broadcast()
	s.mu.Unlock()
	c.log.Info("stopping", "by", "hyper-schedctl")

	stopped := func() bool { return c.state == Stopped || c.state == Fatal || c.gen != gen }
	if !s.waitChild(done, limit, stopped) {
		s.mu.Lock()
		if c.gen == gen && c.proc != nil {
			c.kill(c.proc, fmt.Sprintf("it did not stop within %v", limit))
		}
		s.mu.Unlock()
		if !s.waitChild(done, stopGrace, stopped) {
			res.Fault, res.Detail = ipc.FaultTimeout, "still "+c.state.String()
			return res
		}
	}
	res.Action = "stopped"
	return res
}

// startProc makes c wanted again — from STOPPED, FATAL or a stop in progress —
// and returns once it is RUNNING (a worker back in admission), FATAL, or
// startWait passed.
func (s *Supervisor) startProc(done <-chan struct{}, c *child) ipc.ProcResult {
	res := ipc.ProcResult{Name: c.name, Op: ipc.VerbStart}
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		res.Fault = ipc.FaultShuttingDown
		return res
	}
	if c.wanted && c.state == Running {
		s.mu.Unlock()
		res.Fault = ipc.FaultAlreadyStarted
		return res
	}
	gen, from := c.gen, c.state
	c.wanted = true
	c.failures = 0 // a manual start gets a full set of retries, as in supervisord
	s.broadcast()
	s.mu.Unlock()
	c.log.Info("starting", "by", "hyper-schedctl", "from", from)

	fresh := func() bool { return c.gen > gen || (from == Starting && c.gen == gen) }
	settled := func() bool { return !c.wanted || (fresh() && (c.state == Running || c.state == Fatal)) }
	ok := s.waitChild(done, startWait, settled)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !ok:
		res.Fault, res.Detail = ipc.FaultTimeout, "still "+c.state.String()
	case c.state == Running && fresh():
		res.Action = "started"
	case c.state == Fatal:
		res.Fault, res.Detail = ipc.FaultSpawn, c.lastExit
	default:
		res.Fault, res.Detail = ipc.FaultNotRunning, "stopped while starting"
	}
	return res
}

// waitChild waits until cond (called with s.mu held) holds, limit passes
// (false) or done is closed (false). A limit of 0 or less is none.
func (s *Supervisor) waitChild(done <-chan struct{}, limit time.Duration, cond func() bool) bool {
	var expired <-chan time.Time // nil, never ready, without a limit
	if limit > 0 {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		expired = timer.C
	}
	for {
		s.mu.Lock()
		ok, wake := cond(), s.wake
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-wake:
		case <-expired:
			return false
		case <-done:
			return false
		}
	}
}

// tailSource returns the ring a tail or maintail request reads, or the
// answer explaining why there is none.
func (cs *controlServer) tailSource(req *ipc.Request) (*ring, *ipc.Response) {
	if req.Verb == ipc.VerbMainTail {
		if cs.s.cfg.LogRing == nil {
			return nil, &ipc.Response{Err: "this daemon keeps no log lines (supervisor.Config.LogRing is nil)"}
		}
		return &cs.s.cfg.LogRing.r, nil
	}
	if len(req.Names) != 1 {
		return nil, &ipc.Response{Err: "tail needs one process name"}
	}
	named := cs.s.named(req.Names[0])
	if named == nil {
		return nil, &ipc.Response{Results: []ipc.ProcResult{{Name: req.Names[0], Fault: ipc.FaultBadName}}}
	}
	c := named[0] // a CPU's name tails its lane 0
	switch req.Stream {
	case "", "stderr":
		return &c.errs, nil
	case "stdout":
		return nil, &ipc.Response{Err: fmt.Sprintf("%s has no stdout log: a child's stdout is /dev/null "+
			"(its IPC is fd 3, its logs go to stderr); use: tail %s stderr", c.name, c.name)}
	}
	return nil, &ipc.Response{Err: fmt.Sprintf("unknown stream %q: stderr or stdout", req.Stream)}
}

// tail sends the last lines of r and, with Follow, new lines as they come
// until the client closes or the daemon ends.
func (cs *controlServer) tail(in, out *ipc.Conn, r *ring, req *ipc.Request) {
	n := req.Lines
	if n <= 0 {
		n = tailDefault
	}
	lines, seen := r.last(min(n, ringLines))
	if err := out.Write(ipc.KindResponse, &ipc.Response{Lines: lines}); err != nil || !req.Follow {
		return
	}
	gone := make(chan struct{})
	go func() {
		// The client sends nothing more; a read ends when it hangs up.
		for {
			if _, err := in.Read(); err != nil {
				close(gone)
				return
			}
		}
	}()
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		select {
		case <-gone:
			return
		case <-cs.done:
			return
		case <-tick.C:
		}
		if _, total := r.last(0); total == seen {
			continue
		}
		lines, total := r.last(ringLines)
		fresh := total - seen
		var skipped uint64
		if fresh > uint64(len(lines)) {
			skipped, fresh = fresh-uint64(len(lines)), uint64(len(lines))
		}
		seen = total
		if err := out.Write(ipc.KindResponse, &ipc.Response{Lines: lines[uint64(len(lines))-fresh:], Skipped: skipped}); err != nil {
			return
		}
	}
}

// Reload loads the modules found in the state dir but not in memory — put
// there by hand or restored from a backup — and installs them on the
// running workers, as a SIGHUP asks. Calls in flight are not disturbed. It
// returns the names added, and the modules that could not be loaded as one
// error.
//
// # Notes
//
// Modules already in memory are left alone even if their files changed:
// replacing one goes through POST /register with replace=true. A Reload
// racing with DELETE /modules/NAME may load the module again just before
// its files go; delete it again.
func (s *Supervisor) Reload() ([]string, error) {
	names, err := s.store.moduleDirs()
	if err != nil {
		return nil, fmt.Errorf("reload modules: %w", err)
	}
	var added []string
	var errs []error
	for _, name := range names {
		if _, ok := s.store.get(name); ok {
			continue
		}
		m, err := s.store.load(name)
		if err == nil {
			var done func()
			if done, err = s.installOnWorkers(context.Background(), m); err == nil {
				ok := s.store.addIfAbsent(m)
				done()
				if !ok {
					continue // registered over HTTP meanwhile
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reload module %s: %w", name, err))
			continue
		}
		s.mu.Lock()
		s.seedEstimates(m)
		s.mu.Unlock()
		s.log.Info("reloaded module", "module", m.Name, "sha256", m.SHA256[:min(12, len(m.SHA256))])
		added = append(added, name)
	}
	return added, errors.Join(errs...)
}

// RequestReload runs Reload in the background, as SIGHUP asks. Requests
// that come while one runs are coalesced into one more run after it, and
// an error is logged once until it changes: a storm of SIGHUPs costs one
// or two scans and one line.
func (s *Supervisor) RequestReload() {
	s.mdir.request()
	r := &s.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		r.again = true
		return
	}
	r.running = true
	go func() {
		for {
			_, err := s.Reload()
			r.mu.Lock()
			switch msg := fmt.Sprint(err); {
			case err == nil:
			case msg != r.lastErr:
				s.log.Error("reload", "err", err)
			default:
				s.log.Debug("reload: same errors as the last time", "err", err)
			}
			if err == nil {
				r.lastErr = ""
			} else {
				r.lastErr = fmt.Sprint(err)
			}
			if !r.again {
				r.running = false
				r.mu.Unlock()
				return
			}
			r.again = false
			r.mu.Unlock()
		}
	}()
}

// reloads coalesces reload requests (RequestReload).
type reloads struct {
	mu             sync.Mutex
	running, again bool
	lastErr        string
}

// peerCred is a control peer's credentials: SO_PEERCRED, plus the
// supplementary groups, read only when they decide.
type peerCred struct {
	pid      int32
	uid, gid uint32
	groups   []uint32
}

// readPeer reads the connecting process's credentials.
func readPeer(nc *net.UnixConn) (peerCred, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return peerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var uc *unix.Ucred
	var uerr error
	if err := raw.Control(func(fd uintptr) {
		uc, uerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if uerr != nil {
		return peerCred{}, fmt.Errorf("read peer credentials: %w", uerr)
	}
	return peerCred{pid: uc.Pid, uid: uc.Uid, gid: uc.Gid}, nil
}

// procGroups returns pid's supplementary groups, or nil. SO_PEERCRED has
// the primary group only; the peer is connected and waiting for its
// answer, so its pid is still its own.
func procGroups(pid int32) []uint32 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	return parseGroups(string(b))
}

// parseGroups reads the Groups: line of /proc/PID/status.
func parseGroups(status string) []uint32 {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.ParseUint(f, 10, 32); err == nil {
				out = append(out, uint32(g))
			}
		}
		return out
	}
	return nil
}

// peerAllowed decides who may use the control socket: root, the daemon's
// own user, and, when a control group is set (gid >= 0), processes that
// have it as their primary or a supplementary group. The socket's mode
// already keeps others out; this holds even if the mode is loosened by
// hand. The error says who may.
func peerAllowed(p peerCred, self uint32, gid int) error {
	if p.uid == 0 || p.uid == self {
		return nil
	}
	if gid >= 0 && (p.gid == uint32(gid) || slices.Contains(p.groups, uint32(gid))) {
		return nil
	}
	who := "root"
	if self != 0 {
		who = fmt.Sprintf("root and the daemon's user (uid %d)", self)
	}
	if gid >= 0 {
		return fmt.Errorf("permission denied: uid %d may not use the control socket; %s and members of the control group (gid %d) may",
			p.uid, who, gid)
	}
	return fmt.Errorf("permission denied: uid %d may not use the control socket; only %s may (start hyper-sched with --control-group to admit a group)",
		p.uid, who)
}
