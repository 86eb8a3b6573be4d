// Package replication is edged's anti-entropy protocol engine: it keeps the
// delta logs of a site's peers in step, so that every peer converges to the
// same state whatever the network loses, duplicates or reorders.
//
// The engine is pure: no goroutines, sockets, clocks or storage inside. A
// driver feeds it ticks (Tick) and received messages (Step) and does what
// it returns: messages to send (Out) and log entries to apply through the
// node's write path, after which it reports the commit (Committed). The
// engine reads the node's log through the Log interface, which the driver
// implements over the store (or, in tests, in memory). This is what lets
// package tests run any number of nodes deterministically, from a seed.
//
// # Protocol
//
// A peer holds every write of an origin up to its vector's entry for it,
// applied from the log or joined by state transfer, so what a peer holds
// is a version vector, and what it lacks from another is, per origin, one
// interval. (A log that caught up by state transfer has a gap where the
// transfer's writes are: relaying it stops there.) A round between A and
// B:
//
//	A → B  Digest{hash of A's vector}            (~40 bytes)
//	B → A  Vector{B's vector, pull}              (only when the hashes differ)
//	A → B  Entries{what B lacks, in order}       (chunked, byte-limited)
//	A → B  Vector{A's vector}                    (when B asked to pull)
//	B → A  Entries{what A lacks}
//	X → Y  Ack{X's vector}                       (after X committed entries)
//
// When A holds something B may lack, as far as A knows, the digests would
// differ: A starts with Vector{A's vector, pull} instead, and B answers
// with entries and, when it lacks something A holds, its own vector.
//
// An Ack (or a Vector) tells the sender what the receiver holds; it sends
// the next chunk of what is still missing at once, so a long catch-up
// streams at the pace of the receiver's commits. Entries are relayed: a
// peer serves every origin it holds, not only its own.
//
// The two optimisations of Enes et al. (ICDE 2019) fall out of the design.
// Back-propagation: what a peer sent us counts as known to it, so it is
// never sent back. Redundancy removal: entries whose dots a node already
// holds are not applied, hence not logged, hence never forwarded.
//
// After local writes, Push sends the new entries eagerly to a few peers
// (Config.Fanout), chosen at random from the engine's seeded source.
//
// # Validation
//
// Every message is checked before it changes anything: its version, the
// size of its vectors and entry lists, and each entry's origin, range and
// place in its origin's sequence. A bad message is dropped and counted in
// Stats; it never blocks sync with other peers.
package replication
