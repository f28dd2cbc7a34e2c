package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hyper-sched/hyper-sched/supervisor"
)

// TestEnvFlags checks that every typed flag reads HYPER_SCHED_<FLAG>, and
// that the command line wins over it.
func TestEnvFlags(t *testing.T) {
	tests := []struct {
		env, value string
		args       []string
		got        func(supervisor.Config) any
		want       any
	}{
		{"HYPER_SCHED_MAX_UPLOAD", "1024", nil, func(c supervisor.Config) any { return c.MaxUpload }, int64(1024)},
		{"HYPER_SCHED_MAX_MODULES", "3", nil, func(c supervisor.Config) any { return c.MaxModules }, 3},
		{"HYPER_SCHED_MAX_IN_FLIGHT", "7", nil, func(c supervisor.Config) any { return c.MaxInFlight }, 7},
		{"HYPER_SCHED_MAX_IN_FLIGHT", "7", []string{"--max-in-flight", "9"}, func(c supervisor.Config) any { return c.MaxInFlight }, 9},
		{"HYPER_SCHED_WORKER_MEMORY_MAX", "67108864", nil, func(c supervisor.Config) any { return c.WorkerMemoryMax }, int64(64 << 20)},
		{"HYPER_SCHED_MEMORY_PAGES", "16", nil, func(c supervisor.Config) any { return c.MemoryLimitPages }, uint32(16)},
		{"HYPER_SCHED_GRACE", "5ms", nil, func(c supervisor.Config) any { return c.Grace }, 5 * time.Millisecond},
		{"HYPER_SCHED_LISTEN", "127.0.0.1:4001", nil, func(c supervisor.Config) any { return c.Listen }, "127.0.0.1:4001"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			cfg, _, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := tt.got(cfg); got != tt.want {
				t.Errorf("got %v (%T), want %v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

// TestEnvMalformed checks that a malformed environment value stops the
// start with an error naming the variable, as a malformed flag would.
func TestEnvMalformed(t *testing.T) {
	for _, kv := range [][2]string{
		{"HYPER_SCHED_GRACE", "2"},
		{"HYPER_SCHED_BEST_EFFORT_CAP", "soon"},
		{"HYPER_SCHED_MAX_MODULES", "many"},
		{"HYPER_SCHED_MEMORY_PAGES", "-1"},
		{"HYPER_SCHED_WORKER_MEMORY_MAX", "1G"},
	} {
		t.Run(kv[0], func(t *testing.T) {
			t.Setenv(kv[0], kv[1])
			// parseFlags, not run: were the value accepted, run would start
			// the daemon.
			_, _, err := parseFlags(nil, io.Discard)
			want := `invalid value "` + kv[1] + `" for ` + kv[0] + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got error %v, want one starting %q", err, want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &stdout, &stderr); code != 0 || stdout.String() != "hyper-sched "+version+"\n" || stderr.Len() != 0 {
		t.Errorf("--version: got exit %d, stdout %q, stderr %q; want exit 0, stdout %q", code, stdout.String(), stderr.String(), "hyper-sched "+version+"\n")
	}
}
