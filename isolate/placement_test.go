package isolate

import (
	"reflect"
	"testing"
)

func TestOptionsDefaults(t *testing.T) {
	got, err := Options{Housekeeping: []int{0}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Name: "hyper-sched", Housekeeping: []int{0}, Best: ModeCgroup2, Priority: 10}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []Options{
		{},
		{Housekeeping: []int{0}, Priority: 100},
		{Housekeeping: []int{0}, Name: "a/b"},
		{Housekeeping: []int{0}, Name: ".."},
		{Housekeeping: []int{0}, Best: "cgroup3"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: got no error", bad)
		}
	}
}

func TestParseModeAndRealTime(t *testing.T) {
	for _, m := range []Mode{ModeCgroup2, ModeCgroup1, ModeAffinity} {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q): got %q, %v", m, got, err)
		}
	}
	if _, err := ParseMode("cgroup3"); err == nil {
		t.Error("ParseMode(cgroup3): got no error")
	}
	for _, r := range []RealTime{RealTimeAuto, RealTimeOn, RealTimeOff} {
		if got, err := ParseRealTime(r.String()); err != nil || got != r {
			t.Errorf("ParseRealTime(%q): got %v, %v", r, got, err)
		}
	}
	if _, err := ParseRealTime("yes"); err == nil {
		t.Error("ParseRealTime(yes): got no error")
	}
}

func TestSets(t *testing.T) {
	if !disjoint([]int{1, 2}, []int{0, 3}) || disjoint([]int{1, 2}, []int{2}) {
		t.Error("disjoint")
	}
	if !subset([]int{1}, []int{0, 1}) || subset(nil, []int{1}) || subset([]int{2}, []int{1}) {
		t.Error("subset")
	}
	if got, want := union([]int{3, 1}, []int{2, 3}), []int{1, 2, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("union: got %v, want %v", got, want)
	}
}

func TestNote(t *testing.T) {
	var p Placement
	p.note(nil)
	if p.Err != "" {
		t.Errorf("note(nil): got %q", p.Err)
	}
	p.note(errString("a"))
	p.note(errString("b"))
	if p.Err != "a; b" {
		t.Errorf("notes: got %q, want %q", p.Err, "a; b")
	}
}

type errString string

func (e errString) Error() string { return string(e) }
