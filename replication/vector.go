package replication

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/edged-dev/edged/crdt"
)

// Compact vectors. A vector names each replica by its 64-bit ID, nine
// bytes of CBOR against two or three for its sequence, and a busy link
// sends two vectors a round: for a counter, whose state is itself a
// vector, that is as much as sending the state. Two peers of a fleet
// mostly know the same replicas, so the engine marks a vector Compact when
// the receiver's last word held the same replicas, and EncodeDense (for a
// peer whose stream speaks it) sends it as its replica set's hash and its
// sequences in ID order. The receiver rebuilds it from a set it knows with
// the same hash (its own vector's, or the sender's last word's); when it
// knows none, it answers with its whole vector, and the sender, whose word
// of it then names other replicas, sends whole vectors until they match
// again.

// setHashBytes is the length of a replica set's hash.
const setHashBytes = 8

// SetHash returns the hash of the replicas a vector holds dots of: the
// first 8 bytes of SHA-256 over their IDs, sorted, 8 bytes big-endian
// each.
func SetHash(vv crdt.VersionVector) []byte {
	h := sha256.New()
	var b [8]byte
	for _, r := range setOf(vv) {
		binary.BigEndian.PutUint64(b[:], uint64(r))
		h.Write(b[:])
	}
	return h.Sum(nil)[:setHashBytes]
}

