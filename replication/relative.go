package replication

import (
	"fmt"
	"math"
	"slices"

	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// Relative entries. An entry names its origin and its dots, and its delta
// names them again: the origin's 64-bit ID in every dot of the value and
// the context, and each of the entry's own dots in the context. Encoded
// for peers that read it (EncodeDense), a message carries its entries
// with their deltas relative to the entry
// (crdt.Causal.MarshalCBORRelative): the origin written as 0, and the own
// dots left for the receiver to add back.
//
// Indexed origins. Each entry still names its origin, nine bytes of ID
// that compression cannot shrink. EncodeIndexed (for peers of
// /edged/sync/4) names them by their places among the replicas of a set
// the receiver knows, sent once as its hash, as a compact vector names its
// sequences (vector.go); Sync.Step reads them over the receiver's own
// replicas or the sender's last word's.

// MaxImpliedDots bounds the dots the relative deltas of one message leave
// out: the receiver adds them back, and bytes no longer bound them. An
// entry past the bound goes whole. It is under crdt.MaxRelativeDots.
const MaxImpliedDots = 1 << 14

// wireEntry is an Entry as sent in the relative form: its delta whole
// (Delta), or relative to the entry (Rel); its origin by ID (Origin), or,
// on /edged/sync/4, by its place among the replicas of a set the receiver
// knows (Index, from 1: see Indexed origins in docs/PROTOCOL.md).
type wireEntry struct {
	Origin crdt.ReplicaID  `cbor:"1,keyasint,omitempty"`
	First  crdt.Seq        `cbor:"2,keyasint"`
	Last   crdt.Seq        `cbor:"3,keyasint"`
	Delta  *crdt.Causal    `cbor:"4,keyasint,omitempty"`
	Rel    cbor.RawMessage `cbor:"5,keyasint,omitempty"`
	Index  uint64          `cbor:"6,keyasint,omitempty"`
}

// toRelative returns es in the relative form: each delta relative to its
// entry while the dots left out fit in MaxImpliedDots, whole after that or
// where its context lacks some of the entry's dots.
func toRelative(es []Entry) ([]wireEntry, error) {
	ws := make([]wireEntry, len(es))
	implied := 0
	for i, e := range es {
		ws[i] = wireEntry{Origin: e.Origin, First: e.First, Last: e.Last}
		span := int(min(e.Last-e.First+1, MaxImpliedDots+1))
		if implied+span <= MaxImpliedDots && e.Delta.Ctx.ContainsRange(e.Origin, e.First, e.Last) {
			b, err := e.Delta.MarshalCBORRelative(e.Origin, e.First, e.Last)
			if err != nil {
				return nil, err
			}
			ws[i].Rel = b
			implied += span
			continue
		}
		ws[i].Delta = &es[i].Delta
	}
	return ws, nil
}

// fromRelative decodes entries in the relative form, whose origins are
// given by ID or by their place (from 1) among ids. Errors wrap
// ErrInvalid.
func fromRelative(ws []wireEntry, ids []crdt.ReplicaID) ([]Entry, error) {
	if len(ws) > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, limit %d", ErrInvalid, len(ws), MaxEntries)
	}
	es := make([]Entry, len(ws))
	implied := 0
	for i, w := range ws {
		switch {
		case w.Index == 0:
		case w.Origin != 0 || w.Index > uint64(len(ids)):
			return nil, fmt.Errorf("%w: entry %d: origin %s and index %d of %d replicas", ErrInvalid, i, w.Origin, w.Index, len(ids))
		default:
			w.Origin = ids[w.Index-1]
		}
		es[i] = Entry{Origin: w.Origin, First: w.First, Last: w.Last}
		switch {
		case (w.Delta == nil) == (w.Rel == nil):
			return nil, fmt.Errorf("%w: entry %d: not one delta, whole or relative", ErrInvalid, i)
		case w.Delta != nil:
			es[i].Delta = *w.Delta
			continue
		case w.Origin == 0 || w.First == 0 || w.Last < w.First || w.Last > MaxSeqAccepted:
			return nil, fmt.Errorf("%w: entry %d covers %s:%d-%d", ErrInvalid, i, w.Origin, w.First, w.Last)
		}
		if implied += int(min(w.Last-w.First+1, MaxImpliedDots+1)); implied > MaxImpliedDots {
			return nil, fmt.Errorf("%w: relative deltas leaving out more than %d dots", ErrInvalid, MaxImpliedDots)
		}
		if err := es[i].Delta.UnmarshalCBORRelative(w.Rel, w.Origin, w.First, w.Last); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrInvalid, i, err)
		}
	}
	return es, nil
}

// indexed reports whether some of ws name their origins by index.
func indexed(ws []wireEntry) bool {
	return slices.ContainsFunc(ws, func(w wireEntry) bool { return w.Index != 0 })
}

// originIndex returns the places (from 1) of set's replicas, by which es
// may name their origins; nil when that would not save bytes: the set's
// hash costs 10 (a real replica ID costs 9, an index 1 or 2).
func originIndex(es []Entry, set crdt.VersionVector) map[crdt.ReplicaID]uint64 {
	rs := setOf(set)
	index := make(map[crdt.ReplicaID]uint64, len(rs))
	for i, r := range rs {
		index[r] = uint64(i + 1)
	}
	saved := 0
	for _, e := range es {
		if n, ok := index[e.Origin]; ok {
			saved += uintBytes(uint64(e.Origin)) - uintBytes(n)
		}
	}
	if saved <= 2+setHashBytes {
		return nil
	}
	return index
}

// uintBytes returns the size of n in CBOR.
func uintBytes(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}
