package framegen

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the frame format, the same as the C stages' (stages/traffic.h).
const (
	MaxDim   = 4096 // width and height at most
	MaxLanes = 16
	maxName  = 15 // bytes of a lane, group or phase name
)

// Gray is an 8-bit grayscale image, row-major.
type Gray struct {
	W, H int
	Pix  []byte // W*H
}

// Scene is what travels with the frames in header comments: the lanes to
// count and the phase now on.
type Scene struct {
	Lanes []Lane
	Phase string // "" when none was given
}

// Lane is a fixed region of the image: pixels [X0,X1)×[Y0,Y1). Group names
// the lanes that share a green phase ("NS" → phase "NS_GREEN").
type Lane struct {
	Name, Group    string
	X0, Y0, X1, Y1 int
}

// DecodePair parses the pipeline's input as the decode stage does: two
// binary netpbm images (P5 or P6, maxval 1..65535), the background then the
// frame, of one size, converted to 8-bit gray (ITU-R BT.601 luma), with the
// scene read from "# lane NAME GROUP X0 Y0 X1 Y1" and "# phase NAME" header
// comments. It accepts exactly the inputs the C decoder accepts (a fuzz test
// holds them to that), so tests can check the stages against it.
func DecodePair(data []byte) (bg, fr Gray, sc Scene, err error) {
	p := pnmParser{b: data}
	if bg, err = p.image(&sc); err != nil {
		return bg, fr, sc, fmt.Errorf("background image: %w", err)
	}
	if p.off == len(p.b) {
		return bg, fr, sc, errors.New("one image only: want two, the background then the frame")
	}
	if fr, err = p.image(&sc); err != nil {
		return bg, fr, sc, fmt.Errorf("frame image: %w", err)
	}
	if n := len(p.b) - p.off; n > 0 {
		return bg, fr, sc, fmt.Errorf("%d bytes after the second image", n)
	}
	if bg.W != fr.W || bg.H != fr.H {
		return bg, fr, sc, fmt.Errorf("background is %dx%d, frame %dx%d: want one size", bg.W, bg.H, fr.W, fr.H)
	}
	for _, l := range sc.Lanes {
		if l.X1 > fr.W || l.Y1 > fr.H {
			return bg, fr, sc, fmt.Errorf("lane %s is outside the %dx%d image", l.Name, fr.W, fr.H)
		}
	}
	return bg, fr, sc, nil
}

// EncodePGMPair is what the decode stage writes for bg, fr and sc: two P5
// images with maxval 255, the scene in the first header.
func EncodePGMPair(bg, fr Gray, sc Scene) []byte {
	var b bytes.Buffer
	writePGM(&b, bg, &sc)
	writePGM(&b, fr, nil)
	return b.Bytes()
}

func writePGM(b *bytes.Buffer, g Gray, sc *Scene) {
	b.WriteString("P5\n")
	if sc != nil {
		writeScene(b, *sc)
	}
	fmt.Fprintf(b, "%d %d\n255\n", g.W, g.H)
	b.Write(g.Pix)
}

func writeScene(b *bytes.Buffer, sc Scene) {
	for _, l := range sc.Lanes {
		fmt.Fprintf(b, "# lane %s %s %d %d %d %d\n", l.Name, l.Group, l.X0, l.Y0, l.X1, l.Y1)
	}
	if sc.Phase != "" {
		fmt.Fprintf(b, "# phase %s\n", sc.Phase)
	}
}

