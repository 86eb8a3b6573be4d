package replication

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/edged-dev/edged/crdt"
)

// PeerID names a peer (its libp2p peer ID, as a string).
type PeerID string

// Log is the node's delta log as the engine reads it. The driver
// implements it over the store; calls are synchronous.
type Log interface {
	// Vector returns the version vector of the entries the node holds:
	// per origin, the last of its gap-free prefix.
	Vector() crdt.VersionVector
	// Entries returns origin's entries after seq after, in order: as many
	// as fit in maxBytes of deltas, and at least one if there is one. It
	// also returns their encoded size.
	Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]Entry, int, error)
	// Context returns the node's causal context.
	Context() crdt.Context
	// States returns the states of the keys named after after and up to
	// upto (to the end when upto is ""), in name order: as many as fit in
	// maxBytes of records (at least one; all when maxBytes is 0), and
	// whether they are all there are in that range.
	States(after, upto string, maxBytes int) (states []State, complete bool, err error)
}

// Config tunes the engine.
type Config struct {
	// RoundTicks is how many ticks apart rounds with one peer start; each
	// peer's rounds start at a random offset, and each interval is
	// jittered by ±25%. Zero means 4.
	RoundTicks int
	// Fanout is how many peers Push sends new entries to. Zero means 3.
	Fanout int
	// MaxBatchBytes bounds the deltas of one Entries message. Zero means
	// 256 KiB.
	MaxBatchBytes int
	// Seed seeds the engine's random choices (round offsets, jitter, push
	// targets), so runs are reproducible.
	Seed uint64
	// Self is this node's replica ID, to notice peers that hold more of
	// its own writes than it does (see Stats.OwnAhead). Zero: not checked.
	Self crdt.ReplicaID
}

func (c Config) withDefaults() Config {
	if c.RoundTicks <= 0 {
		c.RoundTicks = 4
	}
	if c.Fanout <= 0 {
		c.Fanout = 3
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 256 << 10
	}
	return c
}

// Out is a message to send.
type Out struct {
	To  PeerID
	Msg Message
}

// Stats count what the engine did. Bytes are those of deltas in Entries
// messages; the driver counts wire bytes.
type Stats struct {
	Rounds, Digests, Vectors, EntriesSent, EntriesReceived, Acks uint64
	// Redundant counts received entries the node already held.
	Redundant uint64
	// Invalid counts dropped messages and entries.
	Invalid uint64
	// UnknownSets counts compact vectors and indexed entries over a
	// replica set this node did not know, and relative vectors over a
	// base it did not hear (each answered with its whole vector).
	UnknownSets uint64
	// OwnAhead counts vectors from peers that hold more of this node's
	// own writes than it does: it was restored from a backup with its old
	// identity, and its next writes reuse dots that peers already hold
	// (and drop). It needs a new identity.
	OwnAhead uint64
	// Unservable counts sends skipped because the log no longer holds
	// what a peer lacks (collected, or evicted by the data budget): that
	// peer is offered a state transfer.
	Unservable uint64
	DeltaBytes uint64
	// State transfer: Offers sent, and received but declined (the node
	// held all the server did); transfers started as a client, done and
	// abandoned (a silent server: the driver then deletes the stored
	// progress, which must not be resumed); ranges skipped as equal;
	// states sent and received; entries deferred (not applied) while a
	// transfer ran.
	Offers, OffersDeclined, Transfers, TransfersDone, TransfersAbandoned uint64
	RangesSkipped, StatesSent, StatesReceived, Deferred                  uint64
}

