package cloud

import (
	"fmt"
	"maps"
	"slices"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
)

// ReadingsLog is the node's log as the readings stream reads it: each
// entry with only its raw readings.
type ReadingsLog interface {
	Log
	// EntriesDown returns origin's entries that start at or below upto,
	// newest first, as many as fit in maxBytes (at least one).
	EntriesDown(origin crdt.ReplicaID, upto crdt.Seq, maxBytes int) ([]replication.Entry, int, error)
}

// ReadingsOutbox decides what the readings stream sends next: the log's
// entries whose raw readings the aggregator does not hold, oldest or
// newest first. Raw readings are facts, so the aggregator takes them in
// any order and says in each ack which ranges of entries it holds (it may
// hold a newer range and not an older one). Like Outbox, it keeps Window
// batches in flight and sends again from the aggregator's word when acks
// stop coming; it sends no heartbeats (the state stream's bring the acks).
// It is not safe for concurrent use.
type ReadingsOutbox struct {
	cfg    OutboxConfig
	newest bool
	log    ReadingsLog
	// acked is the aggregator's word; sent what was sent since it or the
	// last rewind; gone the entries the log does not hold (collected, or
	// never logged: they came by state transfer), as found so far.
	acked, sent, gone map[crdt.ReplicaID]crdt.Ranges
	flights           []readingsFlight
	seq               uint64
	tick              uint64
	progress          uint64
	stats             OutboxStats
}

type readingsFlight struct {
	seq    uint64
	ranges map[crdt.ReplicaID]crdt.Ranges
}

// NewReadingsOutbox returns a readings outbox over log, starting from the
// persisted watermark acked (what the aggregator was known to hold
// without a gap); newest sends the newest readings first.
func NewReadingsOutbox(log ReadingsLog, acked crdt.VersionVector, cfg OutboxConfig, newest bool) *ReadingsOutbox {
	o := &ReadingsOutbox{cfg: cfg.withDefaults(), newest: newest, log: log, acked: map[crdt.ReplicaID]crdt.Ranges{},
		sent: map[crdt.ReplicaID]crdt.Ranges{}, gone: map[crdt.ReplicaID]crdt.Ranges{}}
	for r, s := range acked {
		if s > 0 {
			o.acked[r] = crdt.Ranges{{First: 1, Last: s}}
		}
	}
	return o
}

// covered returns what need not be sent of origin r: held by the
// aggregator, in flight, or not in the log.
func (o *ReadingsOutbox) covered(r crdt.ReplicaID) crdt.Ranges {
	return o.acked[r].Union(o.sent[r]).Union(o.gone[r])
}

// Next returns the next batch, or nil when the window is full or the
// aggregator lacks no readings. Its entries carry only their raw readings,
// with contexts cut to the readings' dots and their own first and last
// (the aggregator reads nothing else of them).
func (o *ReadingsOutbox) Next() (*Batch, error) {
	if len(o.flights) >= o.cfg.Window {
		return nil, nil
	}
	mine := o.log.Vector()
	f := readingsFlight{ranges: map[crdt.ReplicaID]crdt.Ranges{}}
	var batch []replication.Entry
	bytes := 0
	for _, r := range slices.Sorted(maps.Keys(mine)) {
		for bytes < o.cfg.MaxBatchBytes && len(batch) < replication.MaxEntries {
			g, ok := o.covered(r).Gap(mine[r], o.newest)
			if !ok {
				break
			}
			es, n, err := o.read(r, g, o.cfg.MaxBatchBytes-bytes)
			if err != nil {
				return nil, fmt.Errorf("cloud: readings outbox: %w", err)
			}
			if len(es) == 0 {
				continue // the gap is not in the log: see read
			}
			for _, e := range es[:min(len(es), replication.MaxEntries-len(batch))] {
				o.sent[r] = o.sent[r].Add(e.First, e.Last)
				f.ranges[r] = f.ranges[r].Add(e.First, e.Last)
				batch = appendReadings(batch, e)
			}
			bytes += n
		}
	}
	if len(batch) == 0 {
		return nil, nil
	}
	o.seq++
	f.seq = o.seq
	o.flights = append(o.flights, f)
	o.stats.Batches++
	o.stats.Entries += uint64(len(batch))
	o.stats.DeltaBytes += uint64(bytes)
	return &Batch{Seq: o.seq, Vector: mine, Entries: batch}, nil
}

