package framegen

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
)

// The detection settings the frames are made for: the C stages' defaults.
// Vehicles differ from the road by more than Threshold + 2 × Noise, sensor
// noise alone never by more than 2 × Noise, so a threshold between finds
// every vehicle pixel and nothing else.
const (
	Threshold = 30 // detect's default threshold=
	MinArea   = 12 // detect's default min_area=
	Noise     = 6  // sensor noise, uniform in [-Noise, Noise] per pixel and frame
	FPS       = 30 // frames per second the simulation steps at
)

// Config says what frames to make. The zero value is not valid; start from
// [DefaultConfig].
type Config struct {
	// Width and Height of every frame, 64..MaxDim.
	Width, Height int
	// Format is "pgm" (P5, gray) or "ppm" (P6, colour).
	Format string
	// Seed selects the world; with the camera number it fixes every frame.
	Seed uint64
	// Green is how many frames a group's green lasts before the clearance.
	Green int
}

// DefaultConfig is 320×240 gray frames, seed 1, a 3 s green.
func DefaultConfig() Config {
	return Config{Width: 320, Height: 240, Format: "pgm", Seed: 1, Green: 3 * FPS}
}

func (c Config) validate() error {
	switch {
	case c.Width < 64 || c.Width > MaxDim || c.Height < 64 || c.Height > MaxDim:
		return fmt.Errorf("framegen: size %dx%d: want 64..%d each", c.Width, c.Height, MaxDim)
	case c.Format != "pgm" && c.Format != "ppm":
		return fmt.Errorf("framegen: format %q: want pgm or ppm", c.Format)
	case c.Green < 1:
		return fmt.Errorf("framegen: green %d frames: want at least 1", c.Green)
	}
	return nil
}

// Vehicle is one drawn vehicle: its bounding box [X0,X1)×[Y0,Y1) before
// clipping to the frame, its shape, and what the detector should see of it.
type Vehicle struct {
	Lane           int // index of the approach lane it came from
	X0, Y0, X1, Y1 int
	Ellipse        bool
	// Area, SumX and SumY are of its pixels inside the frame: the centroid
	// is (SumX/Area, SumY/Area).
	Area, SumX, SumY int64
	// In is the lane whose rectangle holds its centroid, -1 for none (in
	// the crossing, leaving, or smaller than MinArea).
	In int
}

// Frame is one generated frame of one camera, with its ground truth.
type Frame struct {
	Camera, Index int
	Scene         Scene
	// Background and Image are the two rasters: gray (W*H) for pgm, RGB
	// (3*W*H) for ppm. The background is the empty road with its own noise.
	Background, Image []byte
	Vehicles          []Vehicle
	// Counts is the truth per lane of Scene.Lanes: vehicles with In == lane.
	Counts []int
	format string
	w, h   int
}

// approach is one lane's geometry: vehicles move toward the stop line,
// then across the crossing and out of the frame.
type approach struct {
	lane Lane
	// dir is the travel direction: 0 down (+y), 1 up (-y), 2 left (-x),
	// 3 right (+x). stop is the stop line's coordinate on the travel axis;
	// far the distance from it to the frame edge ahead; length the lane's
	// length from the frame edge behind to the stop line.
	dir, stop, far, length int
	lat0, lat1             int     // the lane's extent across the travel axis
	rate                   float64 // probability of a new vehicle per frame
	cars                   []car   // front to back
}

// car is a vehicle in the simulation. d is the distance from the stop line
// to its front along the travel direction: positive before the line,
// negative past it.
type car struct {
	d, length int
	ellipse   bool
	rgb       [3]byte
}

// Camera makes one camera's frames in order. It is not safe for concurrent
// use; cameras are independent of each other.
type Camera struct {
	cfg     Config
	camera  int
	rng     *rand.Rand // the simulation: arrivals, shapes, colours
	index   int        // of the next frame
	green   int        // group index now green: 0 NS, 1 EW; -1 clearing
	next    int        // group that gets the green after the clearance
	left    int        // frames of green left
	aps     []approach
	road    []byte // static background, RGB, w*h*3
	rw, gap int    // road width, gap between vehicles
	vw      int    // vehicle width
	speed   int    // pixels per frame
}

var groups = [2]string{"NS", "EW"}

