package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The /call answer is written on every call, and encoding/json spends a few
// microseconds of reflection on it in a loaded daemon (docs/benchmarks.md,
// "Sixth pass"). appendJSON writes the same bytes by hand for the answers
// of single calls; a chain's answer, rarer and nested, goes through
// encoding/json. FuzzCallAnswerJSON holds the two to the same output.

// answerBufs recycles the buffers answers are encoded into.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeCallAnswer writes a as writeJSON would, with the same bytes.
func writeCallAnswer(w http.ResponseWriter, a *callAnswer) {
	bp := answerBufs.Get().(*[]byte)
	b, ok := a.appendJSON((*bp)[:0])
	if !ok {
		answerBufs.Put(bp)
		writeJSON(w, http.StatusOK, a)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	if cap(b) <= 64<<10 { // an answer with a large output is not kept
		*bp = b
		answerBufs.Put(bp)
	}
}

// appendJSON appends a's JSON to b as json.Encoder with HTML escaping off
// writes it, newline included, and reports true; or reports false, with b
// unusable, for what it does not encode: a chain's stages, a result of an
// invalid type, a float JSON has no number for.
func (a *callAnswer) appendJSON(b []byte) ([]byte, bool) {
	if len(a.Stages) > 0 || !finite(a.DeadlineMs) || !finite(a.EstimateMs) {
		return b, false
	}
	b = append(b, `{"status":`...)
	b = appendString(b, a.Status)
	b = append(b, `,"result":`...)
	b = appendString(b, a.Result)
	b = append(b, `,"results":`...)
	if a.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, v := range a.Results {
			if i > 0 {
				b = append(b, ',')
			}
			vb, err := v.MarshalJSON()
			if err != nil {
				return b, false
			}
			b = append(b, vb...)
		}
		b = append(b, ']')
	}
	b = append(b, `,"task_id":`...)
	b = appendString(b, a.TaskID)
	b = append(b, `,"task_unique_name":`...)
	b = appendString(b, a.TaskName)
	b = append(b, `,"worker":`...)
	b = appendString(b, a.Worker)
	b = append(b, `,"cpu":`...)
	b = strconv.AppendInt(b, int64(a.CPU), 10)
	b = append(b, `,"lane":`...)
	b = strconv.AppendInt(b, int64(a.Lane), 10)
	if a.Preempted {
		b = append(b, `,"preempted":true`...)
	}
	if a.DeadlineMet != nil {
		b = append(b, `,"deadline_met":`...)
		b = strconv.AppendBool(b, *a.DeadlineMet)
	}
	if a.DeadlineMs != 0 {
		b = append(b, `,"deadline_ms":`...)
		b = appendFloat(b, a.DeadlineMs)
	}
	if a.EstimateMs != 0 {
		b = append(b, `,"estimate_ms":`...)
		b = appendFloat(b, a.EstimateMs)
	}
	if a.EstimateSource != "" {
		b = append(b, `,"estimate_source":`...)
		b = appendString(b, a.EstimateSource)
	}
	t := &a.TimingsUs
	b = append(b, `,"timings_us":{"queue":`...)
	b = strconv.AppendInt(b, t.Queue, 10)
	b = append(b, `,"instantiate":`...)
	b = strconv.AppendInt(b, t.Instantiate, 10)
	b = append(b, `,"exec":`...)
	b = strconv.AppendInt(b, t.Exec, 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, t.Total, 10)
	if t.Stopped != 0 {
		b = append(b, `,"stopped":`...)
		b = strconv.AppendInt(b, t.Stopped, 10)
	}
	if t.Start != 0 {
		b = append(b, `,"start":`...)
		b = strconv.AppendInt(b, t.Start, 10)
	}
	b = append(b, '}')
	b = appendOptString(b, `,"stdout":`, a.Stdout)
	b = appendOptString(b, `,"stderr":`, a.Stderr)
	o := &a.output
	b = appendOptString(b, `,"output":`, o.Output)
	b = appendOptString(b, `,"output_base64":`, o.OutputBase64)
	if o.OutputTruncated {
		b = append(b, `,"output_truncated":true`...)
	}
	b = appendOptInt(b, `,"output_bytes":`, o.OutputBytes)
	b = appendOptInt(b, `,"output_kept_bytes":`, o.OutputKept)
	if o.StderrTruncated {
		b = append(b, `,"stderr_truncated":true`...)
	}
	b = appendOptInt(b, `,"stderr_bytes":`, o.StderrBytes)
	if o.ExitCode != nil {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(*o.ExitCode), 10)
	}
	return append(b, "}\n"...), true
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

func appendOptString(b []byte, key string, s *string) []byte {
	if s == nil {
		return b
	}
	return appendString(append(b, key...), *s)
}

func appendOptInt(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendFloat formats f as encoding/json does a float64: the shortest
// decimal that reads back the same, in exponent form below 1e-6 or from
// 1e21, with a one-digit negative exponent not padded ("1e-7").
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping off:
// quote, backslash and control characters escaped, invalid UTF-8 replaced
// by \ufffd, U+2028 and U+2029 escaped (JavaScript reads them as line
// ends).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
