package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		body   string
		want   Outcome
		kind   string
		server time.Duration
		exec   time.Duration
	}{
		{"met", 200, `{"status":"Success","deadline_met":true,"timings_us":{"total":250,"exec":40}}`, OK, "", 250 * time.Microsecond, 40 * time.Microsecond},
		{"best effort", 200, `{"status":"Success","result":"[]"}`, OK, "", 0, 0},
		{"late", 200, `{"status":"Success","deadline_met":false}`, Missed, "", 0, 0},
		{"killed", 504, `{"status":"Error_Deadline_exceeded","error":"x"}`, Missed, "", 0, 0},
		{"504 from a proxy", 504, `<html>`, Missed, "", 0, 0},
		{"rejected", 503, `{"status":"Error_Unschedulable","retry_after_ms":3}`, Rejected, "", 0, 0},
		{"worker lost", 503, `{"status":"Error_Worker_lost"}`, Failed, "503 Error_Worker_lost", 0, 0},
		{"trap", 500, `{"status":"Error_Trap"}`, Failed, "500 Error_Trap", 0, 0},
		{"200 not success", 200, `{"status":"Error_Odd"}`, Failed, "200 Error_Odd", 0, 0},
		{"200 not JSON", 200, `oops`, Failed, "200 non-JSON", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify(tt.code, []byte(tt.body))
			if v.outcome != tt.want || v.kind != tt.kind || v.server != tt.server || v.exec != tt.exec {
				t.Errorf("got %v %q %v %v, want %v %q %v %v", v.outcome, v.kind, v.server, v.exec, tt.want, tt.kind, tt.server, tt.exec)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errUnfinished, "unfinished at end of drain"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "connection refused"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "connection reset"},
		{timeoutErr{}, "timeout"},
		{errors.New("unexpected EOF"), "connection closed (EOF)"},
		{context.Canceled, "transport error"},
	}
	for _, tt := range tests {
		if got := errKind(tt.err); got != tt.want {
			t.Errorf("errKind(%v): got %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestAggregate(t *testing.T) {
	classes := []Class{{Name: "a", DeadlineMs: 10}, {Name: "b"}}
	tallies := make([]tally, 2)
	ms := time.Millisecond
	tallies[0].add(200, []byte(`{"status":"Success","deadline_met":true}`), nil, 2*ms, 10*ms)
	tallies[0].add(200, []byte(`{"status":"Success","deadline_met":true}`), nil, 12*ms, 10*ms) // late at the client
	tallies[0].add(200, []byte(`{"status":"Success","deadline_met":false}`), nil, 11*ms, 10*ms)
	tallies[0].add(504, []byte(`{"status":"Error_Deadline_exceeded"}`), nil, 10*ms, 10*ms)
	tallies[0].add(503, []byte(`{"status":"Error_Unschedulable"}`), nil, ms, 10*ms)
	tallies[1].add(200, []byte(`{"status":"Success"}`), nil, 4*ms, 0)
	tallies[1].add(0, nil, syscall.ECONNREFUSED, ms, 0)
	tallies[1].add(500, []byte(`{"status":"Error_Trap"}`), nil, ms, 0)

	got, total := aggregate(classes, tallies, 2*time.Second)
	a := got[0]
	if a.Sent != 5 || a.OK != 2 || a.Missed != 2 || a.Missed504 != 1 || a.Rejected != 1 || a.Errors != 0 || a.ClientLate != 1 {
		t.Errorf("class a counts: got %+v", a)
	}
	if a.OfferedPerS != 2.5 || a.ThroughputPerS != 1.5 || a.GoodputPerS != 1 {
		t.Errorf("class a rates: got offered %v throughput %v goodput %v, want 2.5 1.5 1", a.OfferedPerS, a.ThroughputPerS, a.GoodputPerS)
	}
	if a.Latency.Count != 3 || a.Latency.Max != 12 {
		t.Errorf("class a latency: got %+v, want 3 answers, max 12 ms", a.Latency)
	}
	b := got[1]
	if b.Sent != 3 || b.OK != 1 || b.Errors != 2 || b.ErrorKind["connection refused"] != 1 || b.ErrorKind["500 Error_Trap"] != 1 {
		t.Errorf("class b: got %+v", b)
	}
	if total.Name != totalName || total.Sent != 8 || total.OK != 3 || total.Errors != 2 || total.Latency.Count != 4 || total.GoodputPerS != 1.5 {
		t.Errorf("total: got %+v", total)
	}
	if want := []string{"500 Error_Trap: 1", "connection refused: 1"}; fmt.Sprint(sortedKinds(total.ErrorKind)) != fmt.Sprint(want) {
		t.Errorf("sortedKinds: got %v, want %v", sortedKinds(total.ErrorKind), want)
	}
}