// NewCamera returns camera number camera of the world cfg.Seed, with the
// simulation run for a few seconds so that its first frame shows traffic.
func NewCamera(cfg Config, camera int) (*Camera, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if camera < 0 {
		return nil, errors.New("framegen: negative camera number")
	}
	w, h := cfg.Width, cfg.Height
	rw := max(16, h/4) &^ 1 // road width: two lanes
	cx, cy := w/2, h/2
	lw := rw / 2
	c := &Camera{cfg: cfg, camera: camera, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(camera)<<1|1)),
		rw: rw, vw: max(4, lw-4), gap: max(3, lw/3), speed: max(1, w/110), left: cfg.Green}
	c.aps = []approach{
		// From the north, driving down the west half of the vertical road.
		{lane: Lane{"N", "NS", cx - lw, 0, cx, cy - lw}, dir: 0, stop: cy - lw, far: h - (cy - lw), length: cy - lw, lat0: cx - lw, lat1: cx},
		// From the south, driving up the east half.
		{lane: Lane{"S", "NS", cx, cy + lw, cx + lw, h}, dir: 1, stop: cy + lw, far: cy + lw, length: h - (cy + lw), lat0: cx, lat1: cx + lw},
		// From the east, driving left along the north half.
		{lane: Lane{"E", "EW", cx + lw, cy - lw, w, cy}, dir: 2, stop: cx + lw, far: cx + lw, length: w - (cx + lw), lat0: cy - lw, lat1: cy},
		// From the west, driving right along the south half.
		{lane: Lane{"W", "EW", 0, cy, cx - lw, cy + lw}, dir: 3, stop: cx - lw, far: w - (cx - lw), length: cx - lw, lat0: cy, lat1: cy + lw},
	}
	for i := range c.aps {
		c.aps[i].rate = 0.02 + 0.06*c.rng.Float64()
	}
	c.green = c.rng.IntN(2)
	c.road = c.paintRoad()
	for range 5 * FPS {
		c.step()
	}
	c.index = 0 // frames are numbered from the first one Next returns
	return c, nil
}

// paintRoad draws the static scene: grass, the two roads, and a fixed
// texture, kept within ±12 of each surface's base level so that vehicles
// stand out by more than Threshold + 2 × Noise.
func (c *Camera) paintRoad() []byte {
	w, h := c.cfg.Width, c.cfg.Height
	tex := rand.New(rand.NewPCG(c.cfg.Seed^0x7465787475726521, uint64(c.camera)))
	out := make([]byte, w*h*3)
	cx, cy, half := w/2, h/2, c.rw/2
	for y := range h {
		for x := range w {
			t := tex.IntN(25) - 12
			base := [3]int{70, 112, 60} // grass, luma ≈ 89
			if (x >= cx-half && x < cx+half) || (y >= cy-half && y < cy+half) {
				base = [3]int{100, 100, 100} // asphalt
			}
			for k := range 3 {
				out[(y*w+x)*3+k] = byte(base[k] + t)
			}
		}
	}
	return out
}

// newCar makes a vehicle: gray level (luma) at least 170 or at most 30,
// against road and grass within 76..112.
func (c *Camera) newCar(d int) car {
	length := c.vw + c.vw/3 + c.rng.IntN(c.vw+1)
	bright := c.rng.IntN(2) == 0
	var rgb [3]byte
	for {
		for k := range rgb {
			if bright {
				rgb[k] = byte(150 + c.rng.IntN(106))
			} else {
				rgb[k] = byte(c.rng.IntN(45))
			}
		}
		l := luma(uint32(rgb[0]), uint32(rgb[1]), uint32(rgb[2]))
		if (bright && l >= 170) || (!bright && l <= 30) {
			break
		}
	}
	return car{d: d, length: length, ellipse: c.rng.IntN(3) == 0, rgb: rgb}
}

// step advances the simulation by one frame: the signal, then every car.
func (c *Camera) step() {
	if c.green >= 0 {
		c.left--
		if c.left <= 0 {
			c.next, c.green = 1-c.green, -1
		}
	} else if c.crossingClear() {
		c.green, c.left = c.next, c.cfg.Green
	}
	for i := range c.aps {
		a := &c.aps[i]
		green := c.green >= 0 && groups[c.green] == a.lane.Group
		for j := range a.cars {
			v := &a.cars[j]
			d := v.d - c.speed
			if !green && v.d >= 0 {
				d = max(d, 0) // stop at the line
			}
			if j > 0 {
				ahead := a.cars[j-1]
				d = max(d, ahead.d+ahead.length+c.gap) // keep the gap
			}
			v.d = min(v.d, d)
		}
		// Gone: wholly past the frame edge ahead.
		for len(a.cars) > 0 && -a.cars[0].d >= a.far+a.cars[0].length {
			a.cars = a.cars[1:]
		}
		if c.rng.Float64() < a.rate {
			d := a.length // front at the frame edge behind: not yet visible
			if n := len(a.cars); n > 0 {
				d = max(d, a.cars[n-1].d+a.cars[n-1].length+c.gap)
			}
			if d <= a.length+c.vw*4 { // else the queue backs up off screen: no one joins
				a.cars = append(a.cars, c.newCar(d))
			}
		}
	}
	c.index++
}

// crossingClear says whether no car is inside the crossing, so that the
// other group may go.
func (c *Camera) crossingClear() bool {
	for _, a := range c.aps {
		for _, v := range a.cars {
			if v.d < 0 && v.d+v.length > -c.rw {
				return false
			}
		}
	}
	return true
}

