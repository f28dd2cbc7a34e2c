// Package apierr names the classes of failure a client can see. The
// supervisor returns them; httpapi (errors.go) alone maps each class to an
// HTTP status and an Error_* code, so the two never drift apart.
package apierr

import (
	"errors"
	"fmt"
	"time"
)

// Code is a class of failure.
type Code uint8

// The classes of DESIGN.md §5.
const (
	Internal Code = iota
	BadRequest
	InvalidParams
	InvalidWasmName
	InvalidExportFunc
	InvalidUniqueName
	UnknownTask
	TooLarge
	InvalidDeadline
	InvalidWasm
	Trap
	Unschedulable
	WorkerLost
	ShuttingDown
	DeadlineExceeded
	Unauthorized
	Conflict
	// The router's own answers: no route for the path, or a route without
	// the method. Appended last so no earlier class changes its value.
	NoEndpoint
	MethodNotAllowed
)

// Error is a failure with its class. RetryAfter, when positive, tells the
// client when to try again (503 answers).
type Error struct {
	Code       Code
	Msg        string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// New returns an *Error of class c with a formatted message.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns err's class; errors that are not *Error are Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
