package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Outcome is how one call ended, as hyper-bench counts it.
type Outcome int

// The outcomes. Every call sent in the measured window ends in exactly one.
const (
	// OK is a 200 "Success" answer whose deadline was met (deadline_met
	// true) or that had no deadline (best effort, deadline_met absent).
	OK Outcome = iota
	// Rejected is a 503 Error_Unschedulable: refused by admission control.
	Rejected
	// Missed is a 200 answer with deadline_met false, or any 504 (the
	// daemon's Error_Deadline_exceeded: killed at the deadline).
	Missed
	// Failed is everything else: other statuses, transport errors, calls
	// still unanswered when the drain period ended.
	Failed
)

// answer is the part of a /call answer hyper-bench reads.
type answer struct {
	Status      string `json:"status"`
	DeadlineMet *bool  `json:"deadline_met"`
	// ExitCode is a command module's exit status (proc_exit); not 0 is an
	// answer, but not a good one: it counts as an error.
	ExitCode *int `json:"exit_code"`
	Timings  *struct {
		Total int64 `json:"total"` // µs, arrival → result, measured by the server
		Exec  int64 `json:"exec"`  // µs, the export's run time
	} `json:"timings_us"`
}

// verdict is a classified answer.
type verdict struct {
	outcome Outcome
	kind    string        // for Failed: a short, bounded error kind; else ""
	server  time.Duration // server-measured total, when the answer had one
	exec    time.Duration // server-measured run time, when the answer had one
}

// classify turns an HTTP status and body into a verdict.
func classify(code int, body []byte) verdict {
	var a answer
	jsonErr := json.Unmarshal(body, &a)
	var v verdict
	if a.Timings != nil {
		v.server = time.Duration(a.Timings.Total) * time.Microsecond
		v.exec = time.Duration(a.Timings.Exec) * time.Microsecond
	}
	switch {
	case code == http.StatusOK && jsonErr == nil && a.Status == "Success" && a.ExitCode != nil && *a.ExitCode != 0:
		v.outcome = Failed
		v.kind = "200 exit_code " + strconv.Itoa(*a.ExitCode)
		return v
	case code == http.StatusOK && jsonErr == nil && a.Status == "Success":
		if a.DeadlineMet != nil && !*a.DeadlineMet {
			v.outcome = Missed
		}
		return v
	case code == http.StatusServiceUnavailable && a.Status == "Error_Unschedulable":
		v.outcome = Rejected
		return v
	case code == http.StatusGatewayTimeout:
		v.outcome = Missed
		return v
	}
	v.outcome = Failed
	status := a.Status
	if jsonErr != nil || status == "" {
		status = "non-JSON"
	}
	if len(status) > 40 {
		status = status[:40]
	}
	v.kind = strconv.Itoa(code) + " " + status
	return v
}

// errKind names a transport error in a few words, so that the error map of
// a result stays small however many calls fail.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errUnfinished):
		return "unfinished at end of drain"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port"
	case errors.Is(err, syscall.EMFILE):
		return "too many open files"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "EOF"):
		return "connection closed (EOF)"
	}
	return "transport error"
}

var errUnfinished = errors.New("unfinished at end of drain")