// setOf returns the replicas vv holds dots of, sorted.
func setOf(vv crdt.VersionVector) []crdt.ReplicaID {
	rs := make([]crdt.ReplicaID, 0, len(vv))
	for r, s := range vv {
		if s > 0 {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	return rs
}

// sameSet reports whether a and b hold dots of the same replicas.
func sameSet(a, b crdt.VersionVector) bool {
	n := 0
	for r, s := range a {
		if s == 0 {
			continue
		}
		if b[r] == 0 {
			return false
		}
		n++
	}
	return n == len(setOf(b))
}

// vectorMsg returns a message of kind carrying vv to pr, Compact when
// pr's last word held the same replicas, with the vector last sent to pr
// as its Base; vv is then the one last sent.
func vectorMsg(pr *peer, kind Kind, vv crdt.VersionVector, pull bool) Message {
	m := Message{Version: Version, Kind: kind, Vector: vv, Pull: pull, Compact: len(setOf(vv)) > 0 && sameSet(vv, pr.known), Base: pr.told}
	pr.told = vv.Clone()
	return m
}

// wholeVector returns a Vector message carrying vv whole to pr (nil: a
// peer no longer known), as a node answers what it could not read: vv is
// then the one last sent to pr.
func wholeVector(pr *peer, vv crdt.VersionVector, pull bool) Message {
	if pr != nil {
		pr.told = vv.Clone()
	}
	return Message{Version: Version, Kind: KindVector, Vector: vv, Pull: pull}
}

// seqsOf returns the sequences of vv's replicas, in ID order.
func seqsOf(vv crdt.VersionVector) []crdt.Seq {
	rs := setOf(vv)
	seqs := make([]crdt.Seq, len(rs))
	for i, r := range rs {
		seqs[i] = vv[r]
	}
	return seqs
}

// expand returns the vector a compact vector stands for: its sequences
// over the replicas of the first of sets that has its hash. It reports
// false when none has.
func expand(m *Message, sets ...crdt.VersionVector) (crdt.VersionVector, bool) {
	rs, ok := replicasOf(m.Set, sets...)
	if !ok || len(rs) != len(m.Seqs) {
		return nil, false
	}
	vv := make(crdt.VersionVector, len(rs))
	for i, r := range rs {
		vv[r] = m.Seqs[i]
	}
	return vv, true
}

// replicasOf returns the replicas, sorted, of the first of sets whose
// replica set has the given hash. It reports false when none has.
func replicasOf(hash []byte, sets ...crdt.VersionVector) ([]crdt.ReplicaID, bool) {
	for _, set := range sets {
		if string(SetHash(set)) == string(hash) {
			return setOf(set), true
		}
	}
	return nil, false
}

// validateSet checks a message's replica set and compact or relative
// vector, or the set its entries' origins are indexed in.
func (m *Message) validateSet() error {
	if m.BaseHash != nil {
		return m.validateRelative()
	}
	if m.indexed != nil {
		if m.Kind != KindEntries || len(m.Set) != setHashBytes || m.Seqs != nil {
			return fmt.Errorf("%w: indexed origins in a %s message with a replica set hash of %d bytes", ErrInvalid, m.Kind, len(m.Set))
		}
		return nil
	}
	if m.Set == nil && m.Seqs == nil {
		return nil
	}
	if m.Kind != KindVector && m.Kind != KindAck {
		return fmt.Errorf("%w: a replica set in a %s message", ErrInvalid, m.Kind)
	}
	if len(m.Set) != setHashBytes {
		return fmt.Errorf("%w: replica set hash of %d bytes, want %d", ErrInvalid, len(m.Set), setHashBytes)
	}
	if m.Seqs == nil {
		if string(SetHash(m.Vector)) != string(m.Set) {
			return fmt.Errorf("%w: the replica set hash does not match the vector", ErrInvalid)
		}
		return nil
	}
	if m.Vector != nil {
		return fmt.Errorf("%w: both a vector and a compact vector", ErrInvalid)
	}
	if len(m.Seqs) > MaxReplicas {
		return fmt.Errorf("%w: compact vector of %d replicas, limit %d", ErrInvalid, len(m.Seqs), MaxReplicas)
	}
	for i, s := range m.Seqs {
		if s == 0 || s > MaxSeqAccepted {
			return fmt.Errorf("%w: compact vector entry %d: sequence %d", ErrInvalid, i, s)
		}
	}
	return nil
}

// Relative vectors. A compact vector still sends each replica's sequence,
// up to five bytes and more over a node's life, though between two rounds
// of a link they grow by a few. On /edged/sync/4 a vector may go as the
// increments over the one its sender last sent the same peer (its base),
// with the base's hash: one byte a replica on a busy link. The receiver
// keeps the last vectors it heard from each peer (heardVectors) and adds
// the increments to the one with the hash; when it has none (a vector
// lost, or either side restarted), it answers with its whole vector, and
// the sender, hearing a whole vector, sends its next one without a base.

// heardVectors is how many of a peer's last vectors a node keeps as bases.
const heardVectors = 2

// baseHash returns the hash that names a base: the first 8 bytes of its
// Digest.
func baseHash(vv crdt.VersionVector) []byte { return Digest(vv)[:setHashBytes] }

// relativeTo reports whether vv can go relative to base: over the same
// replicas, none of them behind.
func relativeTo(vv, base crdt.VersionVector) bool {
	if len(setOf(base)) == 0 || !sameSet(vv, base) {
		return false
	}
	for r, s := range base {
		if vv[r] < s {
			return false
		}
	}
	return true
}

// increments returns vv's sequences less base's, in replica order.
func increments(vv, base crdt.VersionVector) []crdt.Seq {
	rs := setOf(vv)
	incs := make([]crdt.Seq, len(rs))
	for i, r := range rs {
		incs[i] = vv[r] - base[r]
	}
	return incs
}

// base is a vector heard from a peer, kept as a base its next relative
// vectors may name: its replicas in order, and its hash.
type base struct {
	vv   crdt.VersionVector
	rs   []crdt.ReplicaID
	hash []byte
}

func newBase(vv crdt.VersionVector) base {
	return base{vv: vv.Clone(), rs: setOf(vv), hash: baseHash(vv)}
}

// addTo returns the vector a relative vector stands for: its increments
// over the one of bases with its hash. It reports false when none has,
// and an error wrapping ErrInvalid when a sum passes MaxSeqAccepted.
func addTo(m *Message, bases []base) (crdt.VersionVector, bool, error) {
	for _, b := range bases {
		if len(b.rs) != len(m.Seqs) || string(b.hash) != string(m.BaseHash) {
			continue
		}
		vv := make(crdt.VersionVector, len(b.rs))
		for i, r := range b.rs {
			if m.Seqs[i] > MaxSeqAccepted-b.vv[r] {
				return nil, true, fmt.Errorf("%w: relative vector entry %d: %d over %s:%d passes the largest sequence", ErrInvalid, i, m.Seqs[i], r, b.vv[r])
			}
			vv[r] = b.vv[r] + m.Seqs[i]
		}
		return vv, true, nil
	}
	return nil, false, nil
}

// validateRelative checks a relative vector.
func (m *Message) validateRelative() error {
	switch {
	case m.Kind != KindVector && m.Kind != KindAck:
		return fmt.Errorf("%w: a relative vector in a %s message", ErrInvalid, m.Kind)
	case len(m.BaseHash) != setHashBytes:
		return fmt.Errorf("%w: base hash of %d bytes, want %d", ErrInvalid, len(m.BaseHash), setHashBytes)
	case m.Set != nil || m.Vector != nil || m.Seqs == nil:
		return fmt.Errorf("%w: a relative vector with a replica set or a whole vector, or without increments", ErrInvalid)
	case len(m.Seqs) > MaxReplicas:
		return fmt.Errorf("%w: relative vector of %d replicas, limit %d", ErrInvalid, len(m.Seqs), MaxReplicas)
	}
	for i, s := range m.Seqs {
		if s > MaxSeqAccepted {
			return fmt.Errorf("%w: relative vector entry %d: increment %d", ErrInvalid, i, s)
		}
	}
	return nil
}
