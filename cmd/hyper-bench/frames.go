package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

// Frames says which camera frames a class's calls carry: the smart-traffic
// example's (examples/traffic/framegen), made from a seed, so every run and
// every system gets the same frames. Each call's body has the frame pair
// (background, then frame; netpbm) in input_base64, the guest's stdin.
//
// Camera c's calls carry its frames 0, 1, …, Loop-1, then again from 0: the
// frames are made before the run, so making them never slows the sending.
type Frames struct {
	// Width and Height of the frames; 0 means 320×240.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Format is "pgm" (P5, gray; the default) or "ppm" (P6, colour).
	Format string `json:"format,omitempty"`
	// Seed selects the world; 0 means 1.
	Seed uint64 `json:"seed,omitempty"`
	// Loop is how many distinct frames each camera sends before it starts
	// again; 0 means 30 (one second at 30 fps).
	Loop int `json:"loop,omitempty"`
}

// maxLoop bounds the frames made per camera: they are all kept in memory.
const maxLoop = 3600

// validate fills in the defaults and checks f.
func (f *Frames) validate() error {
	d := framegen.DefaultConfig()
	if f.Width == 0 && f.Height == 0 {
		f.Width, f.Height = d.Width, d.Height
	}
	if f.Format == "" {
		f.Format = d.Format
	}
	if f.Seed == 0 {
		f.Seed = 1
	}
	if f.Loop == 0 {
		f.Loop = 30
	}
	if f.Loop < 0 || f.Loop > maxLoop {
		return fmt.Errorf("loop %d: want 1..%d frames", f.Loop, maxLoop)
	}
	_, err := framegen.NewCamera(f.config(), 0)
	return err
}

func (f Frames) config() framegen.Config {
	c := framegen.DefaultConfig()
	c.Width, c.Height, c.Format, c.Seed = f.Width, f.Height, f.Format, f.Seed
	return c
}

// frameBodies returns class c's call bodies for cameras 0..cameras-1, camera
// k's frame i at [k*Loop+i]: the class's body with the frame in
// input_base64.
func (c Class) frameBodies(cameras int) ([][]byte, error) {
	f := *c.Frames
	base := c.callBody()
	out := make([][]byte, cameras*f.Loop)
	var wg sync.WaitGroup
	errs := make([]error, cameras)
	for k := range cameras {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cam, err := framegen.NewCamera(f.config(), k)
			if err != nil {
				errs[k] = err
				return
			}
			for i := range f.Loop {
				out[k*f.Loop+i] = withInput(base, cam.Next().PNM())
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("class %s: frames: %w", c.Name, err)
		}
	}
	return out, nil
}

// withInput returns the JSON object body with "input_base64" added: body
// without its closing brace, the field, the brace. Base64 needs no JSON
// escaping.
func withInput(body, input []byte) []byte {
	enc := base64.StdEncoding
	out := make([]byte, 0, len(body)+len(`,"input_base64":""`)+enc.EncodedLen(len(input)))
	out = append(out, body[:len(body)-1]...)
	if len(body) > 2 { // not "{}"
		out = append(out, ',')
	}
	out = append(out, `"input_base64":"`...)
	out = enc.AppendEncode(out, input)
	return append(out, `"}`...)
}

// testBody is the body prepare sends to /test for c: a frames class's first
// frame of camera 0, as a representative input. A chain's "then" is left
// out: /test measures one call, and the daemon measures a chain's later
// stages on their first use.
func (c Class) testBody() []byte {
	if _, ok := c.Fields["then"]; ok {
		f := make(map[string]json.RawMessage, len(c.Fields))
		for k, v := range c.Fields {
			if k != "then" {
				f[k] = v
			}
		}
		c.Fields = f
	}
	if c.Frames == nil {
		return c.callBody()
	}
	cam, err := framegen.NewCamera(c.Frames.config(), 0)
	if err != nil {
		// ParseWorkload made a camera from the same settings.
		panic("hyper-bench: frames: " + err.Error())
	}
	return withInput(c.callBody(), cam.Next().PNM())
}

