package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hyper-sched/hyper-sched/apierr"
	"github.com/hyper-sched/hyper-sched/wasmval"
)

// HeaderDeadlineAt is the raw route's absolute deadline, Unix time in
// milliseconds, the header form of /call's deadline_at (DeadlineAt).
const HeaderDeadlineAt = "Hyper-Deadline-At"

// minDeadlineAt is the smallest deadline_at taken, 10^12 ms
// (2001-09-09): a smaller value is almost surely Unix time in seconds
// (about 1.8·10^9 now), which read as milliseconds lies in January 1970 and
// would turn every call into a 504 without saying why.
const minDeadlineAt = 1e12

// DeadlineAt converts an absolute deadline, Unix time in milliseconds
// (integer or fractional, as a JSON string or number, or a header's text),
// into the relative deadline of a call that arrived at arrived: what is
// left of the budget. field names the source in errors: "deadline_at" in
// /call, "Hyper-Deadline-At" on the raw route.
//
// A deadline that has passed at arrival is a 504 Error_Deadline_exceeded,
// not a refusal: nothing ran, and a proxy must not retry it elsewhere (the
// shipped configurations retry only 503). One that is more than a day
// ahead, or not a number, is a 400; one before 2001 is a 400 that asks
// whether it was sent in seconds.
//
// # Notes
//
// The budget is only as good as the clocks: a node whose clock is ahead of
// the client's by s ms sees s ms less (docs/cluster.md).
func DeadlineAt(field, v string, arrived time.Time) (time.Duration, error) {
	f, ok, err := wasmval.Flex(v).Float64()
	switch {
	case err != nil:
		return 0, errorf(apierr.InvalidParams, "%s must be Unix time in milliseconds: %v", field, err)
	case !ok:
		return 0, errorf(apierr.InvalidParams, "%s is empty: send Unix time in milliseconds", field)
	case f < minDeadlineAt:
		return 0, errorf(apierr.InvalidParams, "%s is %s, before 2001-09-09 in Unix milliseconds: it must be "+
			"Unix time in milliseconds (seconds × 1000)", field, quote(v))
	case f-float64(arrived.UnixMilli()) > maxMillis+1: // before the conversion, which 1e300 overflows
		return 0, errorf(apierr.InvalidParams, "%s %s is more than a day after the call arrived, beyond the largest deadline", field, quote(v))
	}
	whole, frac := math.Modf(f)
	at := time.UnixMilli(int64(whole)).Add(time.Duration(math.Round(frac * float64(time.Millisecond))))
	left := at.Sub(arrived)
	switch {
	case left < time.Duration(minMillis*float64(time.Millisecond)):
		return 0, errorf(apierr.DeadlineExceeded, "%s %s passed %s before the call arrived: nothing ran "+
			"(its budget went in earlier hops, or the clocks disagree: docs/cluster.md)", field, quote(v),
			strconv.FormatFloat(ms(-left), 'f', -1, 64)+" ms")
	case left > maxMillis*time.Millisecond:
		return 0, errorf(apierr.InvalidParams, "%s %s is more than a day after the call arrived (%s ms), "+
			"beyond the largest deadline", field, quote(v), strconv.FormatFloat(ms(left), 'f', 0, 64))
	}
	return left, nil
}

// deadlineAtHeader applies the raw route's Hyper-Deadline-At to d, the
// relative deadline its Hyper-Deadline-Ms gave (0: none), for a call that
// arrived at arrived: the rules of /call's deadline_at, the header given
// at most once, and never beside a non-zero Hyper-Deadline-Ms.
func deadlineAtHeader(h http.Header, d time.Duration, arrived time.Time) (time.Duration, error) {
	vs := h.Values(HeaderDeadlineAt)
	switch {
	case len(vs) == 0:
		return d, nil
	case len(vs) > 1:
		return 0, errorf(apierr.BadRequest, "header %s is given %d times; send it once", HeaderDeadlineAt, len(vs))
	case d != 0:
		return 0, errorf(apierr.InvalidParams, "%s and %s are both given: send one, the relative deadline in ms "+
			"or the absolute one in Unix ms", HeaderDeadline, HeaderDeadlineAt)
	}
	v := strings.TrimSpace(vs[0])
	if len(v) > maxQuoted {
		return 0, errorf(apierr.InvalidParams, "header %s is %d bytes: send Unix time in milliseconds, e.g. 1764000000035", HeaderDeadlineAt, len(v))
	}
	return DeadlineAt(HeaderDeadlineAt, v, arrived)
}
