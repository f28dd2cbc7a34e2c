package httpapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// httpError is an error ready to be written: HTTP status, Error_* code,
// message and an optional retry hint.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// classes is the one mapping from failure classes to HTTP status and
// Error_* code (DESIGN.md §5).
var classes = map[apierr.Code]struct {
	status int
	code   string
}{
	apierr.Internal:          {http.StatusInternalServerError, "Error_Internal"},
	apierr.BadRequest:        {http.StatusBadRequest, "Error_Bad_request"},
	apierr.InvalidParams:     {http.StatusBadRequest, "Error_Invalid_params"},
	apierr.InvalidWasmName:   {http.StatusNotFound, "Error_Invalid_wasm_name"},
	apierr.InvalidExportFunc: {http.StatusNotFound, "Error_Invalid_export_func"},
	apierr.InvalidUniqueName: {http.StatusConflict, "Error_Invalid_unique_name"},
	apierr.UnknownTask:       {http.StatusNotFound, "Error_Invalid_unique_name"},
	apierr.Conflict:          {http.StatusConflict, "Error_Invalid_wasm_name"}, // the seed's code for a taken name
	apierr.TooLarge:          {http.StatusRequestEntityTooLarge, "Error_Too_large"},
	apierr.InvalidDeadline:   {http.StatusUnprocessableEntity, "Error_Invalid_deadline"},
	apierr.InvalidWasm:       {http.StatusUnprocessableEntity, "Error_Invalid_wasm"},
	apierr.Trap:              {http.StatusInternalServerError, "Error_Trap"},
	apierr.Unschedulable:     {http.StatusServiceUnavailable, "Error_Unschedulable"},
	apierr.WorkerLost:        {http.StatusServiceUnavailable, "Error_Worker_lost"},
	apierr.ShuttingDown:      {http.StatusServiceUnavailable, "Error_Shutting_down"},
	apierr.DeadlineExceeded:  {http.StatusGatewayTimeout, "Error_Deadline_exceeded"},
	apierr.Unauthorized:      {http.StatusUnauthorized, "Error_Unauthorized"},
}

// toHTTP classifies err.
func toHTTP(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ae *apierr.Error
	if errors.As(err, &ae) {
		c, ok := classes[ae.Code]
		if !ok {
			c = classes[apierr.Internal]
		}
		return &httpError{status: c.status, code: c.code, msg: ae.Msg, retryAfter: ae.RetryAfter}
	}
	c := classes[apierr.Internal]
	return &httpError{status: c.status, code: c.code, msg: err.Error()}
}

// StatusOf returns the HTTP status and Error_* code for err.
func StatusOf(err error) (int, string) {
	he := toHTTP(err)
	return he.status, he.code
}

type errorBody struct {
	Status       string `json:"status"`
	Error        string `json:"error"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

func writeError(w http.ResponseWriter, err error) {
	he := toHTTP(err)
	body := errorBody{Status: he.code, Error: he.msg}
	if he.retryAfter > 0 {
		// Retry-After counts whole seconds; the body has the precise hint.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(he.retryAfter.Seconds()))))
		body.RetryAfterMs = max(1, he.retryAfter.Milliseconds())
	}
	writeJSON(w, he.status, body)
}
