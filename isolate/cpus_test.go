package isolate

import (
	"reflect"
	"testing"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{"", nil, false},
		{"\n", nil, false},
		{"0", []int{0}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"0-1,5,7-8\n", []int{0, 1, 5, 7, 8}, false},
		{"3,1,1", []int{1, 3}, false},
		{"3-1", nil, true},
		{"a", nil, true},
		{"-1", nil, true},
		{"1-", nil, true},
		{"99999", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseList(tt.in)
			if (err != nil) != tt.bad {
				t.Fatalf("got err %v, want error %v", err, tt.bad)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if err == nil {
				if back, _ := ParseList(FormatList(got)); !reflect.DeepEqual(back, got) {
					t.Errorf("FormatList round trip: got %v, want %v", back, got)
				}
			}
		})
	}
	if got, want := FormatList([]int{0, 1, 2, 5, 7, 8}), "0-2,5,7-8"; got != want {
		t.Errorf("FormatList: got %q, want %q", got, want)
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name                         string
		requested, isolated, allowed []int
		want                         Choice
		bad                          bool
	}{
		{"default", nil, nil, []int{0, 1, 2, 3},
			Choice{Workers: []int{1, 2, 3}, Housekeeping: []int{0}, Source: "online-but-first"}, false},
		{"isolated", nil, []int{2, 3}, []int{0, 1, 2, 3},
			Choice{Workers: []int{2, 3}, Housekeeping: []int{0, 1}, Source: "isolated"}, false},
		{"isolated outside the cgroup", nil, []int{6}, []int{0, 1},
			Choice{Workers: []int{1}, Housekeeping: []int{0}, Source: "online-but-first"}, false},
		{"requested", []int{1}, []int{2, 3}, []int{0, 1, 2, 3},
			Choice{Workers: []int{1}, Housekeeping: []int{0, 2, 3}, Source: "--cpus"}, false},
		{"requested all", []int{0, 1}, nil, []int{0, 1},
			Choice{Workers: []int{0, 1}, Housekeeping: []int{0}, Source: "--cpus"}, false},
		{"requested outside", []int{5}, nil, []int{0, 1}, Choice{}, true},
		{"one cpu", nil, nil, []int{4},
			Choice{Workers: []int{4}, Housekeeping: []int{4}, Source: "single-cpu"}, false},
		{"nothing allowed", nil, nil, nil, Choice{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Choose(tt.requested, tt.isolated, tt.allowed)
			if (err != nil) != tt.bad {
				t.Fatalf("got err %v, want error %v", err, tt.bad)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