// peer is what the engine knows of one peer.
type peer struct {
	// known is what the peer holds, as far as its own word (Vector, Ack)
	// and what it sent us tell.
	known crdt.VersionVector
	// sent is how far we have sent each origin to it this round:
	// entries in flight, not to be sent again until our next round, or
	// the peer's second (see rounds).
	sent      crdt.VersionVector
	nextRound uint64
	// ackWanted: its last Entries said more would follow an Ack.
	ackWanted bool
	// worded: it has said what it holds since AddPeer (a Vector, an Ack,
	// or a Digest equal to ours), so known is its word, not a guess.
	worded bool
	// offered: it was offered a state transfer this round.
	offered bool
	// unanswered: a round was started with our vector since its last
	// word, and it said nothing: our word of it may be stale (it had our
	// news from elsewhere), and rounds start with a digest until it
	// speaks, so that a stale word costs one vector, not one a round.
	unanswered bool
	// emptyOffers counts the offers made because it held nothing.
	emptyOffers int
	// told is the last vector sent to it: the base of the next
	// (vector.go). Nil: the next goes without a base.
	told crdt.VersionVector
	// heard holds its last vectors (at most heardVectors, the newest
	// last): the bases its relative vectors may name.
	heard []base
	// rounds counts the rounds it started (a digest, or a vector with
	// pull) since the oldest entries in flight to it went: the second was
	// sent well after they came, or were lost (see the Vector case of
	// Step). An offer made is forgotten then too.
	rounds int
}

// emptyOffers is how many times a peer that holds nothing is offered a
// state transfer before it is sent the log instead.
const emptyOffers = 2

// Sync is the protocol engine of one node. It is not safe for concurrent
// use: one driver goroutine owns it.
type Sync struct {
	cfg   Config
	log   Log
	rng   *rand.Rand
	peers map[PeerID]*peer
	tick  uint64
	stats Stats
	xfer  *transfer // the state transfer this node is the client of
}

// New returns an engine over log.
func New(log Log, cfg Config) *Sync {
	cfg = cfg.withDefaults()
	return &Sync{cfg: cfg, log: log, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), peers: map[PeerID]*peer{}}
}

// Stats returns the counters.
func (s *Sync) Stats() Stats { return s.stats }

// AddPeer starts syncing with p; its first round comes within RoundTicks.
// Adding a known peer changes nothing.
func (s *Sync) AddPeer(p PeerID) {
	if _, ok := s.peers[p]; ok {
		return
	}
	s.peers[p] = &peer{known: crdt.VersionVector{}, sent: crdt.VersionVector{}, nextRound: s.tick + 1 + s.rng.Uint64N(uint64(s.cfg.RoundTicks))}
}

// RemovePeer stops syncing with p.
func (s *Sync) RemovePeer(p PeerID) { delete(s.peers, p) }

// Peers returns the peers, sorted.
func (s *Sync) Peers() []PeerID { return slices.Sorted(maps.Keys(s.peers)) }

// Vector returns what this node holds, from its log.
func (s *Sync) Vector() crdt.VersionVector { return s.log.Vector() }

// Known returns what the engine knows p holds: the acknowledged vector
// that feeds the store's GC watermark for p. It is nil for an unknown
// peer, and for one that has not said what it holds since AddPeer (after
// a restart the engine knows nothing of its peers, and the last watermark
// stands).
func (s *Sync) Known(p PeerID) crdt.VersionVector {
	if pr := s.peers[p]; pr != nil && pr.worded {
		return pr.known.Clone()
	}
	return nil
}

// Tick advances the engine's clock by one tick and starts the rounds that
// are due. A round starts with a Digest, or with the node's Vector (with
// Pull) when the node holds something the peer may lack, as far as the
// node knows: the digests would differ, and the peer would answer with
// its vector; the node's own comes first instead, and the digest is
// saved. Not while a transfer runs, nor while a vector that started a
// round is unanswered (see peer.unanswered).
func (s *Sync) Tick() []Out {
	s.tick++
	outs := s.tickTransfer()
	var mine crdt.VersionVector
	var digest []byte
	for _, p := range s.Peers() {
		pr := s.peers[p]
		if pr.nextRound > s.tick {
			continue
		}
		if mine == nil {
			mine = s.log.Vector()
		}
		// In-flight state is forgotten each round, so a lost message is
		// resent by the next round at the latest.
		pr.sent = crdt.VersionVector{}
		pr.offered = false
		s.schedule(pr)
		s.stats.Rounds++
		// Not while a transfer runs: the peer would send entries, which
		// this node does not take then (see transfer.go).
		if s.xfer == nil && !pr.unanswered && aheadOf(mine, pr.known) {
			pr.unanswered = true
			s.stats.Vectors++
			outs = append(outs, Out{To: p, Msg: vectorMsg(pr, KindVector, mine, true)})
			continue
		}
		if digest == nil {
			digest = Digest(mine)
		}
		s.stats.Digests++
		outs = append(outs, Out{To: p, Msg: Message{Version: Version, Kind: KindDigest, Hash: digest}})
	}
	return outs
}

