package replication

import (
	"errors"
	"slices"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// group returns an entry of origin covering first…last, whose delta is
// only its context.
func group(origin crdt.ReplicaID, first, last crdt.Seq) Entry {
	var ctx crdt.Context
	ctx.AddRange(origin, first, last)
	return Entry{Origin: origin, First: first, Last: last, Delta: crdt.Causal{Ctx: ctx}}
}

func TestRelativeEntriesRoundTrip(t *testing.T) {
	es := []Entry{group(7, 1, 3), group(9, 5, 5), group(11, 2, MaxImpliedDots+1)}
	dense, err := EncodeDense(Message{Version: Version, Kind: KindEntries, Entries: es})
	if err != nil {
		t.Fatal(err)
	}
	small, err := EncodeDense(Message{Version: Version, Kind: KindEntries, Entries: es[:2]})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Encode(Message{Version: Version, Kind: KindEntries, Entries: es[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(small) >= len(whole) {
		t.Errorf("two relative entries take %d bytes, whole ones %d", len(small), len(whole))
	}
	m, err := Decode(dense)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != len(es) {
		t.Fatalf("decoded %d entries, want %d", len(m.Entries), len(es))
	}
	for i, e := range m.Entries {
		if e.Origin != es[i].Origin || e.First != es[i].First || e.Last != es[i].Last || !e.Delta.Ctx.Equal(&es[i].Delta.Ctx) {
			t.Errorf("entry %d: %s:%d-%d, want %s:%d-%d with the same context", i, e.Origin, e.First, e.Last, es[i].Origin, es[i].First, es[i].Last)
		}
	}
}

// TestRelativeWithinImpliedDots: entries go relative while the dots they
// leave out fit in MaxImpliedDots, and whole after that, or where their
// context lacks some of their dots.
func TestRelativeWithinImpliedDots(t *testing.T) {
	lacking := group(5, 1, 2)
	lacking.Last = 3
	ws, err := toRelative([]Entry{group(1, 1, MaxImpliedDots-1), group(2, 1, 1), group(3, 1, 1), lacking})
	if err != nil {
		t.Fatal(err)
	}
	for i, relative := range []bool{true, true, false, false} {
		if (ws[i].Rel != nil) != relative || (ws[i].Delta != nil) == relative {
			t.Errorf("entry %d: relative %v, want %v", i, ws[i].Rel != nil, relative)
		}
	}
}

func TestRelativeEntriesAreValidated(t *testing.T) {
	rel, err := group(7, 1, 3).Delta.MarshalCBORRelative(7, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	whole := group(7, 1, 3).Delta
	entry := func(origin, first, last uint64, delta any, relative []byte) map[int]any {
		e := map[int]any{1: origin, 2: first, 3: last}
		if delta != nil {
			e[4] = delta
		}
		if relative != nil {
			e[5] = cbor.RawMessage(relative)
		}
		return e
	}
	wide, err := group(7, 1, MaxImpliedDots+1).Delta.MarshalCBORRelative(7, 1, MaxImpliedDots+1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    map[int]any
	}{
		{"relative entries in a vector", map[int]any{1: Version, 2: int(KindVector), 19: []any{entry(7, 1, 3, nil, rel)}}},
		{"relative and whole entries", map[int]any{1: Version, 2: int(KindEntries), 6: []any{entry(7, 1, 3, whole, nil)}, 19: []any{entry(7, 1, 3, nil, rel)}}},
		{"an entry both whole and relative", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(7, 1, 3, whole, rel)}}},
		{"an entry with no delta", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(7, 1, 3, nil, nil)}}},
		{"no origin", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(0, 1, 3, nil, rel)}}},
		{"last before first", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(7, 3, 1, nil, rel)}}},
		{"too many dots left out", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(7, 1, MaxImpliedDots+1, nil, wide)}}},
		{"not a causal", map[int]any{1: Version, 2: int(KindEntries), 19: []any{entry(7, 1, 3, nil, []byte{0x01})}}},
		{"indexed origins without a set", map[int]any{1: Version, 2: int(KindEntries), 19: []any{indexedEntry(1, rel)}}},
		{"indexed origins with a short set", map[int]any{1: Version, 2: int(KindEntries), 17: []byte{1, 2}, 19: []any{indexedEntry(1, rel)}}},
		{"indexed origins with a compact vector", map[int]any{1: Version, 2: int(KindEntries), 17: make([]byte, 8), 18: []uint64{1}, 19: []any{indexedEntry(1, rel)}}},
	} {
		b, err := cbor.Marshal(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(append([]byte{codecCBOR}, b...)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode = %v, want ErrInvalid", c.name, err)
		}
	}
}

