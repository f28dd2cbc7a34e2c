package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// errorf returns a failure of class c; its status and Error_* code come
// from classes, like every other failure's.
func errorf(c apierr.Code, format string, args ...any) error {
	return apierr.New(c, format, args...)
}

type class struct {
	status int
	code   string
}

// classes is the one mapping from failure classes to HTTP status and
// Error_* code (DESIGN.md §5).
var classes = map[apierr.Code]class{
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
	apierr.NoEndpoint:        {http.StatusNotFound, "Error_Bad_request"},
	apierr.MethodNotAllowed:  {http.StatusMethodNotAllowed, "Error_Bad_request"},
}

// toHTTP returns err's class and the *apierr.Error it carries; any other
// error is Internal, with its own text as the message.
func toHTTP(err error) (class, *apierr.Error) {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		ae = &apierr.Error{Code: apierr.Internal, Msg: err.Error()}
	}
	c, ok := classes[ae.Code]
	if !ok {
		c = classes[apierr.Internal]
	}
	return c, ae
}

// StatusOf returns the HTTP status and Error_* code for err.
func StatusOf(err error) (int, string) {
	c, _ := toHTTP(err)
	return c.status, c.code
}

type errorBody struct {
	Status       string `json:"status"`
	Error        string `json:"error"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

func writeError(w http.ResponseWriter, err error) {
	c, ae := toHTTP(err)
	body := errorBody{Status: c.code, Error: ae.Msg}
	if ae.RetryAfter > 0 {
		// Retry-After counts whole seconds; the body has the precise hint.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ae.RetryAfter.Seconds()))))
		body.RetryAfterMs = max(1, ae.RetryAfter.Milliseconds())
	}
	writeJSON(w, c.status, body)
}