type pnmParser struct {
	b   []byte
	off int
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// skip passes whitespace and comments, applying scene comments to sc.
func (p *pnmParser) skip(sc *Scene) error {
	for p.off < len(p.b) {
		c := p.b[p.off]
		if isSpace(c) {
			p.off++
			continue
		}
		if c != '#' {
			return nil
		}
		p.off++
		start := p.off
		for p.off < len(p.b) && p.b[p.off] != '\n' && p.b[p.off] != '\r' {
			p.off++
		}
		if p.off == len(p.b) {
			return errors.New("truncated header: a comment runs to the end of the input")
		}
		line := p.b[start:p.off]
		if len(line) >= 128 || bytes.IndexByte(line, 0) >= 0 {
			continue // longer than any scene line, or binary: another comment
		}
		tok := strings.FieldsFunc(string(line), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(tok) > 7 && (tok[0] == "lane" || tok[0] == "phase") {
			return fmt.Errorf("bad %s comment: too many fields", tok[0])
		}
		if err := sceneLine(tok, sc); err != nil {
			return err
		}
	}
	return nil
}

// sceneLine applies a "lane" or "phase" line to sc; other lines are not
// scene lines and are ignored.
func sceneLine(tok []string, sc *Scene) error {
	if len(tok) == 0 {
		return nil
	}
	switch tok[0] {
	case "lane":
		if len(tok) != 7 {
			return errors.New("bad lane line: want lane NAME GROUP X0 Y0 X1 Y1")
		}
		if !validName(tok[1]) || !validName(tok[2]) {
			return errors.New("bad lane line: names are 1-15 of A-Z a-z 0-9 _ -")
		}
		if len(sc.Lanes) == MaxLanes {
			return fmt.Errorf("more than %d lanes", MaxLanes)
		}
		l := Lane{Name: tok[1], Group: tok[2]}
		var ok [4]bool
		l.X0, ok[0] = parseInt(tok[3], 0, MaxDim)
		l.Y0, ok[1] = parseInt(tok[4], 0, MaxDim)
		l.X1, ok[2] = parseInt(tok[5], 0, MaxDim)
		l.Y1, ok[3] = parseInt(tok[6], 0, MaxDim)
		if !ok[0] || !ok[1] || !ok[2] || !ok[3] || l.X0 >= l.X1 || l.Y0 >= l.Y1 {
			return fmt.Errorf("bad lane %s: want 0 <= X0 < X1 <= %d and 0 <= Y0 < Y1 <= %d", l.Name, MaxDim, MaxDim)
		}
		sc.Lanes = append(sc.Lanes, l)
	case "phase":
		if len(tok) != 2 || !validName(tok[1]) {
			return errors.New("bad phase line: want phase NAME")
		}
		sc.Phase = tok[1]
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseInt reads decimal digits only, lo..hi.
func parseInt(s string, lo, hi int) (int, bool) {
	if s == "" {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
		if v > hi {
			return 0, false
		}
	}
	return v, v >= lo
}

func (p *pnmParser) uint(sc *Scene, what string, lo, hi int) (int, error) {
	if err := p.skip(sc); err != nil {
		return 0, err
	}
	if p.off == len(p.b) {
		return 0, fmt.Errorf("truncated header: no %s", what)
	}
	v, start := 0, p.off
	for p.off < len(p.b) && p.b[p.off] >= '0' && p.b[p.off] <= '9' {
		v = v*10 + int(p.b[p.off]-'0')
		if v > hi {
			return 0, fmt.Errorf("%s over %d", what, hi)
		}
		p.off++
	}
	switch {
	case p.off == start:
		return 0, fmt.Errorf("bad header: %s is not a number", what)
	case v < lo:
		return 0, fmt.Errorf("%s %d: want %d..%d", what, v, lo, hi)
	case p.off == len(p.b):
		return 0, fmt.Errorf("truncated header after %s", what)
	case !isSpace(p.b[p.off]) && p.b[p.off] != '#':
		return 0, fmt.Errorf("bad header: unexpected byte %#02x after %s", p.b[p.off], what)
	}
	return v, nil
}

func (p *pnmParser) image(sc *Scene) (Gray, error) {
	if len(p.b)-p.off < 2 {
		return Gray{}, errors.New("truncated input: no netpbm magic number")
	}
	m := p.b[p.off : p.off+2]
	if m[0] != 'P' || m[1] != '5' && m[1] != '6' {
		return Gray{}, errors.New("not a binary netpbm image: want P5 (PGM) or P6 (PPM)")
	}
	chans := 1
	if m[1] == '6' {
		chans = 3
	}
	p.off += 2
	w, err := p.uint(sc, "width", 1, MaxDim)
	if err != nil {
		return Gray{}, err
	}
	h, err := p.uint(sc, "height", 1, MaxDim)
	if err != nil {
		return Gray{}, err
	}
	maxval, err := p.uint(sc, "maxval", 1, 65535)
	if err != nil {
		return Gray{}, err
	}
	if p.b[p.off] == '#' {
		return Gray{}, errors.New("bad header: a comment right after maxval (want one whitespace byte)")
	}
	p.off++
	bps := 1
	if maxval > 255 {
		bps = 2
	}
	need := w * h * chans * bps
	if have := len(p.b) - p.off; have < need {
		return Gray{}, fmt.Errorf("truncated raster: %dx%d needs %d bytes, %d left", w, h, need, have)
	}
	g := Gray{W: w, H: h, Pix: make([]byte, w*h)}
	r := p.b[p.off : p.off+need]
	mv := uint32(maxval)
	for i := range g.Pix {
		var v [3]uint32
		for c := 0; c < chans; c++ {
			x := uint32(r[0])
			if bps == 2 {
				x = x<<8 | uint32(r[1])
			}
			r = r[bps:]
			if x > mv {
				return Gray{}, fmt.Errorf("sample %d over maxval %d at pixel %d", x, maxval, i)
			}
			v[c] = (x*255 + mv/2) / mv
		}
		if chans == 1 {
			g.Pix[i] = byte(v[0])
		} else {
			g.Pix[i] = luma(v[0], v[1], v[2])
		}
	}
	p.off += need
	return g, nil
}

// luma is ITU-R BT.601 luma in 8-bit fixed point (77+150+29 = 256), as the
// C decoder computes it.
func luma(r, g, b uint32) byte {
	return byte((77*r + 150*g + 29*b + 128) >> 8)
}

// String formats a lane as its header comment's fields.
func (l Lane) String() string {
	return l.Name + " " + l.Group + " " + strconv.Itoa(l.X0) + " " + strconv.Itoa(l.Y0) + " " +
		strconv.Itoa(l.X1) + " " + strconv.Itoa(l.Y1)
}
