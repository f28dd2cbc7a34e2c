package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errLengths is returned for a payload whose arrays, maps, strings or
// binaries declare more than the frame holds.
var errLengths = errors.New("ipc: payload declares more than the frame holds")

// checkLengths walks the msgpack value at the start of b and fails if any
// array or map declares more elements, or any string, binary or extension
// more bytes, than are left in b. msgpack's reflection decoder allocates a
// slice for the declared length before reading its elements (its
// allocation limit is not applied in v5.4.1), so a 100-byte frame could
// otherwise demand gigabytes; every element takes at least one byte, so
// no valid payload fails. The walk is iterative: nesting depth costs
// nothing.
func checkLengths(b []byte) error {
	pending := 1 // values still to read
	for pos := 0; pending > 0; {
		if pending > len(b)-pos {
			return fmt.Errorf("%w: %d values at byte %d, %d bytes left", errLengths, pending, pos, len(b)-pos)
		}
		c := b[pos]
		pending--
		var head, n int // header bytes; elements (arrays, maps) or bytes (str, bin, ext) that follow
		items := false
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			head = 1
		case c <= 0x8f:
			head, n, items = 1, 2*int(c&0x0f), true
		case c <= 0x9f:
			head, n, items = 1, int(c&0x0f), true
		case c <= 0xbf:
			head, n = 1, int(c&0x1f)
		default:
			var err error
			if head, n, items, err = sized(b[pos:], c); err != nil {
				return err
			}
		}
		if head > len(b)-pos {
			return fmt.Errorf("%w: a header at byte %d is cut", errLengths, pos)
		}
		pos += head
		if items {
			pending += n
			continue
		}
		if n > len(b)-pos {
			return fmt.Errorf("%w: %d bytes at byte %d, %d left", errLengths, n, pos, len(b)-pos)
		}
		pos += n
	}
	return nil
}

// sized decodes the header of the msgpack value starting with code c at
// the start of b (which holds at least c): its length in bytes, and the
// number of elements (items) or of payload bytes it declares.
func sized(b []byte, c byte) (head, n int, items bool, err error) {
	length := func(size int) int { // big-endian length after the code
		if len(b) < 1+size {
			return 1 << 62 // cut: the caller's bounds check fails
		}
		switch size {
		case 1:
			return int(b[1])
		case 2:
			return int(binary.BigEndian.Uint16(b[1:]))
		}
		return int(binary.BigEndian.Uint32(b[1:]))
	}
	switch c {
	case 0xc4, 0xd9: // bin8, str8
		return 2, length(1), false, nil
	case 0xc5, 0xda: // bin16, str16
		return 3, length(2), false, nil
	case 0xc6, 0xdb: // bin32, str32
		return 5, length(4), false, nil
	case 0xc7: // ext8: length, type, data
		return 3, length(1), false, nil
	case 0xc8:
		return 4, length(2), false, nil
	case 0xc9:
		return 6, length(4), false, nil
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return 5, 0, false, nil
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return 9, 0, false, nil
	case 0xcc, 0xd0:
		return 2, 0, false, nil
	case 0xcd, 0xd1:
		return 3, 0, false, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type + data
		return 2 + 1<<(c-0xd4), 0, false, nil
	case 0xdc: // array16
		return 3, length(2), true, nil
	case 0xdd: // array32
		return 5, length(4), true, nil
	case 0xde: // map16
		return 3, 2 * length(2), true, nil
	case 0xdf: // map32
		return 5, 2 * length(4), true, nil
	}
	return 0, 0, false, fmt.Errorf("ipc: payload: unknown msgpack code 0x%02x", c)
}
