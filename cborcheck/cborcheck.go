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

// ErrLength: a length or count does not fit in 31 bits.
var ErrLength = errors.New("cbor: length over 2^31-1")

// Lengths walks the data items of b (as far as b holds them: truncated or
// malformed data is left for the decoder to refuse) and returns ErrLength
// if a string's length or an array's or map's count is over 2^31-1. It
// runs in time linear in len(b) and allocates nothing.
func Lengths(b []byte) error {
	need := uint64(1) // data items still to read
	for off := 0; need > 0 && off < len(b); need-- {
		major, ai := b[off]>>5, b[off]&0x1f
		off++
		var arg uint64
		switch {
		case ai < 24:
			arg = uint64(ai)
		case ai <= 27:
			n := 1 << (ai - 24)
			if off+n > len(b) {
				return nil // truncated: the decoder refuses it
			}
			var buf [8]byte
			copy(buf[8-n:], b[off:off+n])
			arg = binary.BigEndian.Uint64(buf[:])
			off += n
		default:
			return nil // indefinite lengths and reserved values: the decoder decides
		}
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
