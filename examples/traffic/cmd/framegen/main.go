// Command framegen writes the smart-traffic example's camera frames: the
// pipeline's input (background and frame as netpbm images, the lanes in the
// header), made from a seed, with the ground truth of what is in them.
//
//	framegen [-seed 1] [-camera 0] [-frame 0] [-format pgm|ppm] [-size 320x240] > frame.pnm
//	framegen -o DIR [-cameras 2] [-frames 30] ...
//
// The first form writes one frame to stdout (and its truth to stderr with
// -truth). The second writes DIR/cam<C>-<K>.pnm for each camera and frame,
// and DIR/truth.json with the counts per lane the pipeline should answer.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hyper-sched/hyper-sched/examples/traffic/framegen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// truth is one frame's ground truth as written to truth.json and -truth.
type truth struct {
	File   string   `json:"file,omitempty"`
	Camera int      `json:"camera"`
	Frame  int      `json:"frame"`
	Phase  string   `json:"phase"` // the simulated signal when the frame was taken
	Lanes  []string `json:"lanes"`
	Counts []int    `json:"counts"`
}

func truthOf(f framegen.Frame, file string) truth {
	t := truth{File: file, Camera: f.Camera, Frame: f.Index, Phase: f.Scene.Phase, Counts: f.Counts}
	for _, l := range f.Scene.Lanes {
		t.Lanes = append(t.Lanes, l.Name)
	}
	return t
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("framegen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := framegen.DefaultConfig()
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "world seed: with the camera number it fixes every frame")
	fs.StringVar(&cfg.Format, "format", cfg.Format, `"pgm" (P5, gray) or "ppm" (P6, colour)`)
	size := fs.String("size", fmt.Sprintf("%dx%d", cfg.Width, cfg.Height), "frame size WxH")
	camera := fs.Int("camera", 0, "camera number (stdout form)")
	frame := fs.Int("frame", 0, "frame number from 0 (stdout form)")
	showTruth := fs.Bool("truth", false, "stdout form: write the frame's ground truth (JSON) to stderr")
	dir := fs.String("o", "", "write files to this directory instead of one frame to stdout")
	cameras := fs.Int("cameras", 1, "with -o: cameras 0..N-1")
	frames := fs.Int("frames", 30, "with -o: frames per camera")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "framegen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if _, err := fmt.Sscanf(*size, "%dx%d", &cfg.Width, &cfg.Height); err != nil {
		fmt.Fprintf(stderr, "framegen: -size %q: want WxH, such as 320x240\n", *size)
		return 2
	}
	if *frame < 0 || *cameras < 1 || *frames < 1 {
		fmt.Fprintln(stderr, "framegen: -frame must not be negative, -cameras and -frames must be positive")
		return 2
	}
	if *dir == "" {
		cam, err := framegen.NewCamera(cfg, *camera)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		f := cam.Next()
		for range *frame {
			f = cam.Next()
		}
		if _, err := stdout.Write(f.PNM()); err != nil {
			fmt.Fprintln(stderr, "framegen: write:", err)
			return 1
		}
		if *showTruth {
			b, _ := json.Marshal(truthOf(f, ""))
			fmt.Fprintf(stderr, "%s\n", b)
		}
		return 0
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "framegen:", err)
		return 1
	}
	var all []truth
	for c := range *cameras {
		cam, err := framegen.NewCamera(cfg, c)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		for range *frames {
			f := cam.Next()
			name := fmt.Sprintf("cam%d-%03d.pnm", c, f.Index)
			if err := os.WriteFile(filepath.Join(*dir, name), f.PNM(), 0o644); err != nil {
				fmt.Fprintln(stderr, "framegen:", err)
				return 1
			}
			all = append(all, truthOf(f, name))
		}
	}
	b, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(filepath.Join(*dir, "truth.json"), append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(stderr, "framegen:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d frames and truth.json in %s\n", len(all), *dir)
	return 0
}