// cameras sends each camera's frames at FPS from a phase of its own, drawn
// from the seed: cameras are not synchronised, so their frames do not all
// arrive at once. Each call's latency counts from its intended time, as in
// open loop.
func (g *generator) cameras(ctx, reqCtx context.Context, wg *sync.WaitGroup, start, from, end time.Time) {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x9e3779b97f4a7c15))
	period := time.Duration(float64(time.Second) / g.cfg.FPS)
	n := g.cfg.Cameras
	phase := make([]time.Duration, n)
	order := make([]int, n)
	for c := range phase {
		phase[c] = time.Duration(rng.Float64() * float64(period))
		order[c] = c
	}
	sort.Slice(order, func(i, j int) bool { return phase[order[i]] < phase[order[j]] })
	sem := make(chan struct{}, g.cfg.MaxInflight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; ; k++ {
		for _, c := range order {
			next := start.Add(phase[c] + time.Duration(k)*period)
			if !next.Before(end) {
				g.waitEnd(ctx, timer, end)
				return
			}
			ci := g.pick.pick(rng)
			if !g.sendAt(ctx, reqCtx, wg, sem, timer, next, from, ci, g.frameBody(ci, c, k)) {
				return
			}
		}
	}
}

// frameBody is class ci's body for camera c's k-th frame; a class without
// frames has one body.
func (g *generator) frameBody(ci, c, k int) []byte {
	fb := g.frames[ci]
	if fb == nil {
		return g.bodies[ci]
	}
	loop := g.cfg.Classes[ci].Frames.Loop
	return fb[c*loop+k%loop]
}

// framesMade and frameBytes count the frame bodies g holds.
func framesMade(g *generator) int {
	n := 0
	for _, f := range g.frames {
		n += len(f)
	}
	return n
}

func frameBytes(g *generator) int {
	n := 0
	for _, f := range g.frames {
		for _, b := range f {
			n += len(b)
		}
	}
	return n
}

// hasFrames says whether the workload at path has a frames class.
func hasFrames(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	w, err := ParseWorkload(data, filepath.Dir(path))
	if err != nil {
		return false
	}
	for _, c := range w.Classes {
		if c.Frames != nil {
			return true
		}
	}
	return false
}

// camerasPlots returns the plots against the number of cameras for a
// scenario's cameras-mode results, or none when no system has two: frames
// answered in time per second (the client's goodput) with the frames offered
// for reference, and the fraction of frames sent that were answered in time.
func camerasPlots(rs []*Result, st map[string]style) []plot {
	byLabel, labels, sweep := bySystem(rs, "cameras")
	if !sweep {
		return nil
	}
	good := plot{Title: "Frames answered in time", XLabel: "cameras", YLabel: "frames/s in time (client's clock)"}
	frac := plot{Title: "Frames in time / frames offered", XLabel: "cameras", YLabel: "fraction of frames sent", YMax: 1}
	offered := map[float64]float64{} // cameras → frames/s asked for
	for _, l := range labels {
		runs := byLabel[l]
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].Cameras < runs[j].Cameras })
		sg := series{Name: l, Markers: true, Color: st[l].Color, Dash: st[l].Dash}
		sf := sg
		for _, r := range runs {
			x := float64(r.Cameras)
			sg.Points = append(sg.Points, point{x, r.Total.ClientGoodputPerS})
			if r.Total.Sent > 0 {
				sf.Points = append(sf.Points, point{x, float64(r.Total.OK-r.Total.ClientLate) / float64(r.Total.Sent)})
			}
			offered[x] = r.Rate
		}
		good.Series = append(good.Series, sg)
		frac.Series = append(frac.Series, sf)
	}
	var ref []point
	for x, y := range offered {
		ref = append(ref, point{x, y})
	}
	sort.Slice(ref, func(i, j int) bool { return ref[i].X < ref[j].X })
	good.Series = append(good.Series, series{Name: "offered", Color: refColor, Dash: refDash, Points: ref})
	return []plot{good, frac}
}