// box is a car's bounding box in the frame, unclipped.
func (c *Camera) box(a *approach, v car) (x0, y0, x1, y1 int) {
	l0, l1 := a.lat0+(a.lat1-a.lat0-c.vw)/2, 0
	l1 = l0 + c.vw
	switch a.dir {
	case 0: // down: front is the bottom edge
		return l0, a.stop - v.d - v.length, l1, a.stop - v.d
	case 1: // up
		return l0, a.stop + v.d, l1, a.stop + v.d + v.length
	case 2: // left
		return a.stop + v.d, l0, a.stop + v.d + v.length, l1
	default: // right
		return a.stop - v.d - v.length, l0, a.stop - v.d, l1
	}
}

// Next returns the camera's next frame.
func (c *Camera) Next() Frame {
	w, h := c.cfg.Width, c.cfg.Height
	f := Frame{Camera: c.camera, Index: c.index, format: c.cfg.Format, w: w, h: h}
	for _, a := range c.aps {
		f.Scene.Lanes = append(f.Scene.Lanes, a.lane)
	}
	f.Scene.Phase = "ALL_RED"
	if c.green >= 0 {
		f.Scene.Phase = groups[c.green] + "_GREEN"
	}
	img := append([]byte(nil), c.road...)
	for ai := range c.aps {
		a := &c.aps[ai]
		for _, v := range a.cars {
			x0, y0, x1, y1 := c.box(a, v)
			veh := Vehicle{Lane: ai, X0: x0, Y0: y0, X1: x1, Y1: y1, Ellipse: v.ellipse, In: -1}
			bw, bh := int64(x1-x0), int64(y1-y0)
			for y := max(y0, 0); y < min(y1, h); y++ {
				for x := max(x0, 0); x < min(x1, w); x++ {
					if v.ellipse {
						// Inside the inscribed ellipse, in exact integer
						// arithmetic (half-pixel units from the centre).
						dx, dy := int64(2*(x-x0)+1)-bw, int64(2*(y-y0)+1)-bh
						if dx*dx*bh*bh+dy*dy*bw*bw > bw*bw*bh*bh {
							continue
						}
					}
					copy(img[(y*w+x)*3:], v.rgb[:])
					veh.Area++
					veh.SumX += int64(x)
					veh.SumY += int64(y)
				}
			}
			if veh.Area == 0 {
				continue // not (or no longer) in the frame
			}
			if veh.Area >= MinArea {
				veh.In = laneOf(f.Scene.Lanes, veh.Area, veh.SumX, veh.SumY)
			}
			f.Vehicles = append(f.Vehicles, veh)
		}
	}
	f.Counts = make([]int, len(f.Scene.Lanes))
	for _, v := range f.Vehicles {
		if v.In >= 0 {
			f.Counts[v.In]++
		}
	}
	noise := rand.New(rand.NewPCG(c.cfg.Seed^0x6e6f697365, uint64(c.camera)<<32|uint64(c.index)))
	f.Background = c.render(c.road, noise)
	f.Image = c.render(img, noise)
	c.step()
	return f
}

// laneOf returns the first lane whose rectangle holds the centroid
// (sumX/area, sumY/area), compared exactly as the count stage does.
func laneOf(lanes []Lane, area, sumX, sumY int64) int {
	for i, l := range lanes {
		if sumX >= int64(l.X0)*area && sumX < int64(l.X1)*area && sumY >= int64(l.Y0)*area && sumY < int64(l.Y1)*area {
			return i
		}
	}
	return -1
}

// render adds sensor noise to an RGB picture and returns the raster in the
// frame's format. The same noise is added to each channel of a pixel, so
// the gray level moves by it too.
func (c *Camera) render(rgb []byte, noise *rand.Rand) []byte {
	n := c.cfg.Width * c.cfg.Height
	var out []byte
	if c.cfg.Format == "ppm" {
		out = make([]byte, 3*n)
	} else {
		out = make([]byte, n)
	}
	for i := range n {
		e := noise.IntN(2*Noise+1) - Noise
		var px [3]byte
		for k := range 3 {
			px[k] = byte(min(255, max(0, int(rgb[3*i+k])+e)))
		}
		if c.cfg.Format == "ppm" {
			copy(out[3*i:], px[:])
		} else {
			out[i] = luma(uint32(px[0]), uint32(px[1]), uint32(px[2]))
		}
	}
	return out
}

// PNM returns the pipeline's input for f: the background then the frame, as
// P5 or P6 with maxval 255, the scene and the frame's provenance in the
// first header.
func (f Frame) PNM() []byte {
	var b bytes.Buffer
	magic := "P5"
	if f.format == "ppm" {
		magic = "P6"
	}
	fmt.Fprintf(&b, "%s\n# framegen camera %d frame %d\n", magic, f.Camera, f.Index)
	writeScene(&b, f.Scene)
	fmt.Fprintf(&b, "%d %d\n255\n", f.w, f.h)
	b.Write(f.Background)
	fmt.Fprintf(&b, "%s\n%d %d\n255\n", magic, f.w, f.h)
	b.Write(f.Image)
	return b.Bytes()
}
