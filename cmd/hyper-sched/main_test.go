package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
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
		{"HYPER_SCHED_MAX_CONNECTIONS", "100", nil, func(c supervisor.Config) any { return c.MaxConnections }, 100},
		{"HYPER_SCHED_MAX_CONNECTIONS", "100", []string{"--max-connections", "200"}, func(c supervisor.Config) any { return c.MaxConnections }, 200},
		{"HYPER_SCHED_IDLE_TIMEOUT", "5s", nil, func(c supervisor.Config) any { return c.IdleTimeout }, 5 * time.Second},
		{"HYPER_SCHED_READ_TIMEOUT", "2m", nil, func(c supervisor.Config) any { return c.ReadTimeout }, 2 * time.Minute},
		{"HYPER_SCHED_READ_TIMEOUT", "2m", []string{"--read-timeout=3s"}, func(c supervisor.Config) any { return c.ReadTimeout }, 3 * time.Second},
		{"HYPER_SCHED_MODULE_DIR", "/etc/hyper-sched/modules", nil, func(c supervisor.Config) any { return c.ModuleDir }, "/etc/hyper-sched/modules"},
		{"HYPER_SCHED_MODULE_DIR_INTERVAL", "500ms", nil, func(c supervisor.Config) any { return c.ModuleDirInterval }, 500 * time.Millisecond},
		{"HYPER_SCHED_NODE_NAME", "node-b", nil, func(c supervisor.Config) any { return c.NodeName }, "node-b"},
		{"HYPER_SCHED_NODE_NAME", "node-b", []string{"--node-name="}, func(c supervisor.Config) any { return c.NodeName }, ""},
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
		{"HYPER_SCHED_MAX_CONNECTIONS", "lots"},
		{"HYPER_SCHED_IDLE_TIMEOUT", "90"},
		{"HYPER_SCHED_READ_TIMEOUT", "soon"},
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

// TestTokenBlankRefused checks that a token that is set but blank stops
// the start: HYPER_SCHED_TOKEN="   " once turned authentication off without
// a word. Unset, there is no token; a token is taken without the blanks
// around it.
func TestTokenBlankRefused(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blankFile, goodFile, nlFile := file("blank", " \n\t\n"), file("good", "s3cret\n"), file("nl", "s3c\nret\n")
	for _, tt := range []struct {
		name  string
		env   map[string]string
		args  []string
		token string // want, when err is ""
		err   string // want an error containing it
	}{
		{"unset", nil, nil, "", ""},
		{"env", map[string]string{"HYPER_SCHED_TOKEN": " s3cret\n"}, nil, "s3cret", ""},
		{"env spaces", map[string]string{"HYPER_SCHED_TOKEN": "   "}, nil, "", "HYPER_SCHED_TOKEN is set but blank"},
		{"env empty", map[string]string{"HYPER_SCHED_TOKEN": ""}, nil, "", "HYPER_SCHED_TOKEN is set but blank"},
		{"env tab newline", map[string]string{"HYPER_SCHED_TOKEN": "\t\n"}, nil, "", "HYPER_SCHED_TOKEN is set but blank"},
		{"env control character", map[string]string{"HYPER_SCHED_TOKEN": "a\x01b"}, nil, "", "HYPER_SCHED_TOKEN: the token contains"},
		{"file", nil, []string{"--token-file", goodFile}, "s3cret", ""},
		{"file blank", nil, []string{"--token-file", blankFile}, "", "is empty"},
		{"file blank via env", map[string]string{"HYPER_SCHED_TOKEN_FILE": blankFile}, nil, "", "is empty"},
		{"file two lines", nil, []string{"--token-file", nlFile}, "", "--token-file: the token contains"},
		{"file name empty", nil, []string{"--token-file", ""}, "", "--token-file is set but empty"},
		{"file name empty via env", map[string]string{"HYPER_SCHED_TOKEN_FILE": ""}, nil, "", "--token-file is set but empty"},
		{"file name blank via env", map[string]string{"HYPER_SCHED_TOKEN_FILE": "  "}, nil, "", "--token-file is set but empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"HYPER_SCHED_TOKEN", "HYPER_SCHED_TOKEN_FILE"} {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, _, err := parseFlags(tt.args, io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v (token %q), want one containing %q", err, cfg.Token, tt.err)
				}
				return
			}
			if err != nil || cfg.Token != tt.token {
				t.Fatalf("got token %q, error %v; want token %q", cfg.Token, err, tt.token)
			}
		})
	}
}

// TestHTTPLimitFlags: the HTTP server's limits are flags with defaults
// (supervisor.Defaults), and none may be turned off with 0 or less; nor
// may --module-dir-interval (a ticker of 0 panics).
func TestHTTPLimitFlags(t *testing.T) {
	cfg, _, err := parseFlags(nil, io.Discard)
	d := supervisor.Defaults()
	if err != nil || cfg.MaxConnections != d.MaxConnections || cfg.IdleTimeout != d.IdleTimeout || cfg.ReadTimeout != d.ReadTimeout {
		t.Errorf("defaults: got %d %v %v (%v), want %d %v %v", cfg.MaxConnections, cfg.IdleTimeout, cfg.ReadTimeout, err,
			d.MaxConnections, d.IdleTimeout, d.ReadTimeout)
	}
	for _, args := range [][]string{
		{"--max-connections", "0"}, {"--max-connections", "-5"},
		{"--idle-timeout", "0s"}, {"--idle-timeout", "-1s"},
		{"--read-timeout", "0s"}, {"--read-timeout", "-1s"},
		{"--module-dir-interval", "0s"}, {"--module-dir-interval", "-1s"},
	} {
		if _, _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: got %v, want an error naming %s", args, err, args[0])
		}
	}
}
