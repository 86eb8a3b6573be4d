package aggregator

import (
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
)

// TestNodeRecord: a stored record gives back the node, offline (its
// retained status tells), with its vector; a record of another version or
// of another node is refused.
func TestNodeRecord(t *testing.T) {
	id := crdt.ReplicaID(0xabc)
	n := &NodeInfo{Replica: id.String(), Name: "gw-7", Fleet: "north", Online: true, LastSeen: time.Unix(1700000000, 0),
		Batches: 12, Entries: 340, Refused: 1, LastErr: "a gap", id: id, vector: crdt.VersionVector{id: 340, 7: 2}}
	b, err := encodeNode(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeNode(id, b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Online || got.Name != "gw-7" || got.Batches != 12 || got.LastErr != "a gap" || !got.LastSeen.Equal(n.LastSeen) ||
		got.id != id || got.vector.Compare(n.vector) != crdt.Equal || string(got.saved) != string(b) {
		t.Errorf("decoded %+v", got)
	}
	if _, err := decodeNode(id+1, b); err == nil {
		t.Error("a record stored under another node was taken")
	}
	newer, err := encodeNode(n)
	if err != nil {
		t.Fatal(err)
	}
	newer[2]++ // the version: map(3), key 1, then the version as a small uint
	if _, err := decodeNode(id, newer); err == nil {
		t.Error("a record of another version was taken")
	}
}

// FuzzDecodeNode: no input makes the decoder panic, and what it takes
// encodes again.
func FuzzDecodeNode(f *testing.F) {
	id := crdt.ReplicaID(0xabc)
	b, err := encodeNode(&NodeInfo{Replica: id.String(), Name: "gw", id: id, vector: crdt.VersionVector{id: 3}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNode(id, b)
		if err != nil {
			return
		}
		if _, err := encodeNode(n); err != nil {
			t.Fatalf("a record taken does not encode again: %v", err)
		}
	})
}
