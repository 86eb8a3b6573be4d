package cloud

import (
	"fmt"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
)

// Log is the node's delta log as the outbox reads it: package storelog
// serves it from the store, with local names withheld.
type Log interface {
	replication.EntryReader
	// Vector returns the log's vector.
	Vector() crdt.VersionVector
}

// OutboxConfig tunes the outbox.
type OutboxConfig struct {
	// MaxBatchBytes bounds the deltas of one batch. Zero means 256 KiB.
	MaxBatchBytes int
	// Window is how many batches may await the aggregator's ack. Zero
	// means 4.
	Window int
	// RetryTicks is how many ticks without an ack that advances make the
	// outbox send again from the ack (the batches, or their acks, were
	// lost). Zero means 30.
	RetryTicks int
}

func (c OutboxConfig) withDefaults() OutboxConfig {
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 256 << 10
	}
	if c.Window <= 0 {
		c.Window = 4
	}
	if c.RetryTicks <= 0 {
		c.RetryTicks = 30
	}
	return c
}

// OutboxStats count what the outbox did.
type OutboxStats struct {
	Batches, Entries, DeltaBytes, Acks, Retries uint64
	// Unservable counts batches that skipped an origin because the log no
	// longer holds what the cloud lacks of it (evicted by the data
	// budget): the cloud gets that origin's later writes from a node that
	// still holds the gap, or never.
	Unservable uint64
}

// flight is a batch awaiting its ack: the last dot it carries per origin.
type flight struct {
	seq  uint64
	upto crdt.VersionVector
}

// Outbox decides what a node uploads: the log from the cloud's
// acknowledged vector, in batches, at most Window of them unacknowledged.
// It is not safe for concurrent use: one driver goroutine owns it.
type Outbox struct {
	cfg      OutboxConfig
	log      Log
	acked    crdt.VersionVector // the cloud's last word
	sent     crdt.VersionVector // sent since that word or the last rewind
	flights  []flight
	seq      uint64
	tick     uint64
	progress uint64 // the tick of the last ack that advanced, or rewind
	nextPoll uint64 // the tick from which an empty batch may be sent
	stats    OutboxStats
}

// NewOutbox returns an outbox over log, starting from acked (the
// persisted cloud watermark).
func NewOutbox(log Log, acked crdt.VersionVector, cfg OutboxConfig) *Outbox {
	return &Outbox{cfg: cfg.withDefaults(), log: log, acked: acked.Clone(), sent: crdt.VersionVector{}}
}

// Next returns the next batch to publish, or nil when the window is full
// or the cloud lacks nothing. A batch may be empty: a heartbeat.
func (o *Outbox) Next() (*Batch, error) {
	if len(o.flights) >= o.cfg.Window {
		return nil, nil
	}
	mine := o.log.Vector()
	ch, err := replication.NextChunk(o.log, mine, func(r crdt.ReplicaID) crdt.Seq { return max(o.acked[r], o.sent[r]) }, o.cfg.MaxBatchBytes)
	if err != nil {
		return nil, fmt.Errorf("cloud: outbox: %w", err)
	}
	if ch.Unservable > 0 {
		o.stats.Unservable++
	}
	if len(ch.Entries) == 0 && (len(o.flights) > 0 || o.tick < o.nextPoll) {
		return nil, nil
	}
	// An empty batch, every RetryTicks while the node sends nothing
	// else, is a heartbeat: it asks for the cloud's word (in case the
	// cloud lacks what cannot be sent: what the log no longer holds, or
	// what a stale ack said it lacks), and tells it the node's vector,
	// so it learns the node's lag and what the node lacks of the cloud's
	// own writes.
	o.nextPoll = o.tick + uint64(o.cfg.RetryTicks)
	o.seq++
	f := flight{seq: o.seq, upto: crdt.VersionVector{}}
	for _, e := range ch.Entries {
		o.sent[e.Origin] = e.Last
		f.upto[e.Origin] = e.Last
	}
	o.flights = append(o.flights, f)
	o.stats.Batches++
	o.stats.Entries += uint64(len(ch.Entries))
	o.stats.DeltaBytes += uint64(ch.Bytes)
	return &Batch{Seq: o.seq, Vector: mine, Entries: ch.Entries}, nil
}

// Acked takes the aggregator's ack: what the cloud holds. It reports
// whether the acknowledged vector changed (the driver persists it as the
// cloud watermark). An ack below an earlier one (one redelivered late, or
// an aggregator restored from a backup) is taken as it is, and the outbox
// sends from it again: what the cloud lost is sent again, and what it
// holds changes nothing there.
func (o *Outbox) Acked(vv crdt.VersionVector) bool {
	o.stats.Acks++
	changed := vv.Compare(o.acked) != crdt.Equal
	advanced, regressed := false, false
	for r, s := range vv {
		advanced = advanced || s > o.acked[r]
	}
	for r, s := range o.acked {
		regressed = regressed || s > vv[r]
	}
	o.acked = vv.Clone()
	if regressed {
		// A stale ack (redelivered late), or a cloud that lost writes:
		// send from it again; what the cloud holds changes nothing.
		o.Rewind()
	}
	kept := o.flights[:0]
	for _, f := range o.flights {
		if !o.covers(f.upto) {
			kept = append(kept, f)
		}
	}
	o.flights = kept
	if advanced {
		o.progress = o.tick
	}
	return changed
}

func (o *Outbox) covers(vv crdt.VersionVector) bool {
	for r, s := range vv {
		if o.acked[r] < s {
			return false
		}
	}
	return true
}

// Tick advances the outbox's clock. Batches unacknowledged for
// RetryTicks are taken as lost: the outbox sends again from the ack.
func (o *Outbox) Tick() {
	o.tick++
	if len(o.flights) > 0 && o.tick-o.progress >= uint64(o.cfg.RetryTicks) {
		o.stats.Retries++
		o.Rewind()
	}
}

// Rewind forgets what was sent and not acknowledged, so it is sent
// again: after a reconnection, or a publish that failed.
func (o *Outbox) Rewind() {
	o.sent = crdt.VersionVector{}
	o.flights = nil
	o.progress = o.tick
}

// AckedVector returns the cloud's acknowledged vector.
func (o *Outbox) AckedVector() crdt.VersionVector { return o.acked.Clone() }

// Backlog returns how many dots of the log the cloud has not
// acknowledged.
func (o *Outbox) Backlog() uint64 {
	var n uint64
	for r, s := range o.log.Vector() {
		if s > o.acked[r] {
			n += uint64(s - o.acked[r])
		}
	}
	return n
}

// InFlight returns how many batches await their ack.
func (o *Outbox) InFlight() int { return len(o.flights) }

// Stats returns the outbox's counters.
func (o *Outbox) Stats() OutboxStats { return o.stats }