// indexedEntry returns a relative entry covering 1…3 of the origin at
// index.
func indexedEntry(index uint64, rel []byte) map[int]any {
	return map[int]any{6: index, 2: 1, 3: 3, 5: cbor.RawMessage(rel)}
}

// TestIndexedOriginsResolve: entries that name their origins by index
// decode into the replicas of the set they were indexed in; an index past
// the set, or an entry with both an ID and an index, is refused.
func TestIndexedOriginsResolve(t *testing.T) {
	// Replica IDs spread over 64 bits, as real ones are.
	const a, b, c, d = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93
	es := []Entry{group(a, 1, 3), group(b, 5, 5), group(c, 2, 2)}
	set := crdt.VersionVector{a: 3, b: 5, c: 2, d: 1}
	enc, err := EncodeIndexed(Message{Version: Version, Kind: KindEntries, Entries: es, Origins: set})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := EncodeDense(Message{Version: Version, Kind: KindEntries, Entries: es, Origins: set})
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) >= len(dense) {
		t.Errorf("indexed origins take %d bytes, IDs %d", len(enc), len(dense))
	}
	m, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Entries != nil || len(m.indexed) != len(es) || string(m.Set) != string(SetHash(set)) {
		t.Fatalf("decoded %+v, want the indexed entries kept for Step with the set's hash", m)
	}
	got, err := fromRelative(m.indexed, setOf(set))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if e.Origin != es[i].Origin || e.First != es[i].First || e.Last != es[i].Last {
			t.Errorf("entry %d: %s:%d-%d, want %s:%d-%d", i, e.Origin, e.First, e.Last, es[i].Origin, es[i].First, es[i].Last)
		}
	}
	if _, err := fromRelative(m.indexed, setOf(set)[:2]); !errors.Is(err, ErrInvalid) {
		t.Errorf("an index past the set: %v, want ErrInvalid", err)
	}
	both := slices.Clone(m.indexed)
	both[0].Origin = a
	if _, err := fromRelative(both, setOf(set)); !errors.Is(err, ErrInvalid) {
		t.Errorf("an ID and an index: %v, want ErrInvalid", err)
	}

	// Contexts that name two of the origins again: Snappy shrinks
	// the IDs' second mentions, not the set's hash. Whichever form is
	// smaller goes.
	var shared []Entry
	for i := range 3 {
		e := group([]crdt.ReplicaID{a, b, c}[i], 1, 1)
		for _, r := range []crdt.ReplicaID{a, b} {
			if r != e.Origin {
				e.Delta.Ctx.Add(crdt.Dot{Replica: r, Seq: 7})
			}
		}
		shared = append(shared, e)
	}
	for _, es := range [][]Entry{es, shared} {
		m := Message{Version: Version, Kind: KindEntries, Entries: es, Origins: set}
		indexed, err := EncodeIndexed(m)
		if err != nil {
			t.Fatal(err)
		}
		dense, err := EncodeDense(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(indexed) > len(dense) {
			t.Errorf("%d entries: indexed encoding of %d bytes, by ID %d: want the smaller", len(es), len(indexed), len(dense))
		}
	}

	one, err := EncodeIndexed(Message{Version: Version, Kind: KindEntries, Entries: es[:1], Origins: set})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Decode(one); err != nil || m.indexed != nil || len(m.Entries) != 1 {
		t.Errorf("one entry: %+v (%v), want it by ID: an index and a set cost more", m, err)
	}
}