// appendReadings appends e to batch, its context cut to the dots of its
// readings and its own first and last. An entry without readings that
// follows one without readings of the same origin (either way) joins it:
// a run of entries with no readings costs one entry.
func appendReadings(batch []replication.Entry, e replication.Entry) []replication.Entry {
	empty := e.Delta.Value == nil || e.Delta.Value.IsBottom()
	if n := len(batch); empty && n > 0 {
		p := &batch[n-1]
		if p.Origin == e.Origin && p.Delta.Value == nil && (p.Last+1 == e.First || e.Last+1 == p.First) {
			p.First, p.Last = min(p.First, e.First), max(p.Last, e.Last)
			p.Delta.Ctx = crdt.Context{}
			p.Delta.Ctx.Add(crdt.Dot{Replica: p.Origin, Seq: p.First})
			p.Delta.Ctx.Add(crdt.Dot{Replica: p.Origin, Seq: p.Last})
			return batch
		}
	}
	// A delta's context must hold the dots of its value.
	var ctx crdt.Context
	if empty {
		e.Delta.Value = nil
	} else {
		ctx = crdt.Dots(e.Delta.Value)
	}
	ctx.Add(crdt.Dot{Replica: e.Origin, Seq: e.First})
	ctx.Add(crdt.Dot{Replica: e.Origin, Seq: e.Last})
	e.Delta.Ctx = ctx
	return append(batch, e)
}

// read returns the entries of origin r that hold dots of the gap g, from
// its oldest or its newest end, within maxBytes. When none does, the gap
// is not in the log (collected, or it came by state transfer): it is
// marked gone, counted as unservable, and never asked for again.
func (o *ReadingsOutbox) read(r crdt.ReplicaID, g crdt.Range, maxBytes int) ([]replication.Entry, int, error) {
	var es []replication.Entry
	var n int
	var err error
	if o.newest {
		es, n, err = o.log.EntriesDown(r, g.Last, maxBytes)
		if i := slices.IndexFunc(es, func(e replication.Entry) bool { return e.Last < g.First }); i >= 0 {
			es = es[:i]
		}
	} else {
		es, n, err = o.log.Entries(r, g.First-1, maxBytes)
		if i := slices.IndexFunc(es, func(e replication.Entry) bool { return e.First > g.Last }); i >= 0 {
			es = es[:i]
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if len(es) > 0 {
		return es, n, nil
	}
	// Entries never overlap, and the nearest one to the gap's reading end
	// ends outside it: no entry holds a dot of the gap.
	o.gone[r] = o.gone[r].Add(g.First, g.Last)
	o.stats.Unservable++
	return nil, 0, nil
}

// Acked takes the aggregator's word on what it holds, and reports whether
// it changed. Word that it holds less than before (an ack redelivered
// late, an aggregator restored from a backup) makes the outbox send again
// what it lacks.
func (o *ReadingsOutbox) Acked(held map[crdt.ReplicaID]crdt.Ranges) bool {
	o.stats.Acks++
	changed, advanced, regressed := false, false, false
	for r, rs := range held {
		old := o.acked[r]
		if u := old.Union(rs); u.Len() != old.Len() {
			advanced = true
		}
		changed = changed || !slices.Equal(old, rs)
	}
	for r, old := range o.acked {
		if u := held[r].Union(old); u.Len() != held[r].Len() {
			regressed, changed = true, true
		}
	}
	o.acked = maps.Clone(held)
	if regressed {
		o.Rewind()
	}
	kept := o.flights[:0]
	for _, f := range o.flights {
		for r, rs := range f.ranges {
			if o.acked[r].Union(rs).Len() != o.acked[r].Len() {
				kept = append(kept, f)
				break
			}
		}
	}
	o.flights = kept
	if advanced {
		o.progress = o.tick
	}
	return changed
}

// Watermark returns, per origin, the end of the range from 1 that the
// aggregator holds, or that the log no longer holds: the log may be
// collected up to it.
func (o *ReadingsOutbox) Watermark() crdt.VersionVector {
	vv := crdt.VersionVector{}
	// Every origin the aggregator holds, not only those in the log now:
	// entries that reach the log later are covered already.
	origins := map[crdt.ReplicaID]bool{}
	for r := range o.acked {
		origins[r] = true
	}
	for r := range o.gone {
		origins[r] = true
	}
	for r := range origins {
		if p := o.acked[r].Union(o.gone[r]).Prefix(); p > 0 {
			vv[r] = p
		}
	}
	return vv
}

// Tick advances the clock; batches unacknowledged for RetryTicks are
// taken as lost, and sent again.
func (o *ReadingsOutbox) Tick() {
	o.tick++
	if len(o.flights) > 0 && o.tick-o.progress >= uint64(o.cfg.RetryTicks) {
		o.stats.Retries++
		o.Rewind()
	}
}

// Rewind forgets what was sent and not acknowledged.
func (o *ReadingsOutbox) Rewind() {
	o.sent = map[crdt.ReplicaID]crdt.Ranges{}
	o.flights = nil
	o.progress = o.tick
}

// Backlog returns how many dots of the log the aggregator holds no
// readings of.
func (o *ReadingsOutbox) Backlog() uint64 {
	var n uint64
	for r, s := range o.log.Vector() {
		held := uint64(0)
		for _, rg := range o.acked[r].Union(o.gone[r]) {
			if rg.First <= s {
				held += uint64(min(rg.Last, s) - rg.First + 1)
			}
		}
		n += uint64(s) - held
	}
	return n
}

// InFlight returns how many batches await their ack.
func (o *ReadingsOutbox) InFlight() int { return len(o.flights) }

// Stats returns the outbox's counters.
func (o *ReadingsOutbox) Stats() OutboxStats { return o.stats }