// aheadOf reports whether a holds something b lacks.
func aheadOf(a, b crdt.VersionVector) bool {
	for o, seq := range a {
		if seq > b[o] {
			return true
		}
	}
	return false
}

// schedule sets a peer's next round one interval from now, ±25%.
func (s *Sync) schedule(pr *peer) {
	r := uint64(s.cfg.RoundTicks)
	pr.nextRound = s.tick + r - r/4 + s.rng.Uint64N(r/2+1)
}

// Push sends the entries that some peers lack to Fanout random peers,
// after local writes: eager propagation between rounds. Only peers that
// have said what they hold are pushed to: to one that has not (this node
// just restarted, say) everything would look missing. Its round comes
// soon.
func (s *Sync) Push() ([]Out, error) {
	var ps []PeerID
	for _, p := range s.Peers() {
		if s.peers[p].worded {
			ps = append(ps, p)
		}
	}
	s.rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	var outs []Out
	mine := s.log.Vector()
	for _, p := range ps[:min(len(ps), s.cfg.Fanout)] {
		o, err := s.missing(p, mine)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

// Result is what Step asks the driver to do.
type Result struct {
	// Out are the messages to send.
	Out []Out
	// Apply are log entries to apply durably, in order; then call
	// Committed.
	Apply []Entry
	// Page is a range of state to join durably; then call PageCommitted.
	Page *Page
}

// Step handles a message from a peer. An invalid message is dropped and
// counted, with an error wrapping ErrInvalid.
func (s *Sync) Step(from PeerID, m Message) (Result, error) {
	pr := s.peers[from]
	if pr == nil {
		s.stats.Invalid++
		return Result{}, fmt.Errorf("%w: from unknown peer %q", ErrInvalid, from)
	}
	if err := m.validate(); err != nil {
		s.stats.Invalid++
		return Result{}, err
	}
	mine := s.log.Vector()
	// While a transfer runs the node takes no entries (see transfer.go),
	// so it does not ask for them either.
	paused := s.xfer != nil
	if m.Kind == KindVector || m.Kind == KindAck {
		switch {
		case m.BaseHash != nil:
			vv, ok, err := addTo(&m, pr.heard)
			if err != nil {
				s.stats.Invalid++
				return Result{}, err
			}
			if !ok {
				// Its base is not one this node heard (lost, or either
				// side restarted): it is told this node's vector, whole,
				// and sends its next without a base.
				s.stats.UnknownSets++
				s.stats.Vectors++
				return Result{Out: []Out{{To: from, Msg: wholeVector(pr, mine, !paused)}}}, nil
			}
			m.Vector = vv
		case m.Seqs != nil:
			vv, ok := expand(&m, mine, pr.known)
			if !ok {
				// Its replicas are not the ones this node knows: it is
				// told this node's, whole, and answers in kind (asked for
				// what this node lacks, but not while a transfer runs).
				s.stats.UnknownSets++
				s.stats.Vectors++
				return Result{Out: []Out{{To: from, Msg: wholeVector(pr, mine, !paused)}}}, nil
			}
			m.Vector = vv
		default:
			// A whole vector: the peer may not hold the base ours would
			// name (it answers a relative vector it cannot read so).
			pr.told = nil
		}
		pr.heard = append(pr.heard[max(0, len(pr.heard)+1-heardVectors):], newBase(m.Vector))
	}
	if m.indexed != nil {
		if paused {
			s.stats.Deferred += uint64(len(m.indexed))
			return Result{}, nil
		}
		ids, ok := replicasOf(m.Set, mine, pr.known)
		if !ok {
			// As for a compact vector over replicas this node does not
			// know: the sender learns this node's, and names origins by
			// ID until their replicas match again. The entries go again
			// once they are no longer in flight (see the Vector case).
			s.stats.UnknownSets++
			s.stats.Vectors++
			return Result{Out: []Out{{To: from, Msg: wholeVector(pr, mine, true)}}}, nil
		}
		es, err := fromRelative(m.indexed, ids)
		if err == nil {
			err = CheckEntries(es)
		}
		if err != nil {
			s.stats.Invalid++
			return Result{}, err
		}
		m.Entries, m.indexed = es, nil
	}
	switch m.Kind {
	case KindDigest:
		pr.rounds++
		if bytes.Equal(m.Hash, Digest(mine)) {
			pr.known = mine.Clone() // in step: it holds what we hold
			pr.worded, pr.unanswered = true, false
			return Result{}, nil
		}
		// The peer started a round that will sync both ways: ours can
		// wait an interval, so a busy link has one round per interval,
		// not one from each side. (Idle links keep both: an equal digest
		// tells only its receiver that the two are in step.)
		s.schedule(pr)
		if paused {
			return Result{}, nil
		}
		s.stats.Vectors++
		return Result{Out: []Out{{To: from, Msg: vectorMsg(pr, KindVector, mine, true)}}}, nil
	case KindVector:
		s.checkOwn(m.Vector, mine)
		// The peer's own word: what it holds now, even if that is less
		// than before (a restore from backup).
		// What is in flight to it (pr.sent) stays in flight: the vector
		// may have crossed it (both sides started a round, or it answered
		// ours before our entries came), and sending it again would make
		// it redundant. It is forgotten, so that what was lost goes again,
		// at our next round, or once the peer has started two rounds
		// since we sent it: the second started an interval after the
		// first, well after what was in flight came. (Our own rounds may
		// be put off again and again by the peer's, and do not come while
		// the node sheds load.)
		if m.Pull {
			pr.rounds++
		}
		pr.known, pr.worded, pr.unanswered = m.Vector.Clone(), true, false
		if pr.rounds >= 2 {
			pr.sent, pr.rounds, pr.offered = crdt.VersionVector{}, 0, false
		}
		outs, err := s.missing(from, mine)
		if err != nil {
			return Result{}, err
		}
		if lacking := m.Vector.Compare(mine) == crdt.After || m.Vector.Compare(mine) == crdt.Concurrent; m.Pull && lacking {
			// The peer's round (started with its vector, or our round
			// answered: then this only draws our next one again) brings
			// us what we lack: ours can wait, as on a differing Digest.
			// Not otherwise: the peer may have started it on stale word
			// (we had its news from its push, or from another peer), and
			// our own round is what tells it where we stand.
			s.schedule(pr)
			// Our vector only when the peer holds something we lack:
			// what it lacks of ours is on its way in the entries.
			if !paused {
				s.stats.Vectors++
				outs = append(outs, Out{To: from, Msg: vectorMsg(pr, KindVector, mine, false)})
			}
		}
		return Result{Out: outs}, nil
	case KindAck:
		s.checkOwn(m.Vector, mine)
		s.stats.Acks++
		pr.known, pr.worded, pr.unanswered = m.Vector.Clone(), true, false
		outs, err := s.missing(from, mine)
		return Result{Out: outs}, err
	case KindEntries:
		if paused {
			s.stats.Deferred += uint64(len(m.Entries))
			return Result{}, nil
		}
		pr.ackWanted = m.More
		return Result{Apply: s.accept(pr, mine, m.Entries)}, nil
	case KindOffer:
		if paused {
			return Result{}, nil
		}
		if m.Vector != nil && (m.Vector.Compare(mine) == crdt.Before || m.Vector.Compare(mine) == crdt.Equal) {
			// An offer made on stale word (this node caught up since,
			// from another peer): it would gain nothing, and its sync
			// would pause. The server learns what it holds instead.
			s.stats.OffersDeclined++
			return Result{Out: []Out{{To: from, Msg: wholeVector(pr, mine, false)}}}, nil
		}
		return Result{Out: s.startTransfer(from)}, nil
	case KindRangeReq:
		outs, err := s.serveRange(from, m)
		return Result{Out: outs}, err
	case KindRange:
		outs, page, err := s.onRange(from, m)
		return Result{Out: outs, Page: page}, err
	case KindStates:
		return Result{Page: s.onStates(from, m)}, nil
	}
	return Result{}, nil
}

// checkOwn counts a peer vector that is ahead of this node on its own
// writes.
func (s *Sync) checkOwn(theirs, mine crdt.VersionVector) {
	if s.cfg.Self != 0 && theirs[s.cfg.Self] > mine[s.cfg.Self] {
		s.stats.OwnAhead++
	}
}

// accept returns the entries of a message that extend the node's log,
// in order. An entry the node holds is redundant; one after a gap (an
// earlier message was lost) is dropped and will come again; one whose
// delta lacks some of the dots it covers is refused.
func (s *Sync) accept(pr *peer, mine crdt.VersionVector, es []Entry) []Entry {
	next := mine.Clone()
	var apply []Entry
	for _, e := range es {
		s.stats.EntriesReceived++
		// The sender holds what it sent: never send it back.
		if e.Last > pr.known[e.Origin] && e.First <= pr.known[e.Origin]+1 {
			pr.known[e.Origin] = e.Last
		}
		switch have, known := next[e.Origin]; {
		case !known && len(next) >= MaxReplicas:
			// One origin more would make this node's vector one that
			// every peer refuses.
			s.stats.Invalid++
		case e.Last <= have:
			s.stats.Redundant++
		case e.First > have+1:
			s.stats.Invalid++
		case !e.Delta.Ctx.ContainsRange(e.Origin, have+1, e.Last):
			// A group that claims dots its delta lacks would make this
			// node's vector hold writes it never saw.
			s.stats.Invalid++
		default:
			// It extends the log, maybe overlapping what is held (a
			// group joined differently elsewhere): joins are
			// idempotent, so the held part changes nothing.
			apply = append(apply, e)
			next[e.Origin] = e.Last
		}
	}
	return apply
}

// Committed tells the engine that entries from p were applied durably; it
// returns the acknowledgement to send when p has more to send (a catch-up
// streams at the pace of commits). Otherwise p learns what this node holds
// from its vector in the next round.
func (s *Sync) Committed(p PeerID) []Out {
	pr := s.peers[p]
	if pr == nil || !pr.ackWanted {
		return nil
	}
	pr.ackWanted = false
	return []Out{{To: p, Msg: vectorMsg(pr, KindAck, s.log.Vector(), false)}}
}

// join joins consecutive entries of one origin into one delta group
// covering all their dots: repeated updates of a key (a counter, a
// register) then cost one update, not one per write.
func join(es []Entry) (Entry, error) {
	if len(es) == 1 {
		return es[0], nil
	}
	// Logs may hold overlapping groups (joined differently by other
	// peers), so the group ends at the largest Last, not the last one's.
	g := Entry{Origin: es[0].Origin, First: es[0].First, Last: es[0].Last, Delta: es[0].Delta.Clone()}
	for _, e := range es[1:] {
		if err := g.Delta.JoinDelta(e.Delta); err != nil {
			return Entry{}, err
		}
		g.Last = max(g.Last, e.Last)
	}
	return g, nil
}

// contiguous returns how many of an origin's entries, from the first,
// leave no gap between them.
func contiguous(es []Entry) int {
	last := es[0].Last
	for i, e := range es[1:] {
		if e.First > last+1 {
			return i + 1
		}
		last = max(last, e.Last)
	}
	return len(es)
}

// withinCloud returns the first entries of es whose contexts' stray dots
// fit in *cloud (at least one when first, the message's first group),
// takes them from *cloud, and scales their byte count n to what is kept.
// A group joined from many entries has the stray dots of them all (a
// counter's delta lists the dot it replaces), and a receiver refuses a
// message with more than MaxCloudDots.
func withinCloud(es []Entry, n int, cloud *int, first bool) ([]Entry, int) {
	for i, e := range es {
		c := e.strayDots()
		if c > *cloud && (i > 0 || !first) {
			return es[:i], n * i / len(es)
		}
		*cloud -= c
	}
	return es, n
}

// missing returns an Entries message with the next chunk of what p lacks
// (what we hold beyond what it holds and what is in flight to it), or
// nothing when it lacks nothing.
func (s *Sync) missing(p PeerID, mine crdt.VersionVector) ([]Out, error) {
	pr := s.peers[p]
	if len(pr.known) == 0 && len(pr.sent) == 0 && len(mine) > 0 && pr.emptyOffers < emptyOffers {
		// A peer that holds nothing (a new node) is offered the state
		// rather than the log: each key once, not every write it had.
		// One that does not take it (an older version) gets the log.
		if pr.offered {
			return nil, nil
		}
		pr.offered = true
		pr.emptyOffers++
		s.stats.Offers++
		return []Out{{To: p, Msg: Message{Version: Version, Kind: KindOffer, Vector: mine}}}, nil
	}
	ch, err := NextChunk(s.log, mine, func(o crdt.ReplicaID) crdt.Seq { return max(pr.known[o], pr.sent[o]) }, s.cfg.MaxBatchBytes)
	if err != nil {
		return nil, err
	}
	batch, unservable := ch.Entries, ch.Unservable > 0
	if len(batch) > 0 && len(pr.sent) == 0 {
		pr.rounds = 0 // count the peer's rounds from the oldest in flight
	}
	for _, g := range batch {
		pr.sent[g.Origin] = g.Last
	}
	s.stats.Unservable += uint64(ch.Unservable)
	s.stats.DeltaBytes += uint64(ch.Bytes)
	var outs []Out
	if unservable && !pr.offered {
		pr.offered = true
		s.stats.Offers++
		outs = append(outs, Out{To: p, Msg: Message{Version: Version, Kind: KindOffer, Vector: mine}})
	}
	if len(batch) == 0 {
		return outs, nil
	}
	more := false
	for o := range mine {
		more = more || mine[o] > max(pr.known[o], pr.sent[o])
	}
	s.stats.EntriesSent += uint64(len(batch))
	msg := Message{Version: Version, Kind: KindEntries, Entries: batch, More: more, Size: ch.Bytes}
	if sameSet(mine, pr.known) {
		msg.Origins = mine
	}
	return append(outs, Out{To: p, Msg: msg}), nil
}

// EntryReader reads an origin's entries: see Log.Entries.
type EntryReader interface {
	Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]Entry, int, error)
}

