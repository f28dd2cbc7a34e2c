package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDeadlineAt: an absolute deadline becomes what is left of it at
// arrival, in /call's JSON (string or number) and in the raw route's
// header text alike; a passed one is a 504, nonsense a 400.
func TestDeadlineAt(t *testing.T) {
	arrived := time.UnixMilli(1_764_000_000_000) // 2025-11-24
	for _, tt := range []struct {
		name, v string
		want    time.Duration
		code    string
		msg     string // a part of the error
	}{
		{"35 ms ahead", "1764000000035", 35 * time.Millisecond, "", ""},
		{"fractional", "1764000000000.5", 500 * time.Microsecond, "", ""},
		{"exponent", "1.764000000035e12", 35 * time.Millisecond, "", ""},
		{"a day ahead", "1764086400000", 24 * time.Hour, "", ""},
		{"passed", "1763999999990", 0, "Error_Deadline_exceeded", "passed 10 ms before"},
		{"now", "1764000000000", 0, "Error_Deadline_exceeded", "passed 0 ms before"},
		{"below 1 µs ahead", "1764000000000.0004", 0, "Error_Deadline_exceeded", "passed"},
		{"more than a day", "1764086400001", 0, "Error_Invalid_params", "more than a day"},
		{"seconds", "1764000000", 0, "Error_Invalid_params", "seconds × 1000"},
		{"negative", "-5", 0, "Error_Invalid_params", "before 2001"},
		{"not a number", "soon", 0, "Error_Invalid_params", "Unix time in milliseconds"},
		{"empty", "", 0, "Error_Invalid_params", "empty"},
		{"huge", "1e300", 0, "Error_Invalid_params", "more than a day"},
		{"overflow", "1e400", 0, "Error_Invalid_params", "out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeadlineAt("deadline_at", tt.v, arrived)
			if tt.code == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %v, want %s", got, tt.code)
			}
			if _, code := StatusOf(err); code != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %s %q, want %s with %q", code, err, tt.code, tt.msg)
			}
		})
	}
}

// TestDecodeCallDeadlineAt: deadline_at in a /call body, as a string or a
// number, sets the relative deadline; with expected_deadline too it is a
// 400.
func TestDecodeCallDeadlineAt(t *testing.T) {
	arrived := time.UnixMilli(1_764_000_000_000)
	for _, tt := range []struct {
		name, body string
		want       time.Duration
		code       string
	}{
		{"string", `{"wasm_name":"m","export_func":"f","deadline_at":"1764000000035"}`, 35 * time.Millisecond, ""},
		{"number", `{"wasm_name":"m","export_func":"f","deadline_at":1764000000020}`, 20 * time.Millisecond, ""},
		{"null is absent", `{"wasm_name":"m","export_func":"f","deadline_at":null}`, 0, ""},
		{"with a zero expected_deadline", `{"wasm_name":"m","export_func":"f","expected_deadline":"0","deadline_at":1764000000020}`, 20 * time.Millisecond, ""},
		{"both", `{"wasm_name":"m","export_func":"f","expected_deadline":"30","deadline_at":"1764000000035"}`, 0, "Error_Invalid_params"},
		{"passed", `{"wasm_name":"m","export_func":"f","deadline_at":"1763999999000"}`, 0, "Error_Deadline_exceeded"},
		{"a list", `{"wasm_name":"m","export_func":"f","deadline_at":[1]}`, 0, "Error_Bad_request"},
		{"a chain under it", `{"wasm_name":"m","export_func":"f","deadline_at":"1764000000035","then":[{"export_func":"g"}]}`, 35 * time.Millisecond, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := DecodeCall([]byte(tt.body), arrived)
			if tt.code != "" {
				if _, code := StatusOf(err); err == nil || code != tt.code {
					t.Fatalf("got %+v, %v; want %s", spec, err, tt.code)
				}
				return
			}
			if err != nil || spec.Deadline != tt.want {
				t.Fatalf("got deadline %v, %v; want %v", spec.Deadline, err, tt.want)
			}
		})
	}
}

// FuzzDeadlineAt: any text, as a header carries it, is a relative
// deadline within (0, a day], a 504 for a passed one, or a 400; never a
// panic.
func FuzzDeadlineAt(f *testing.F) {
	for _, v := range []string{"1764000000035", "1764000000000.5", "1.764000000035e12", "1763999999990", "1764000000", "-5", "soon", "", "1e300", "1e400", "0x10", " 1764000000035"} {
		f.Add(v)
	}
	arrived := time.UnixMilli(1_764_000_000_000)
	f.Fuzz(func(t *testing.T, v string) {
		d, err := DeadlineAt(HeaderDeadlineAt, v, arrived)
		if err != nil {
			if status, _ := StatusOf(err); status != 400 && status != 504 {
				t.Fatalf("%q: got status %d (%v), want 400 or 504", v, status, err)
			}
			return
		}
		if d < time.Microsecond || d > 24*time.Hour {
			t.Fatalf("%q: got %v, want within [1µs, a day]", v, d)
		}
	})
}

// TestDeadlineAtHeader: the raw route's Hyper-Deadline-At, with /call's
// rules, once, and not beside Hyper-Deadline-Ms.
func TestDeadlineAtHeader(t *testing.T) {
	arrived := time.UnixMilli(1_764_000_000_000)
	for _, tt := range []struct {
		name   string
		header map[string][]string
		rel    time.Duration // from Hyper-Deadline-Ms
		want   time.Duration
		code   string
	}{
		{"none", nil, 0, 0, ""},
		{"none, relative kept", nil, 30 * time.Millisecond, 30 * time.Millisecond, ""},
		{"absolute", map[string][]string{HeaderDeadlineAt: {" 1764000000035 "}}, 0, 35 * time.Millisecond, ""},
		{"passed", map[string][]string{HeaderDeadlineAt: {"1763999999000"}}, 0, 0, "Error_Deadline_exceeded"},
		{"both", map[string][]string{HeaderDeadlineAt: {"1764000000035"}}, 30 * time.Millisecond, 0, "Error_Invalid_params"},
		{"twice", map[string][]string{HeaderDeadlineAt: {"1764000000035", "1764000000036"}}, 0, 0, "Error_Bad_request"},
		{"long", map[string][]string{HeaderDeadlineAt: {strings.Repeat("1", 100)}}, 0, 0, "Error_Invalid_params"},
		{"seconds", map[string][]string{HeaderDeadlineAt: {"1764000000"}}, 0, 0, "Error_Invalid_params"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deadlineAtHeader(http.Header(tt.header), tt.rel, arrived)
			if tt.code != "" {
				if _, code := StatusOf(err); err == nil || code != tt.code {
					t.Fatalf("got %v, %v; want %s", got, err, tt.code)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
