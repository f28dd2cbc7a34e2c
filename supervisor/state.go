package supervisor

// State is a child process's state, with supervisord's names so operators
// read `status` the way they already do.
type State uint8

// Process states.
const (
	Stopped  State = iota // not running, not wanted (hyper-schedctl stop)
	Starting              // spawned, hello or module loading not finished
	Running               // serving; a worker's CPU is in admission
	Backoff               // exited too quickly; waiting to retry
	Stopping              // asked to stop, not yet exited
	Exited                // exited; a restart follows
	Fatal                 // too many quick failures; `start` brings it back
)

var stateNames = [...]string{"STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// Event is what happened to a child, the input of Next.
type Event uint8

// Events.
const (
	EvStart  Event = iota // spawn requested (boot, restart, `start`)
	EvUp                  // hello answered and modules loaded
	EvExit                // process exited (or its socket closed)
	EvRetry               // backoff delay elapsed
	EvStop                // `stop` requested
	EvGiveUp              // retries exhausted
)

// Next is the one place where state transitions are decided. It returns the
// new state and whether the transition is allowed; a disallowed one leaves
// the state as it was. wanted says whether the child should be running
// (false after `stop`), quick whether an exit came within startsecs of the
// start.
func Next(s State, e Event, wanted, quick bool) (State, bool) {
	switch e {
	case EvStart:
		switch s {
		case Stopped, Exited, Backoff, Fatal:
			return Starting, true
		}
	case EvUp:
		if s == Starting {
			return Running, true
		}
	case EvExit:
		switch {
		case s == Stopping || !wanted:
			return Stopped, true
		case s == Starting || quick:
			return Backoff, true
		case s == Running:
			return Exited, true
		}
	case EvRetry:
		if s == Backoff {
			return Starting, true
		}
	case EvStop:
		switch s {
		case Starting, Running:
			return Stopping, true
		case Backoff, Exited, Fatal:
			return Stopped, true
		}
	case EvGiveUp:
		if s == Backoff {
			return Fatal, true
		}
	}
	return s, false
}
