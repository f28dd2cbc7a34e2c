package ipc

// The control socket (<runtime-dir>/control.sock) speaks the same frames as
// the children's socketpairs. One connection carries one command:
//
//	hyper-schedctl                      supervisor
//	hello{role "ctl"}        ───────▶
//	request                  ───────▶
//	                         ◀───────   hello{role "supervisor", pid}
//	                         ◀───────   response          (one; several for a follow)
//	close                               close
//
// The client writes its hello and request without waiting, so a command
// costs one round trip. The supervisor reads both before it answers, even
// when it refuses the peer (SO_PEERCRED), so the refusal is always read by
// the client as a Response rather than lost to a reset connection.

// ControlMaxFrame caps the frames on the control socket. A response holds at
// most a ring of 500 lines of 2 KiB each, or one line per module.
const ControlMaxFrame = 8 << 20

// ControlMaxRequest caps what the supervisor reads from a control peer
// before it knows whether the peer is allowed; requests are a few bytes.
const ControlMaxRequest = 64 << 10

// Verbs of a Request: hyper-schedctl's commands.
const (
	VerbStatus   = "status"   // Names filter; none or "all" = every process
	VerbStart    = "start"    // Names (or "all"); answers once RUNNING
	VerbStop     = "stop"     // Names (or "all"); answers once STOPPED
	VerbRestart  = "restart"  // stop, then start
	VerbPid      = "pid"      // no Names: the supervisor's pid
	VerbTail     = "tail"     // Names[0], Stream, Lines, Follow
	VerbMainTail = "maintail" // the supervisor's own log: Lines, Follow
	VerbModules  = "modules"  // registered modules
	VerbShutdown = "shutdown" // as SIGTERM; the connection closes once the daemon is done
	VerbVersion  = "version"
)

// Request is one hyper-schedctl command (KindRequest).
type Request struct {
	Verb   string   `msgpack:"verb"`
	Names  []string `msgpack:"names,omitempty"`
	Stream string   `msgpack:"stream,omitempty"` // tail: "stderr" (default) or "stdout"
	Lines  int      `msgpack:"lines,omitempty"`  // tail, maintail: how many; 0 = the default
	Follow bool     `msgpack:"follow,omitempty"` // tail, maintail: keep sending new lines
}

// Faults are the reasons a process-level action failed, with supervisorctl's
// wording; hyper-schedctl prints "NAME: ERROR (FAULT)" and chooses its exit
// status from them.
const (
	FaultBadName        = "no such process"
	FaultNotRunning     = "not running"
	FaultAlreadyStarted = "already started"
	FaultSpawn          = "spawn error"
	FaultShuttingDown   = "shutting down"
	FaultTimeout        = "timed out"
)

// Response answers a Request (KindResponse). A follow request gets one
// Response with the last lines, then one per batch of new lines, until
// either side closes.
type Response struct {
	// Err is a failure of the whole request; Denied says the peer's
	// credentials were refused.
	Err    string `msgpack:"err,omitempty"`
	Denied bool   `msgpack:"denied,omitempty"`

	Pid     int           `msgpack:"pid,omitempty"`     // pid: the supervisor's
	Version string        `msgpack:"version,omitempty"` // version: the daemon's
	Procs   []ProcInfo    `msgpack:"procs,omitempty"`   // status, pid NAME
	Results []ProcResult  `msgpack:"results,omitempty"` // start, stop, restart; unknown names
	Lines   []string      `msgpack:"lines,omitempty"`   // tail, maintail
	Skipped uint64        `msgpack:"skipped,omitempty"` // follow: lines lost before Lines (the ring wrapped)
	Modules []ModuleBrief `msgpack:"modules,omitempty"` // modules
}

// ProcInfo is one supervised process as hyper-schedctl status shows it.
type ProcInfo struct {
	Name      string   `msgpack:"name"`
	State     string   `msgpack:"state"` // supervisord's names: RUNNING, STOPPED, FATAL, …
	Pid       int      `msgpack:"pid"`   // 0 when not running
	CPU       int      `msgpack:"cpu"`   // worker CPU; -1 for benchd
	Affinity  string   `msgpack:"affinity,omitempty"`
	Isolation string   `msgpack:"isolation,omitempty"`
	UptimeNs  int64    `msgpack:"uptime_ns,omitempty"` // since RUNNING
	Spawned   bool     `msgpack:"spawned"`             // started at least once
	Restarts  int      `msgpack:"restarts"`
	LastExit  string   `msgpack:"last_exit,omitempty"`
	Stderr    []string `msgpack:"stderr,omitempty"` // last stderr lines, when not RUNNING
	Worker    bool     `msgpack:"worker"`           // the fields below are set
	Available bool     `msgpack:"available"`        // in admission
	Queued    int      `msgpack:"queued"`           // deadline jobs queued on its core
	Running   uint64   `msgpack:"running,omitempty"`
	Lane      string   `msgpack:"lane,omitempty"` // a worker lane: idle, running, stopped, killed, down
}

// ProcResult is the outcome of an action (Op: VerbStart, VerbStop) on one
// process: Action ("stopped", "started") on success, else Fault and an
// optional Detail.
type ProcResult struct {
	Name   string `msgpack:"name"`
	Op     string `msgpack:"op,omitempty"`
	Action string `msgpack:"action,omitempty"`
	Fault  string `msgpack:"fault,omitempty"`
	Detail string `msgpack:"detail,omitempty"`
}

// ModuleBrief is one registered module in hyper-schedctl modules.
type ModuleBrief struct {
	Name         string   `msgpack:"name"`
	SHA256       string   `msgpack:"sha256"`
	Size         int      `msgpack:"size"`
	Exports      []string `msgpack:"exports"` // "fib_r(i32) i32"
	Registered   string   `msgpack:"registered"`
	Calibrations int      `msgpack:"calibrations"`
}
