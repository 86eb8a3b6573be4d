package replication_test

import (
	"bytes"
	"errors"
	"fmt"
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
		{"short base hash", replication.Message{Kind: replication.KindVector, BaseHash: set[:4], Seqs: []crdt.Seq{0, 1}}},
		{"relative with a set", replication.Message{Kind: replication.KindVector, BaseHash: set, Set: set, Seqs: []crdt.Seq{0, 1}}},
		{"relative and whole", replication.Message{Kind: replication.KindAck, BaseHash: set, Vector: vv, Seqs: []crdt.Seq{0, 1}}},
		{"relative without increments", replication.Message{Kind: replication.KindAck, BaseHash: set}},
		{"increment too large", replication.Message{Kind: replication.KindAck, BaseHash: set, Seqs: []crdt.Seq{replication.MaxSeqAccepted + 1}}},
		{"relative in a digest", replication.Message{Kind: replication.KindDigest, Hash: make([]byte, 32), BaseHash: set, Seqs: []crdt.Seq{0}}},
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

// TestVectorsGoCompact: a vector to a peer whose last word held the same
// replicas is marked Compact, and EncodeDense sends it as the replica
// set's hash and its sequences; Encode, for a peer of an earlier build,
// sends it whole. A vector to a peer that knows other replicas is not
// marked.
func TestVectorsGoCompact(t *testing.T) {
	n, s := oneNode(t)
	word := func(vv crdt.VersionVector) {
		t.Helper()
		if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: vv}); err != nil {
			t.Fatal(err)
		}
	}
	decode := func(encode func(replication.Message) ([]byte, error), m replication.Message) replication.Message {
		t.Helper()
		b, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		d, err := replication.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	word(crdt.VersionVector{n.ID: 1})
	m := nextVector(t, s)
	if !m.Compact {
		t.Fatalf("to a peer that knows the node's replicas: %+v, want it marked compact", m)
	}
	if d := decode(replication.EncodeDense, m); d.Vector != nil || len(d.Seqs) != 1 || d.Seqs[0] != 3 || !bytes.Equal(d.Set, replication.SetHash(n.Vector())) {
		t.Fatalf("dense: %+v, want [3] over the node's replicas", d)
	}
	if d := decode(replication.Encode, m); d.Seqs != nil || d.Set != nil || d.Vector.Compare(n.Vector()) != crdt.Equal {
		t.Fatalf("whole: %+v, want the whole vector only", d)
	}

	word(crdt.VersionVector{n.ID: 1, n.ID + 1: 1})
	if m := nextVector(t, s); m.Compact {
		t.Fatalf("to a peer that knows other replicas: %+v, want it not marked", m)
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

// TestLostEntriesGoAgainWhileBusy: entries lost on their way are sent
// again although the sender's own rounds do not come (it sheds load, and
// the driver does not tick it): at the second round the peer starts after
// they went. Also when the busy node keeps writing (the driver does not
// push while busy), so that each of the peer's rounds draws a batch of new
// writes: the peer's rounds are counted from the oldest entries in
// flight, not the newest.
func TestLostEntriesGoAgainWhileBusy(t *testing.T) {
	for _, writing := range []bool{false, true} {
		sim := simtest.New(2, 1, simtest.Net{}, replication.Config{RoundTicks: 3})
		sim.SetPeers(0, 1)
		sim.SetPeers(1, 0)
		fill(t, sim, 0, 1, "a", "x")
		fill(t, sim, 1, 1, "b", "x")
		converge(t, sim)

		sim.Partition([]int{0}, []int{1})
		fill(t, sim, 0, 1, "c", "x") // its push is lost
		writer := sim.Nodes[0]
		lost := writer.Vector()[writer.ID]
		sim.Heal()
		sim.SetBusy(0, true)
		for r := 0; sim.Nodes[1].Vector()[writer.ID] < lost; r++ {
			if r == 300 {
				t.Fatalf("writing %v: the lost write never reached the peer while its writer was busy (peer holds %d of %d)",
					writing, sim.Nodes[1].Vector()[writer.ID], writer.Vector()[writer.ID])
			}
			if writing {
				name := fmt.Sprintf("d%04d", r)
				if err := writer.Write(func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
					return m.Update(crdt.Field{Name: name, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
						return v.(*crdt.AWSet).Add(g, "x"), nil
					})
				}); err != nil {
					t.Fatal(err)
				}
			}
			if err := sim.Round(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLostOfferGoesAgainWhileBusy: a peer that the log cannot serve is
// offered a state transfer, and the offer is lost (the peer restarts).
// The server sheds load, so its own rounds do not come: the peer's second
// round makes the offer again.
func TestLostOfferGoesAgainWhileBusy(t *testing.T) {
	sim := simtest.New(2, 1, simtest.Net{}, replication.Config{RoundTicks: 3})
	fill(t, sim, 0, 1, "a", "x")
	converge(t, sim)
	for range 6 { // node 0's own rounds reset peer.offered
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
	sim.Partition([]int{0}, []int{1})
	fill(t, sim, 0, 1, "c", "x") // its push is lost
	sim.Nodes[0].Truncate()      // and the log no longer holds it
	sim.Heal()
	sim.SetBusy(0, true)
	offers := sim.ByKind[replication.KindOffer]
	for i := 0; sim.ByKind[replication.KindOffer] == offers; i++ {
		if i == 50 {
			t.Fatalf("no offer: %+v / %+v", sim.Nodes[0].Sync.Stats(), sim.Nodes[1].Sync.Stats())
		}
		more, err := sim.Deliver()
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			sim.Tick()
		}
	}
	sim.Crash(1) // the offer in flight is lost
	sim.Restart(1)
	for r := 0; !sim.Converged(); r++ {
		if r == 100 {
			t.Fatalf("never offered again while the server was busy (offers sent: %d bytes)", sim.ByKind[replication.KindOffer]-offers)
		}
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIndexedOriginsAreRead: entries that name their origins by index
// into the receiver's replicas are applied as if named by ID; over
// replicas the receiver does not know, they are answered with its whole
// vector, asking for what it lacks, and not applied.
func TestIndexedOriginsAreRead(t *testing.T) {
	sim := simtest.New(3, 1, simtest.Net{Ordered: true}, replication.Config{RoundTicks: 2})
	fill(t, sim, 0, 2, "a", "x")
	fill(t, sim, 1, 2, "b", "y")
	converge(t, sim)
	sim.Partition([]int{0, 1}, []int{2})
	fill(t, sim, 0, 2, "c", "x")
	fill(t, sim, 1, 2, "d", "y")
	for range 20 {
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
	sender, receiver := sim.Nodes[0], sim.Nodes[2]
	res, err := sender.Sync.Step(receiver.Peer, replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: receiver.Vector()})
	if err != nil || len(res.Out) != 1 || len(res.Out[0].Msg.Entries) != 2 || res.Out[0].Msg.Origins == nil {
		t.Fatalf("answered the receiver's vector with %+v (%v), want entries of two origins, indexable", res.Out, err)
	}
	b, err := replication.EncodeIndexed(res.Out[0].Msg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := replication.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Set == nil || m.Entries != nil {
		t.Fatalf("decoded %+v, want entries by index, for Step to read", m)
	}
	got, err := receiver.Sync.Step(sender.Peer, m)
	if err != nil || len(got.Apply) != 2 || got.Apply[0].Origin == got.Apply[1].Origin {
		t.Fatalf("read %+v (%v), want the two origins' entries to apply", got, err)
	}
	for _, e := range got.Apply {
		if e.Origin != sender.ID && e.Origin != sim.Nodes[1].ID || e.First != 3 {
			t.Errorf("entry %s:%d-%d, want the third and fourth writes of node 0 or 1", e.Origin, e.First, e.Last)
		}
	}

	// Over replicas the receiver does not know (a third origin it has
	// never heard of):
	other := crdt.VersionVector{sender.ID: 4, sim.Nodes[1].ID: 4, 0x1234567890ABCDEF: 1}
	res.Out[0].Msg.Origins = other
	if b, err = replication.EncodeIndexed(res.Out[0].Msg); err != nil {
		t.Fatal(err)
	}
	if m, err = replication.Decode(b); err != nil {
		t.Fatal(err)
	}
	got, err = receiver.Sync.Step(sender.Peer, m)
	if err != nil || len(got.Apply) != 0 || len(got.Out) != 1 {
		t.Fatalf("read %+v (%v), want nothing applied and one answer", got, err)
	}
	if a := got.Out[0].Msg; a.Kind != replication.KindVector || !a.Pull || a.Vector.Compare(receiver.Vector()) != crdt.Equal {
		t.Fatalf("answered %+v, want the whole vector with pull", a)
	}
	if n := receiver.Sync.Stats().UnknownSets; n != 1 {
		t.Fatalf("UnknownSets = %d, want 1", n)
	}
}

// TestRelativeVectors: on /edged/sync/4 a vector goes as its increments
// over the one last sent to the same peer, which the receiver adds back to
// the one it heard with that hash. One over a base it did not hear is
// answered with its whole vector, asking for what it lacks; hearing a
// whole vector, a node sends its next one without a base.
func TestRelativeVectors(t *testing.T) {
	n, s := oneNode(t)
	v1 := crdt.VersionVector{n.ID: 1, 0x1234567890ABCDEF: 1000}
	v2 := crdt.VersionVector{n.ID: 2, 0x1234567890ABCDEF: 1003}
	b, err := replication.EncodeIndexed(replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: v2, Base: v1})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := replication.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Vector != nil || rel.Set != nil || len(rel.Seqs) != 2 || rel.Seqs[0]+rel.Seqs[1] != 4 {
		t.Fatalf("encoded %+v, want the increments 1 and 3 over the base", rel)
	}
	// Heard v1 whole, it reads v2 relative to it.
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: v1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step("p", rel); err != nil {
		t.Fatal(err)
	}
	if got := s.Known("p"); got.Compare(v2) != crdt.Equal {
		t.Fatalf("known %v, want %v", got, v2)
	}
	// The node's own vectors to p go relative to the one before.
	first := nextVector(t, s)
	if first.Base != nil {
		t.Fatalf("first vector to p has base %v; it sent p no vector before", first.Base)
	}
	// p speaks (compact: a whole vector would drop the base), and the
	// node's next round starts with a vector again.
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindAck, Set: replication.SetHash(v2), Seqs: []crdt.Seq{1003, 2}}); err != nil { // in replica order
		t.Fatal(err)
	}
	if second := nextVector(t, s); second.Base.Compare(first.Vector) != crdt.Equal {
		t.Fatalf("second vector to p has base %v, want the first, %v", second.Base, first.Vector)
	}

	// A base it never heard.
	b, err = replication.EncodeIndexed(replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: v2, Base: crdt.VersionVector{n.ID: 1, 0x1234567890ABCDEF: 999}})
	if err != nil {
		t.Fatal(err)
	}
	if rel, err = replication.Decode(b); err != nil {
		t.Fatal(err)
	}
	res, err := s.Step("p", rel)
	if err != nil || len(res.Out) != 1 {
		t.Fatalf("answered a vector over an unknown base with %+v (%v)", res, err)
	}
	if m := res.Out[0].Msg; m.Kind != replication.KindVector || !m.Pull || m.Base != nil || m.Compact || m.Vector.Compare(n.Vector()) != crdt.Equal {
		t.Fatalf("answered %+v, want the whole vector with pull", m)
	}
	if got := s.Stats().UnknownSets; got != 1 {
		t.Fatalf("UnknownSets = %d, want 1", got)
	}
	// Told a whole vector (p could not read a relative one), it sends
	// the next without a base.
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: v2}); err != nil {
		t.Fatal(err)
	}
	if m := nextVector(t, s); m.Base != nil {
		t.Fatalf("after a whole vector, the next has base %v, want none", m.Base)
	}

	// Increments that take a sequence past the largest accepted.
	high := crdt.VersionVector{n.ID: 2, 0x1234567890ABCDEF: replication.MaxSeqAccepted - 1}
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: high}); err != nil {
		t.Fatal(err)
	}
	over := replication.Message{Version: replication.Version, Kind: replication.KindAck, Vector: crdt.VersionVector{n.ID: 2, 0x1234567890ABCDEF: replication.MaxSeqAccepted - 1}, Base: high}
	if b, err = replication.EncodeIndexed(over); err != nil {
		t.Fatal(err)
	}
	if rel, err = replication.Decode(b); err != nil {
		t.Fatal(err)
	}
	rel.Seqs[0] = 2 // 0x1234567890ABCDEF comes first in replica order
	if _, err := s.Step("p", rel); !errors.Is(err, replication.ErrInvalid) {
		t.Fatalf("a sum past the largest sequence: %v, want ErrInvalid", err)
	}
}
