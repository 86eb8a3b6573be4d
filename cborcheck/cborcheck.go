// Package cborcheck checks that every length in CBOR data fits in 31
// bits, before github.com/fxamacker/cbor/v2 decodes it: on 32-bit
// platforms (armv6, armv7) that library (v2.10.0) converts a length to int
// without a check, so a length of 2^32+n reads as n, and a peer's hostile
// message would decode there into something other than what 64-bit nodes
// see (they refuse it). edged's own limits are far below 2^31, so nothing
// valid is refused.
package cborcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
)

var (
	wireEnc = func() cbor.EncMode {
		em, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err) // the options are constants
		}
		return em
	}()
	wireDec = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20, MaxNestedLevels: 48,
			IndefLength: cbor.IndefLengthForbidden, DupMapKey: cbor.DupMapKeyEnforcedAPF,
		}.DecMode()
		if err != nil {
			panic(err) // the options are constants
		}
		return dm
	}()
)

// Marshal encodes a wire message v with core deterministic encoding.
func Marshal(v any) ([]byte, error) { return wireEnc.Marshal(v) }

// UnmarshalWire checks b's lengths, then decodes the wire message into v
// with the wire limits.
func UnmarshalWire(b []byte, v any) error { return Unmarshal(wireDec, b, v) }

// Unmarshal checks b's lengths, then decodes it into v with dm.
func Unmarshal(dm cbor.DecMode, b []byte, v any) error {
	if err := Lengths(b); err != nil {
		return err
	}
	return dm.Unmarshal(b, v)
}

var (
	// ErrLength: a length or count does not fit in 31 bits.
	ErrLength = errors.New("cbor: length over 2^31-1")
	// ErrMalformed: Head or Skip met data they cannot walk: truncated,
	// of indefinite length, or with a reserved value. The decoder refuses
	// all of it too.
	ErrMalformed = errors.New("cbor: malformed data")
)

// Lengths walks the data items of b (as far as b holds them: truncated or
// malformed data is left for the decoder to refuse) and returns ErrLength
// if a string's length or an array's or map's count is over 2^31-1. It
// runs in time linear in len(b) and allocates nothing.
func Lengths(b []byte) error {
	need := uint64(1) // data items still to read
	for off := 0; need > 0 && off < len(b); need-- {
		major, arg, next, ok := head(b, off)
		if !ok {
			return nil // the decoder refuses it, or decides
		}
		off = next
		switch major {
		case 2, 3: // byte and text strings
			if arg > math.MaxInt32 {
				return fmt.Errorf("%w: a string of %d bytes", ErrLength, arg)
			}
			if arg > uint64(len(b)-off) {
				return nil // truncated
			}
			off += int(arg)
		case 4: // array
			if arg > math.MaxInt32 {
				return fmt.Errorf("%w: an array of %d items", ErrLength, arg)
			}
			need += arg
		case 5: // map
			if arg > math.MaxInt32/2 {
				return fmt.Errorf("%w: a map of %d pairs", ErrLength, arg)
			}
			need += 2 * arg
		case 6: // a tag: its content follows
			need++
		}
	}
	return nil
}

// Head reads the head of the data item at b[off]: its major type (0 to
// 7), its argument (a value, a string's length, an array's items, a map's
// pairs, a tag number) and the offset just past the head. Indefinite
// lengths and truncated heads are ErrMalformed. It allocates nothing.
func Head(b []byte, off int) (major byte, arg uint64, next int, err error) {
	major, arg, next, ok := head(b, off)
	if !ok {
		return 0, 0, off, fmt.Errorf("%w: at byte %d", ErrMalformed, off)
	}
	return major, arg, next, nil
}

// Skip returns the offset just past the data item at b[off], nested items
// included. Data it cannot walk, or that b does not hold whole, is
// ErrMalformed. It walks without recursion, in time linear in the bytes
// skipped, and allocates nothing: hostile nesting costs no stack.
func Skip(b []byte, off int) (int, error) {
	need := uint64(1) // data items still to read
	for ; need > 0; need-- {
		major, arg, next, ok := head(b, off)
		if !ok {
			return off, fmt.Errorf("%w: at byte %d", ErrMalformed, off)
		}
		off = next
		left := uint64(len(b) - off)
		switch major {
		case 2, 3:
			if arg > left {
				return off, fmt.Errorf("%w: a string of %d bytes with %d left", ErrMalformed, arg, left)
			}
			off += int(arg)
		case 4, 5:
			// Every item takes a byte at least: a count over what is
			// left is truncated, and need stays under 2*len(b).
			if arg > left {
				return off, fmt.Errorf("%w: %d items or pairs with %d bytes left", ErrMalformed, arg, left)
			}
			need += arg << (major - 4)
		case 6:
			need++
		}
	}
	return off, nil
}

// head reads the head of the data item at b[off]; ok is false when b
// holds no whole head there, or the head has an indefinite length or a
// reserved value.
func head(b []byte, off int) (major byte, arg uint64, next int, ok bool) {
	if off < 0 || off >= len(b) {
		return 0, 0, off, false
	}
	major, ai := b[off]>>5, b[off]&0x1f
	off++
	switch {
	case ai < 24:
		return major, uint64(ai), off, true
	case ai <= 27:
		n := 1 << (ai - 24)
		if off+n > len(b) {
			return 0, 0, off, false
		}
		var buf [8]byte
		copy(buf[8-n:], b[off:off+n])
		return major, binary.BigEndian.Uint64(buf[:]), off + n, true
	}
	return 0, 0, off, false
}
