package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

func TestStdoutFrame(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-camera", "2", "-frame", "3", "-size", "160x120", "-truth"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	cfg := framegen.DefaultConfig()
	cfg.Width, cfg.Height = 160, 120
	cam, _ := framegen.NewCamera(cfg, 2)
	var f framegen.Frame
	for range 4 {
		f = cam.Next()
	}
	if !bytes.Equal(out.Bytes(), f.PNM()) {
		t.Fatal("stdout is not camera 2's frame 3")
	}
	var tr truth
	if err := json.Unmarshal(errb.Bytes(), &tr); err != nil || tr.Frame != 3 || tr.Camera != 2 || len(tr.Counts) != 4 {
		t.Fatalf("truth %q (%v)", errb.String(), err)
	}
}

func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"-o", dir, "-cameras", "2", "-frames", "3", "-format", "ppm", "-size", "96x64"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var all []truth
	b, _ := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err := json.Unmarshal(b, &all); err != nil || len(all) != 6 {
		t.Fatalf("truth.json: %d entries (%v)", len(all), err)
	}
	for _, tr := range all {
		b, err := os.ReadFile(filepath.Join(dir, tr.File))
		if err != nil || !bytes.HasPrefix(b, []byte("P6\n")) {
			t.Fatalf("%s: %v", tr.File, err)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-size", "big"}, {"-frame", "-1"}, {"extra"}, {"-format", "png"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "framegen") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}
