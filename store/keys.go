package store

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edged-dev/edged/crdt"
)

// Key layout. One-byte prefixes keep the groups apart and iterable:
//
//	'k' name                 → states of the top-level fields called name, one per type (record)
//	'c'                      → the store's causal context (crdt.Context)
//	'l' origin(8) first(8)   → delta-log entry (logRecord), big-endian so entries sort by origin, then dot
//	'w' destination          → acknowledged version vector of a destination
//	'p' peer ID              → what is known of a peer (KnownPeer)
//	'a' replica(8)           → what an aggregator knows of a node (opaque to the store)
//	'r' name 0 bucket origin seq → readings (see facts.go)
//	'm' name                 → metadata: format version, HLC, log vector, state transfer progress
const (
	prefixName      = 'k'
	prefixLog       = 'l'
	prefixWatermark = 'w'
	prefixFact      = 'r'
	prefixPeer      = 'p'
	prefixNode      = 'a'
)

var (
	keyContext = []byte{'c'}
	keyFormat  = []byte("mformat")
	keyHLC     = []byte("mhlc")
	keyLogVV   = []byte("mlogvv")
	// keyReadings holds what the readings stream brought (see
	// DB.ReadingsHeld).
	keyReadings = []byte("mreadings")
	// keyTransfer holds the progress of a state transfer (Transfer).
	keyTransfer = []byte("mxfer")
	// keyFlush is written and dropped by reclaim: Badger flushes its
	// memtables only when they are full, or when a prefix is dropped.
	keyFlush = []byte("mflush")
)

// Limits on what the store accepts.
const (
	// MaxNameBytes bounds a key name.
	MaxNameBytes = 1024
	// MaxValueBytes bounds the encoding of one field's state.
	MaxValueBytes = 1 << 20
)

// ValidateName reports whether name can be stored: non-empty UTF-8 of at
// most MaxNameBytes, without NUL bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidName, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains a NUL byte", ErrInvalidName)
	}
	return nil
}

func nameKey(name string) []byte {
	k := make([]byte, 0, len(name)+1)
	k = append(k, prefixName)
	return append(k, name...)
}

func logKey(origin crdt.ReplicaID, first crdt.Seq) []byte {
	k := make([]byte, 17)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], uint64(origin))
	binary.BigEndian.PutUint64(k[9:], uint64(first))
	return k
}

func parseLogKey(k []byte) (crdt.ReplicaID, crdt.Seq, bool) {
	if len(k) != 17 || k[0] != prefixLog {
		return 0, 0, false
	}
	return crdt.ReplicaID(binary.BigEndian.Uint64(k[1:])), crdt.Seq(binary.BigEndian.Uint64(k[9:])), true
}

func watermarkKey(dest string) []byte { return append([]byte{prefixWatermark}, dest...) }
