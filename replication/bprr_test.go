package replication_test

import (
	"maps"
	"slices"

	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/snappy"
)

// The baseline of BenchmarkSyncBytes that the target names: the
// delta-based synchronisation of Enes et al. (ICDE 2019, Algorithm 2)
// with both of its optimisations, back-propagation avoidance and
// redundancy removal (BP+RR), run on the plain state-based CRDTs of the
// paper (a grow-only counter as a map from replica to count, a grow-only
// set, a map of last-writer-wins registers) over the same topologies and
// updates as edged's engine. Each round every node sends each neighbour
// the join of the deltas in its buffer that the neighbour has not
// acknowledged and did not send it; a receiver keeps only the part of a
// delta that is new to it (the join decomposition's elements it does not
// hold), buffers that part as from the sender, and acknowledges.

// plainValue is one element of a plain state: a count (the counter), a
// timestamp and value (a register), or nothing (a set's element).
type plainValue struct {
	N  uint64
	ID uint64 // the counter's replica, for the encoding
	TS crdt.Timestamp
	V  string
}

// above reports whether v is strictly newer than w: what survives
// redundancy removal.
func (v plainValue) above(w plainValue) bool { return v.N > w.N || v.TS.Compare(w.TS) > 0 }

// plainState is a plain state or delta: its join decomposition, by key.
type plainState map[string]plainValue

// joinNew joins d into s and returns the part of d that was new to s.
func (s plainState) joinNew(d plainState) plainState {
	novel := plainState{}
	for k, v := range d {
		if old, ok := s[k]; !ok || v.above(old) {
			s[k], novel[k] = v, v
		}
	}
	return novel
}

// canonical sorts map keys, so that equal states encode equally.
var canonical, _ = cbor.CanonicalEncOptions().EncMode()

func encodeSet(s plainState) []byte {
	elems := slices.Sorted(maps.Keys(s))
	b, _ := cbor.Marshal(elems)
	return b
}

func encodeCounter(s plainState) []byte {
	m := make(map[uint64]uint64, len(s))
	for _, v := range s {
		m[v.ID] = v.N
	}
	b, _ := canonical.Marshal(m)
	return b
}

func encodeRegisters(s plainState) []byte {
	type reg struct {
		_       struct{} `cbor:",toarray"`
		Wall    int64
		Logical uint32
		V       string
	}
	m := make(map[string]reg, len(s))
	for k, v := range s {
		m[k] = reg{Wall: v.TS.Wall, Logical: v.TS.Logical, V: v.V}
	}
	b, _ := canonical.Marshal(m)
	return b
}

// bprr simulates the baseline on n nodes.
type bprr struct {
	w     workload
	peers [][]int
	nodes []*bprrNode
	// Raw counts every message as encoded, as the paper does; Snappy as
	// edged sends it (compressed from 64 bytes when that is smaller).
	Raw, Snappy uint64
	Full        uint64 // full-state sync: each node's state to each neighbour, once a round
}

type bprrNode struct {
	id    crdt.ReplicaID
	state plainState
	buf   []buffered
	acked map[int]int // neighbour → the first buffer index it has not acknowledged
}

type buffered struct {
	delta plainState
	from  int // the neighbour it came from; -1: a local update
}

func newBPRR(w workload, ids []crdt.ReplicaID, peers func(i, n int) []int) *bprr {
	b := &bprr{w: w}
	for i, id := range ids {
		b.nodes = append(b.nodes, &bprrNode{id: id, state: plainState{}, acked: map[int]int{}})
		b.peers = append(b.peers, peers(i, len(ids)))
	}
	return b
}

// update makes node i's update of key in round r.
func (b *bprr) update(i, r int, key string) {
	n := b.nodes[i]
	k, v := b.w.bump(n.state, key, n.id, i, r)
	d := plainState{k: v}
	n.state.joinNew(d)
	n.buf = append(n.buf, buffered{delta: d, from: -1})
}

// round counts a full-state sync's bytes for it, then has every node send
// to each neighbour and delivers the deltas and their acknowledgements.
func (b *bprr) round() {
	type msg struct {
		from, to, seq int
		delta         plainState
	}
	var msgs []msg
	for i, n := range b.nodes {
		b.Full += uint64(len(b.w.encode(n.state)) * len(b.peers[i]))
		for _, j := range b.peers[i] {
			d := plainState{}
			for _, e := range n.buf[n.acked[j]:] {
				if e.from != j { // no back-propagation
					for k, v := range e.delta {
						if old, ok := d[k]; !ok || v.above(old) {
							d[k] = v
						}
					}
				}
			}
			if len(d) == 0 {
				n.acked[j] = len(n.buf) // nothing in it for j
				continue
			}
			msgs = append(msgs, msg{from: i, to: j, seq: len(n.buf), delta: d})
		}
	}
	for _, m := range msgs {
		b.count(m.seq, b.w.encode(m.delta))
		to := b.nodes[m.to]
		if novel := to.state.joinNew(m.delta); len(novel) > 0 { // redundancy removal
			to.buf = append(to.buf, buffered{delta: novel, from: m.from})
		}
		b.count(m.seq, nil) // the acknowledgement
		b.nodes[m.from].acked[m.to] = m.seq
	}
}

// count adds a message of seq and delta (nil: an acknowledgement).
func (b *bprr) count(seq int, delta []byte) {
	var enc []byte
	if delta == nil {
		enc, _ = cbor.Marshal(seq)
	} else {
		enc, _ = cbor.Marshal([]any{seq, cbor.RawMessage(delta)})
	}
	b.Raw += uint64(len(enc))
	if z := snappy.Encode(nil, enc); len(enc) >= 64 && len(z) < len(enc) {
		b.Snappy += uint64(len(z))
	} else {
		b.Snappy += uint64(len(enc))
	}
}

// converged reports whether every node holds the same state.
func (b *bprr) converged() bool {
	first := string(b.w.encode(b.nodes[0].state))
	for _, n := range b.nodes[1:] {
		if string(b.w.encode(n.state)) != first {
			return false
		}
	}
	return true
}
