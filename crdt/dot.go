package crdt

import (
	"cmp"
	"fmt"
)

// ReplicaID identifies one replica (one node). edged derives it from the node's
// libp2p public key; zero is never a valid replica.
type ReplicaID uint64

// String formats the ID as 16 hex digits, the form logs and the CLI use.
func (r ReplicaID) String() string { return fmt.Sprintf("%016x", uint64(r)) }

// Seq counts the events of one replica. A replica's first event is 1; zero
// means "no event".
type Seq uint64

// Dot names one event: the Seq-th event created by Replica. Every dot is
// created exactly once, by its own replica, and tags exactly one entry of one
// value; that uniqueness is what lets a causal context stand in for
// tombstones.
type Dot struct {
	Replica ReplicaID
	Seq     Seq
}

// String formats the dot as replica:seq.
func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Replica, d.Seq) }

// Compare orders dots by replica, then sequence: -1, 0 or +1.
func (d Dot) Compare(o Dot) int {
	if c := cmp.Compare(d.Replica, o.Replica); c != 0 {
		return c
	}
	return cmp.Compare(d.Seq, o.Seq)
}

// MaxSeq is the largest sequence number accepted from outside. No replica
// makes 2^62 events; refusing larger ones keeps a hostile peer from pushing
// a replica's counter to the end of its range (where DotGen would wrap).
const MaxSeq Seq = 1 << 62

// valid reports whether d can name a real event.
func (d Dot) valid() bool { return d.Replica != 0 && d.Seq != 0 && d.Seq <= MaxSeq }

// DotGen hands out the fresh dots of one replica for one operation. Create it
// from the replica's current causal context with NewDotGen, so the dots it
// returns follow every dot the context has seen. It is a value in the pure
// core: it does no I/O and is not safe for concurrent use.
type DotGen struct {
	replica ReplicaID
	last    Seq
}

// NewDotGen returns a generator whose first dot follows the largest dot of
// replica r that ctx contains.
func NewDotGen(ctx *Context, r ReplicaID) *DotGen {
	return &DotGen{replica: r, last: ctx.Max(r)}
}

// Replica returns the replica the generator creates dots for.
func (g *DotGen) Replica() ReplicaID { return g.replica }

// Next returns a new dot.
func (g *DotGen) Next() Dot {
	g.last++
	return Dot{Replica: g.replica, Seq: g.last}
}
