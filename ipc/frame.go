package ipc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// DefaultMaxFrame is the frame size cap used when NewConn is given 0. It must
// hold the largest module we accept (a Go wasip1 module is ~2–10 MiB).
const DefaultMaxFrame = 64 << 20

// keepBuf is the largest read buffer a Conn keeps between frames; a larger
// frame (a module upload) gets a buffer of its own that is dropped after use.
const keepBuf = 1 << 20

// Sentinel errors. A Conn that returned one of them must be closed: the
// stream is no longer in sync.
var (
	ErrFrameTooLarge = errors.New("ipc: frame too large")
	ErrEmptyFrame    = errors.New("ipc: empty frame")
	ErrBadEnvelope   = errors.New("ipc: frame is not a [kind, payload] array")
)

// Conn reads and writes frames on a stream (one end of a socketpair, or a
// control-socket connection). Its zero value is not usable; use NewConn.
type Conn struct {
	r   *bufio.Reader
	w   io.Writer
	max int
	lim Limits // bounds of Job and Result fields (SetLimits)

	// Read side: owned by the single reading goroutine.
	hdr   [4]byte
	rbuf  []byte
	rd    bytes.Reader
	dec   *msgpack.Decoder
	frame []byte // the last frame read, for checkLengths

	// Write side: wmu serialises writers so frames never interleave.
	wmu  sync.Mutex
	wbuf bytes.Buffer
	enc  *msgpack.Encoder
}

// NewConn returns a Conn on rw whose frames are capped at max bytes
// (DefaultMaxFrame when max <= 0), in both directions.
func NewConn(rw io.ReadWriter, max int) *Conn {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	c := &Conn{r: bufio.NewReaderSize(rw, 64<<10), w: rw, max: max}
	c.dec = msgpack.NewDecoder(&c.rd)
	c.enc = msgpack.NewEncoder(&c.wbuf)
	return c
}

// Write sends one frame [k, v]. v is any msgpack-encodable value; the hot
// message types (Job, Result) encode themselves without allocating.
func (c *Conn) Write(k Kind, v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf.Reset()
	if l, ok := v.(*Load); ok {
		// One allocation of the module's size, rather than a buffer
		// doubling up to twice it: a 30 MiB module made ~96 MiB of
		// garbage per frame.
		c.wbuf.Grow(len(l.Wasm) + len(l.Name) + len(l.SHA256) + 64)
	}
	c.wbuf.Write([]byte{0, 0, 0, 0}) // length, patched below
	c.enc.Reset(&c.wbuf)
	if err := encodeEnvelope(c.enc, k, v); err != nil {
		return fmt.Errorf("ipc: encode %v: %w", k, err)
	}
	b := c.wbuf.Bytes()
	n := len(b) - 4
	if n > c.max {
		return fmt.Errorf("%w: %d bytes (cap %d)", ErrFrameTooLarge, n, c.max)
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	_, err := c.w.Write(b)
	if c.wbuf.Cap() > keepBuf {
		c.wbuf = bytes.Buffer{} // do not pin a module-sized buffer
	}
	return err
}

// Read reads the next frame and returns its kind. The payload is decoded by
// a following Decode. io.EOF means the peer closed cleanly between frames.
func (c *Conn) Read() (Kind, error) {
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint32(c.hdr[:]))
	if n == 0 {
		return 0, ErrEmptyFrame
	}
	if n > c.max {
		return 0, fmt.Errorf("%w: %d bytes (cap %d)", ErrFrameTooLarge, n, c.max)
	}
	buf := c.rbuf
	switch {
	case n > keepBuf:
		buf = make([]byte, n)
	case cap(buf) < n:
		c.rbuf = make([]byte, n, max(n, 4096))
		buf = c.rbuf
	}
	buf = buf[:n]
	if _, err := io.ReadFull(c.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	c.rd.Reset(buf)
	c.dec.Reset(&c.rd)
	c.frame = buf
	return decodeEnvelope(c.dec)
}

// Decode decodes the payload of the frame returned by the last Read into v
// (a pointer).
func (c *Conn) Decode(v any) error {
	var err error
	switch m := v.(type) {
	case *Job:
		err = m.decode(c.dec, c.lim)
	case *Result:
		err = m.decode(c.dec, c.lim)
	default:
		// The reflection decoder trusts declared lengths: check them
		// against the frame first (the fast paths above bound theirs).
		if err = checkLengths(c.frame[len(c.frame)-c.rd.Len():]); err == nil {
			err = c.dec.Decode(v)
		}
	}
	if err != nil {
		return fmt.Errorf("ipc: decode payload: %w", err)
	}
	return nil
}

func encodeEnvelope(enc *msgpack.Encoder, k Kind, v any) error {
	if err := enc.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := enc.EncodeUint8(uint8(k)); err != nil {
		return err
	}
	// The hot types skip reflection: Encode(any) boxes and reflects.
	switch m := v.(type) {
	case *Job:
		return m.EncodeMsgpack(enc)
	case *Result:
		return m.EncodeMsgpack(enc)
	}
	return enc.Encode(v)
}

func decodeEnvelope(dec *msgpack.Decoder) (Kind, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 2 {
		return 0, ErrBadEnvelope
	}
	k, err := dec.DecodeUint8()
	if err != nil {
		return 0, ErrBadEnvelope
	}
	return Kind(k), nil
}
