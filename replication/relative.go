package replication

import (
	"fmt"

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

// MaxImpliedDots bounds the dots the relative deltas of one message leave
// out: the receiver adds them back, and bytes no longer bound them. An
// entry past the bound goes whole. It is under crdt.MaxRelativeDots.
const MaxImpliedDots = 1 << 14

// wireEntry is an Entry as sent in the relative form: its delta whole
// (Delta), or relative to the entry (Rel).
type wireEntry struct {
	Origin crdt.ReplicaID  `cbor:"1,keyasint"`
	First  crdt.Seq        `cbor:"2,keyasint"`
	Last   crdt.Seq        `cbor:"3,keyasint"`
	Delta  *crdt.Causal    `cbor:"4,keyasint,omitempty"`
	Rel    cbor.RawMessage `cbor:"5,keyasint,omitempty"`
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

// fromRelative decodes entries in the relative form. Errors wrap
// ErrInvalid.
func fromRelative(ws []wireEntry) ([]Entry, error) {
	if len(ws) > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, limit %d", ErrInvalid, len(ws), MaxEntries)
	}
	es := make([]Entry, len(ws))
	implied := 0
	for i, w := range ws {
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
