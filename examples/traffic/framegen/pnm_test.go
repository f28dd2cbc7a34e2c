package framegen

import (
	"bytes"
	"testing"
)

func TestDecodeValues(t *testing.T) {
	bg, fr, sc, err := DecodePair([]byte("P6\n# lane A g 0 0 1 1\n2 1 255\n\xff\xff\xff\x00\x00\x00P5 2 1 65535\n\x80\x00\xff\xff"))
	if err != nil {
		t.Fatal(err)
	}
	if bg.Pix[0] != 255 || bg.Pix[1] != 0 || fr.W != 2 || fr.Pix[0] != 128 || fr.Pix[1] != 255 {
		t.Errorf("got background %v frame %v, want [255 0] and [128 255]", bg.Pix, fr.Pix)
	}
	if len(sc.Lanes) != 1 || sc.Lanes[0] != (Lane{"A", "g", 0, 0, 1, 1}) {
		t.Errorf("got scene %+v", sc)
	}
	out := EncodePGMPair(bg, fr, sc)
	want := "P5\n# lane A g 0 0 1 1\n2 1\n255\n\xff\x00P5\n2 1\n255\n\x80\xff"
	if string(out) != want {
		t.Errorf("EncodePGMPair: got %q, want %q", out, want)
	}
}

// FuzzDecodePair: no input panics or allocates beyond its size's worth, and
// what is accepted is re-encoded and read back unchanged.
func FuzzDecodePair(f *testing.F) {
	for _, in := range []string{
		"P5 2 1 255\n\x00\x01P5 2 1 255\n\x02\x03",
		"P6 1 1 255\n\xff\x00\x00P5 1 1 65535\n\x00\x00",
		"P5#a\n1#b\n1\r#c\n255 \x00P5\n1 1\n255\n\x00",
		"P5\n# lane N NS 0 0 1 1\n# phase NS_GREEN\n1 1 255\n\x00P5 1 1 255\n\x00",
	} {
		f.Add([]byte(in))
	}
	cfg := DefaultConfig()
	cfg.Width, cfg.Height = 64, 64
	cam, _ := NewCamera(cfg, 0)
	f.Add(cam.Next().PNM())
	f.Fuzz(func(t *testing.T, in []byte) {
		bg, fr, sc, err := DecodePair(in)
		if err != nil {
			return
		}
		if len(bg.Pix) > len(in) || len(fr.Pix) > len(in) {
			t.Fatalf("%d input bytes decoded to %d and %d pixels", len(in), len(bg.Pix), len(fr.Pix))
		}
		out := EncodePGMPair(bg, fr, sc)
		bg2, fr2, sc2, err := DecodePair(out)
		if err != nil {
			t.Fatalf("re-encoded pair does not decode: %v", err)
		}
		if !bytes.Equal(bg.Pix, bg2.Pix) || !bytes.Equal(fr.Pix, fr2.Pix) || len(sc.Lanes) != len(sc2.Lanes) || sc.Phase != sc2.Phase {
			t.Fatal("re-encoded pair reads back different")
		}
	})
}
