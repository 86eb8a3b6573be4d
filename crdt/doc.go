// Package crdt is edged's kernel: delta-state conflict-free replicated data
// types (Almeida, Shoker and Baquero, "Delta State Replicated Data Types",
// 2018), their causality primitives and their deterministic CBOR encoding.
//
// # Model
//
// Every change is a delta: a small, immutable fact that is joined into
// state. Join is commutative, associative and idempotent, so replicas that
// receive the same deltas in any order, any number of times, converge.
//
// Each event is named by a Dot (replica, sequence). A Context (causal
// context) is the set of dots a replica has seen, kept as a version vector
// of contiguous prefixes plus a cloud of out-of-order dots. Values are dot
// stores (DotSet, DotFun, DotMap) interpreted under a context: an entry
// whose dot the context contains but the store does not was removed. So
// removals need no tombstones: the context remembers, compactly, what has
// been seen.
//
// The types are causal CRDTs: EWFlag, GCounter, PNCounter, LWWRegister,
// MVRegister, AWSet, ReadingSet and ORMap, whose fields hold any of them.
// Because they are all dot stores, any number of them can share one
// context: a node's whole key space is one ORMap with one Context, which is
// what edged's store keeps (one record per top-level name, one context for
// the store).
//
// # Operations
//
// A delta-mutator is a method that reads the current value and returns a
// delta (a Causal: a value fragment plus the dots it covers); it changes
// nothing. The caller joins the delta into its state and ships it:
//
//	var x crdt.Causal // a replica's state of one set
//	set := new(crdt.AWSet)
//	d := set.Add(crdt.NewDotGen(&x.Ctx, me), "red")
//	if err := x.Apply(d); err != nil { … } // local state now has "red"
//	send(d)                                 // peers Apply it too
//
// Three merges exist. Join merges whole states and is the lattice join.
// Apply merges a delta into a state touching only the entries the delta
// lists (cost proportional to the delta). JoinDelta groups deltas, keeping
// removal entries listed. Deltas converge in any order; a replica shows a
// state that a causal history explains when deltas arrive in causal order,
// which edged's replication guarantees per origin.
//
// # Conflicting types
//
// A field of an ORMap is named by its name and its type, so concurrent
// creation of one name with different types keeps both values, converging
// separately. Readers see the value with the highest Type (ORMap > ReadingSet
// > AWSet > MVRegister > LWWRegister > PNCounter > GCounter > EWFlag); every
// replica makes the same choice with no coordination, and removing the name
// removes all its types.
//
// # Time
//
// Causality is ordered by dots and contexts only. Wall time is data: the LWW
// register orders concurrent writes by a hybrid logical clock (HLC) that
// takes its physical clock as an injected function and refuses remote
// timestamps beyond a maximum skew.
//
// # Rules
//
// The package is a pure core: no goroutines, I/O, clocks or globals with
// state. Values, contexts and clocks are not safe for concurrent use; their
// owner serialises access. Merges never retain the other side's maps; byte
// slices (register values) are shared and must be treated as immutable.
// Decoding (UnmarshalCBOR) validates everything and enforces size and
// nesting limits, returning errors that wrap ErrDecode or ErrVersion.
package crdt
