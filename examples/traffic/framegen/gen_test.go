package framegen

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func frames(t *testing.T, cfg Config, camera, n int) []Frame {
	t.Helper()
	c, err := NewCamera(cfg, camera)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Frame, n)
	for i := range out {
		out[i] = c.Next()
	}
	return out
}

func digest(fs []Frame) [32]byte {
	h := sha256.New()
	for _, f := range fs {
		h.Write(f.PNM())
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

func TestDeterministic(t *testing.T) {
	for _, format := range []string{"pgm", "ppm"} {
		cfg := DefaultConfig()
		cfg.Format = format
		cfg.Width, cfg.Height = 128, 96
		a, b := frames(t, cfg, 3, 20), frames(t, cfg, 3, 20)
		if digest(a) != digest(b) {
			t.Errorf("%s: two cameras made from seed %d, camera 3 differ", format, cfg.Seed)
		}
		if other := frames(t, cfg, 4, 20); digest(other) == digest(a) {
			t.Errorf("%s: cameras 3 and 4 made the same frames", format)
		}
		cfg.Seed++
		if other := frames(t, cfg, 3, 20); digest(other) == digest(a) {
			t.Errorf("%s: seeds %d and %d made the same frames", format, cfg.Seed-1, cfg.Seed)
		}
		for i, f := range a {
			if f.Index != i || f.Camera != 3 {
				t.Fatalf("frame %d: got camera %d index %d", i, f.Camera, f.Index)
			}
		}
	}
}

// TestTruth checks the ground truth against the frames themselves: every
// counted vehicle is in its lane, the counts add up, and the traffic moves.
func TestTruth(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Width, cfg.Height = 160, 120
	fs := frames(t, cfg, 0, 300)
	total, phases := 0, map[string]bool{}
	for _, f := range fs {
		phases[f.Scene.Phase] = true
		n := 0
		for _, v := range f.Vehicles {
			if v.Area <= 0 {
				t.Fatalf("frame %d: a vehicle with area %d was listed", f.Index, v.Area)
			}
			if v.In < 0 {
				continue
			}
			n++
			l := f.Scene.Lanes[v.In]
			cx, cy := float64(v.SumX)/float64(v.Area), float64(v.SumY)/float64(v.Area)
			if cx < float64(l.X0) || cx >= float64(l.X1) || cy < float64(l.Y0) || cy >= float64(l.Y1) || v.Area < MinArea {
				t.Fatalf("frame %d: vehicle %+v counted in lane %s but its centroid is (%.1f, %.1f)", f.Index, v, l.Name, cx, cy)
			}
		}
		sum := 0
		for _, c := range f.Counts {
			sum += c
		}
		if sum != n {
			t.Fatalf("frame %d: counts %v add up to %d, want %d", f.Index, f.Counts, sum, n)
		}
		total += n
	}
	if total == 0 {
		t.Fatal("300 frames and no vehicle counted")
	}
	for _, p := range []string{"NS_GREEN", "EW_GREEN", "ALL_RED"} {
		if !phases[p] {
			t.Errorf("in 10 s the simulated signal never showed %s (saw %v)", p, phases)
		}
	}
}

// TestPNMRoundTrip reads the generator's frames back with DecodePair.
func TestPNMRoundTrip(t *testing.T) {
	for _, format := range []string{"pgm", "ppm"} {
		cfg := DefaultConfig()
		cfg.Format, cfg.Width, cfg.Height = format, 160, 120
		for _, f := range frames(t, cfg, 1, 5) {
			bg, fr, sc, err := DecodePair(f.PNM())
			if err != nil {
				t.Fatalf("%s frame %d: %v", format, f.Index, err)
			}
			want := func(raster []byte) []byte {
				if format == "pgm" {
					return raster
				}
				g := make([]byte, len(raster)/3)
				for i := range g {
					g[i] = luma(uint32(raster[3*i]), uint32(raster[3*i+1]), uint32(raster[3*i+2]))
				}
				return g
			}
			if bg.W != 160 || bg.H != 120 || !bytes.Equal(bg.Pix, want(f.Background)) || !bytes.Equal(fr.Pix, want(f.Image)) {
				t.Fatalf("%s frame %d: the rasters read back differ from those written", format, f.Index)
			}
			if len(sc.Lanes) != 4 || sc.Phase != f.Scene.Phase || sc.Lanes[2] != f.Scene.Lanes[2] {
				t.Fatalf("%s frame %d: scene read back %+v, want %+v", format, f.Index, sc, f.Scene)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Width = 10 },
		func(c *Config) { c.Height = MaxDim + 1 },
		func(c *Config) { c.Format = "png" },
		func(c *Config) { c.Green = 0 },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if _, err := NewCamera(cfg, 0); err == nil {
			t.Errorf("NewCamera(%+v) accepted it", cfg)
		}
	}
	if _, err := NewCamera(DefaultConfig(), -1); err == nil {
		t.Error("NewCamera accepted camera -1")
	}
}
