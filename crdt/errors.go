package crdt

import "errors"

// Errors returned by this package. Test for them with errors.Is; the returned
// errors wrap them with details.
var (
	// ErrTypeMismatch: two values of different CRDT types were joined.
	ErrTypeMismatch = errors.New("crdt: type mismatch")
	// ErrUnknownType: a type tag this build does not know.
	ErrUnknownType = errors.New("crdt: unknown type")
	// ErrOverflow: a counter would exceed its range.
	ErrOverflow = errors.New("crdt: counter overflow")
	// ErrInvalidReading: a sensor reading with a NaN or infinite value.
	ErrInvalidReading = errors.New("crdt: invalid reading")
	// ErrClockSkew: a remote timestamp too far ahead of the local clock.
	ErrClockSkew = errors.New("crdt: clock skew")
	// ErrDecode: bytes that are not a valid encoding, or exceed the limits.
	ErrDecode = errors.New("crdt: invalid encoding")
	// ErrVersion: an encoding of a newer, unsupported format version.
	ErrVersion = errors.New("crdt: unsupported format version")
)
