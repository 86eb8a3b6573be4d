package replication_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
)

func TestCompactVectorsAreValidated(t *testing.T) {
	vv := crdt.VersionVector{1: 2, 3: 4}
	set := replication.SetHash(vv)
	for _, c := range []struct {
		name string
		m    replication.Message
	}{
		{"short set hash", replication.Message{Kind: replication.KindVector, Vector: vv, Set: set[:4]}},
		{"set hash of other replicas", replication.Message{Kind: replication.KindVector, Vector: crdt.VersionVector{1: 2}, Set: set}},
		{"whole and compact", replication.Message{Kind: replication.KindVector, Vector: vv, Set: set, Seqs: []crdt.Seq{2, 4}}},
		{"compact without a set", replication.Message{Kind: replication.KindAck, Seqs: []crdt.Seq{2, 4}}},
		{"zero sequence", replication.Message{Kind: replication.KindAck, Set: set, Seqs: []crdt.Seq{0, 4}}},
		{"sequence too large", replication.Message{Kind: replication.KindAck, Set: set, Seqs: []crdt.Seq{replication.MaxSeqAccepted + 1, 4}}},
		{"too many replicas", replication.Message{Kind: replication.KindAck, Set: set, Seqs: make([]crdt.Seq, replication.MaxReplicas+1)}},
		{"in a digest", replication.Message{Kind: replication.KindDigest, Hash: make([]byte, 32), Set: set, Seqs: []crdt.Seq{2, 4}}},
		{"in an offer", replication.Message{Kind: replication.KindOffer, Vector: vv, Set: set}},
	} {
		c.m.Version = replication.Version
		b, err := replication.Encode(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replication.Decode(b); !errors.Is(err, replication.ErrInvalid) {
			t.Errorf("%s: Decode = %v, want ErrInvalid", c.name, err)
		}
	}
	for _, m := range []replication.Message{
		{Version: replication.Version, Kind: replication.KindVector, Vector: vv, Set: set, Pull: true},
		{Version: replication.Version, Kind: replication.KindAck, Set: set, Seqs: []crdt.Seq{2, 4}},
	} {
		b, err := replication.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replication.Decode(b); err != nil {
			t.Errorf("Decode(%+v) = %v", m, err)
		}
	}
}

// oneNode returns a node holding three writes of its own, and an engine
// over it with one peer, "p".
func oneNode(t *testing.T) (*simtest.Node, *replication.Sync) {
	t.Helper()
	sim := simtest.New(1, 1, simtest.Net{}, replication.Config{})
	fill(t, sim, 0, 3, "k", "x")
	s := replication.New(sim.Nodes[0], replication.Config{RoundTicks: 2})
	s.AddPeer("p")
	return sim.Nodes[0], s
}

// nextVector ticks s until it starts a round with p, and returns the
// vector it starts with.
func nextVector(t *testing.T, s *replication.Sync) replication.Message {
	t.Helper()
	for range 10 {
		if outs := s.Tick(); len(outs) > 0 {
			if outs[0].Msg.Kind != replication.KindVector {
				t.Fatalf("a round started with a %s, want a vector", outs[0].Msg.Kind)
			}
			return outs[0].Msg
		}
	}
	t.Fatal("no round started")
	return replication.Message{}
}

// TestCompactVectorsGoToPeersThatSpeakThem: a node sends a peer compact
// vectors only once the peer's last vector carried its replica set (a
// build that speaks them), and when the peer's word held the same
// replicas. A peer whose vectors come without a set again (it went back
// to an older build) gets whole vectors again.
func TestCompactVectorsGoToPeersThatSpeakThem(t *testing.T) {
	n, s := oneNode(t)
	old := crdt.VersionVector{n.ID: 1}
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: old}); err != nil {
		t.Fatal(err)
	}
	if m := nextVector(t, s); m.Seqs != nil || m.Vector.Compare(n.Vector()) != crdt.Equal || !bytes.Equal(m.Set, replication.SetHash(n.Vector())) {
		t.Fatalf("to a peer that sent no replica set: %+v, want the whole vector with its set", m)
	}

	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: old, Set: replication.SetHash(old)}); err != nil {
		t.Fatal(err)
	}
	m := nextVector(t, s)
	if m.Vector != nil || len(m.Seqs) != 1 || m.Seqs[0] != 3 || !bytes.Equal(m.Set, replication.SetHash(n.Vector())) {
		t.Fatalf("to a peer that speaks compact vectors: %+v, want [3] over the node's set", m)
	}

	other := crdt.VersionVector{n.ID: 1, n.ID + 1: 1}
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: other, Set: replication.SetHash(other)}); err != nil {
		t.Fatal(err)
	}
	if m := nextVector(t, s); m.Seqs != nil {
		t.Fatalf("to a peer that knows other replicas: %+v, want the whole vector", m)
	}

	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: old}); err != nil {
		t.Fatal(err)
	}
	if m := nextVector(t, s); m.Seqs != nil {
		t.Fatalf("to a peer back on an older build: %+v, want the whole vector", m)
	}
}

// TestCompactVectorsAreRead: a compact vector over the receiver's own
// replicas is read as the whole one would be; one over replicas it does
// not know is answered with its whole vector, asking for what it lacks,
// and nothing else.
func TestCompactVectorsAreRead(t *testing.T) {
	n, s := oneNode(t)
	res, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Set: replication.SetHash(n.Vector()), Seqs: []crdt.Seq{1}})
	if err != nil || len(res.Out) != 1 || res.Out[0].Msg.Kind != replication.KindEntries || res.Out[0].Msg.Entries[0].First != 2 {
		t.Fatalf("answered a compact vector over its own replicas with %+v (%v), want the entries after 1", res.Out, err)
	}
	if got := s.Known("p"); got.Compare(crdt.VersionVector{n.ID: 1}) != crdt.Equal {
		t.Fatalf("known %v, want the compact vector read", got)
	}

	unknown := crdt.VersionVector{n.ID + 1: 5}
	res, err = s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Set: replication.SetHash(unknown), Seqs: []crdt.Seq{5}})
	if err != nil || len(res.Out) != 1 || len(res.Apply) != 0 {
		t.Fatalf("answered a compact vector over unknown replicas with %+v (%v)", res, err)
	}
	if m := res.Out[0].Msg; m.Kind != replication.KindVector || !m.Pull || m.Seqs != nil || m.Vector.Compare(n.Vector()) != crdt.Equal {
		t.Fatalf("answered %+v, want the whole vector with pull", m)
	}
	if got := s.Stats().UnknownSets; got != 1 {
		t.Fatalf("UnknownSets = %d, want 1", got)
	}
}

// TestCrossedVectorsDoNotResend: a vector that crossed entries in flight
// (it says the peer lacks them, but was sent before they came) does not
// make them sent again; a new round does, in case they were lost.
func TestCrossedVectorsDoNotResend(t *testing.T) {
	n, s := oneNode(t)
	behind := replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: crdt.VersionVector{n.ID: 1}}
	entries := func() int {
		t.Helper()
		res, err := s.Step("p", behind)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, o := range res.Out {
			k += len(o.Msg.Entries)
		}
		return k
	}
	if k := entries(); k != 1 {
		t.Fatalf("answered the first vector with %d groups, want 1", k)
	}
	if k := entries(); k != 0 {
		t.Fatalf("answered a vector that crossed them with %d groups in flight again", k)
	}
	nextVector(t, s)
	if k := entries(); k != 1 {
		t.Fatalf("in a new round, answered with %d groups, want them sent again", k)
	}
}