// Chunk is one message's worth of what a destination lacks.
type Chunk struct {
	// Entries holds one group per origin, in origin order.
	Entries []Entry
	// Bytes is the encoded size of the deltas.
	Bytes int
	// Unservable counts the origins whose log no longer holds what the
	// destination lacks (collected, or come by state transfer): sending
	// what follows would leave a gap it can never fill, so none is sent.
	Unservable int
}

// NextChunk returns what a destination lacks of the log up to mine, where
// from says how far it holds (or was sent) each origin: each origin's
// entries joined into one group, within maxBytes of deltas and the limits
// every receiver enforces (MaxEntries, MaxCloudDots).
func NextChunk(log EntryReader, mine crdt.VersionVector, from func(crdt.ReplicaID) crdt.Seq, maxBytes int) (Chunk, error) {
	origins := mine.Replicas()
	slices.Sort(origins)
	var ch Chunk
	budget := maxBytes
	cloud := MaxCloudDots // out-of-order dots the receiver takes in one message
	for _, o := range origins {
		after := from(o)
		if mine[o] <= after || budget <= 0 || cloud <= 0 {
			continue
		}
		es, n, err := log.Entries(o, after, budget)
		if err != nil {
			return ch, fmt.Errorf("replication: log of %s after %d: %w", o, after, err)
		}
		if len(es) == 0 || es[0].First > after+1 {
			ch.Unservable++
			continue
		}
		// A log that caught up by state transfer has a gap where the
		// transfer's writes would be: the group stops before it, or
		// it would claim dots it lacks. What follows the gap is
		// unservable (see above) once the receiver holds the part before.
		if k := contiguous(es); k < len(es) {
			es, n = es[:k], n*k/len(es)
		}
		if es, n = withinCloud(es, n, &cloud, len(ch.Entries) == 0); len(es) == 0 {
			break // the message is full
		}
		group, err := join(es)
		if err != nil {
			return ch, fmt.Errorf("replication: join entries of %s: %w", o, err)
		}
		ch.Entries = append(ch.Entries, group)
		budget -= n
		ch.Bytes += n
		if len(ch.Entries) == MaxEntries {
			break
		}
	}
	return ch, nil
}
