package cloud

import (
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
)

// memLog is one origin's log in memory, one dot per entry of one byte,
// collected up to gone, and without the dots of hole (they came by state
// transfer).
type memLog struct {
	origin     crdt.ReplicaID
	gone, last crdt.Seq
	hole       [2]crdt.Seq
}

func (l *memLog) holds(s crdt.Seq) bool { return s > l.gone && (s < l.hole[0] || s > l.hole[1]) }

func (l *memLog) Vector() crdt.VersionVector { return crdt.VersionVector{l.origin: l.last} }

func (l *memLog) entry(s crdt.Seq) replication.Entry {
	var ctx crdt.Context
	ctx.Add(crdt.Dot{Replica: l.origin, Seq: s})
	return replication.Entry{Origin: l.origin, First: s, Last: s, Delta: crdt.Causal{Ctx: ctx}}
}

func (l *memLog) Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	var out []replication.Entry
	for s := after + 1; origin == l.origin && s <= l.last && (len(out) == 0 || len(out) < maxBytes); s++ {
		if l.holds(s) {
			out = append(out, l.entry(s))
		}
	}
	return out, len(out), nil
}

func (l *memLog) EntriesDown(origin crdt.ReplicaID, upto crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	var out []replication.Entry
	for s := min(upto, l.last); origin == l.origin && s > 0 && (len(out) == 0 || len(out) < maxBytes); s-- {
		if l.holds(s) {
			out = append(out, l.entry(s))
		}
	}
	return out, len(out), nil
}

// held is what an ack says the aggregator holds of origin 7.
func held(rs ...crdt.Range) map[crdt.ReplicaID]crdt.Ranges {
	return map[crdt.ReplicaID]crdt.Ranges{7: rs}
}

// TestStreamsStateFirst: the readings stream sends only while the state
// stream has nothing to send, and only to an aggregator whose acks carry
// a readings vector; each stream moves on its own vector.
func TestStreamsStateFirst(t *testing.T) {
	log := &memLog{origin: 7, last: 3}
	s := NewStreams(log, log, nil, nil, OutboxConfig{Window: 1}, false)
	next := func() (*Batch, bool) {
		t.Helper()
		b, readings, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		return b, readings
	}
	if b, readings := next(); b == nil || readings || b.Entries[0].Last != 3 {
		t.Fatalf("first batch %+v (readings %v), want the state stream up to 3", b, readings)
	}
	if b, _ := next(); b != nil {
		t.Fatalf("a batch %+v before any ack said the aggregator takes readings", b)
	}
	// An aggregator that takes readings acks the state.
	if !s.Acked(Ack{Vector: crdt.VersionVector{7: 3}, Readings: held()}) {
		t.Error("the state ack changed nothing")
	}
	b, readings := next()
	if b == nil || !readings || len(b.Entries) != 1 || b.Entries[0].First != 1 || b.Entries[0].Last != 3 {
		t.Fatalf("after the state ack: %+v (readings %v), want the readings stream from 1 to 3, in one entry (they hold no readings)", b, readings)
	}
	// A new write goes before the rest of the readings.
	log.last = 4
	if b, readings := next(); b == nil || readings || b.Entries[0].First != 4 {
		t.Fatalf("after a new write: %+v (readings %v), want the state stream's 4", b, readings)
	}
	if b, _ := next(); b != nil {
		t.Fatalf("%+v with both windows full", b)
	}
	if !s.Acked(Ack{Vector: crdt.VersionVector{7: 4}, Readings: held(crdt.Range{First: 1, Last: 3})}) || s.Readings.Watermark()[7] != 3 || s.State.AckedVector()[7] != 4 {
		t.Errorf("after both acks: state %v readings %v", s.State.AckedVector(), s.Readings.Watermark())
	}
	if b, readings := next(); b == nil || !readings || b.Entries[0].First != 4 {
		t.Fatalf("%+v (readings %v), want the readings of 4", b, readings)
	}
	// An older aggregator (no readings vector): the readings wait.
	s.Acked(Ack{Vector: crdt.VersionVector{7: 4}})
	s.Rewind()
	if b, _ := next(); b != nil && len(b.Entries) > 0 {
		t.Errorf("readings sent to an aggregator that does not take them: %+v", b)
	}
}

// TestReadingsNewestFirst: newest first, the readings stream sends from
// the head of the log down, takes the aggregator's word that it holds a
// newer range and not an older one, fills the hole, skips what the log
// collected, and its watermark is the range from 1 held or collected.
func TestReadingsNewestFirst(t *testing.T) {
	log := &memLog{origin: 7, gone: 2, last: 10}
	o := NewReadingsOutbox(log, crdt.VersionVector{7: 1}, OutboxConfig{MaxBatchBytes: 3, Window: 2}, true)
	span := func(b *Batch) [2]crdt.Seq {
		t.Helper()
		if b == nil || len(b.Entries) == 0 {
			t.Fatalf("no batch")
		}
		lo, hi := b.Entries[0].First, b.Entries[0].Last
		for _, e := range b.Entries {
			lo, hi = min(lo, e.First), max(hi, e.Last)
			if !e.Delta.Ctx.Contains(crdt.Dot{Replica: 7, Seq: e.First}) || !e.Delta.Ctx.Contains(crdt.Dot{Replica: 7, Seq: e.Last}) {
				t.Errorf("entry %d-%d lacks its dots in its context", e.First, e.Last)
			}
		}
		return [2]crdt.Seq{lo, hi}
	}
	next := func() *Batch {
		t.Helper()
		b, err := o.Next()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := next()
	if got := span(first); got != [2]crdt.Seq{8, 10} || len(first.Entries) != 1 {
		t.Fatalf("first batch %v in %d entries, want 8-10 in one (entries without readings join)", got, len(first.Entries))
	}
	if got := span(next()); got != [2]crdt.Seq{5, 7} {
		t.Fatalf("second batch %v, want 5-7", got)
	}
	if b := next(); b != nil {
		t.Fatalf("a third batch %v with a window of 2", b)
	}
	// The first batch was lost; the second arrived.
	if !o.Acked(held(crdt.Range{First: 1, Last: 1}, crdt.Range{First: 5, Last: 7})) {
		t.Error("the ack changed nothing")
	}
	o.Rewind()
	if got := span(next()); got != [2]crdt.Seq{8, 10} {
		t.Fatalf("after the rewind %v, want 8-10 again", got)
	}
	// Entries 3 and 4 next; 2 is collected: skipped, and counted.
	if got := span(next()); got != [2]crdt.Seq{3, 4} {
		t.Fatalf("then %v, want 3-4", got)
	}
	o.Acked(held(crdt.Range{First: 1, Last: 1}, crdt.Range{First: 3, Last: 10}))
	if b := next(); b != nil {
		t.Fatalf("%v with nothing left but collected entries", b.Entries)
	}
	if o.Stats().Unservable == 0 {
		t.Error("the collected entry was not counted")
	}
	if w := o.Watermark()[7]; w != 10 {
		t.Errorf("watermark %d, want 10 (2 is collected)", w)
	}
	if n := o.Backlog(); n != 0 {
		t.Errorf("backlog %d, want 0", n)
	}
	// An aggregator that lost what it held: sent again.
	o.Acked(held(crdt.Range{First: 1, Last: 1}))
	if got := span(next()); got != [2]crdt.Seq{8, 10} {
		t.Errorf("after a regressed ack %v, want 8-10", got)
	}
}

// TestReadingsHole: entries a log never held (they came by state
// transfer) are skipped, in either order, and the entries on both sides of
// the hole are sent.
func TestReadingsHole(t *testing.T) {
	for _, newest := range []bool{false, true} {
		log := &memLog{origin: 7, last: 9, hole: [2]crdt.Seq{4, 6}}
		o := NewReadingsOutbox(log, nil, OutboxConfig{MaxBatchBytes: 100, Window: 4}, newest)
		var sent crdt.Ranges
		for b, err := o.Next(); b != nil; b, err = o.Next() {
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range b.Entries {
				sent = sent.Add(e.First, e.Last)
			}
		}
		if len(sent) != 2 || sent[0] != (crdt.Range{First: 1, Last: 3}) || sent[1] != (crdt.Range{First: 7, Last: 9}) {
			t.Errorf("newest %v: sent %v, want 1-3 and 7-9", newest, sent)
		}
		o.Acked(map[crdt.ReplicaID]crdt.Ranges{7: sent})
		if w := o.Watermark()[7]; w != 9 || o.Backlog() != 0 {
			t.Errorf("newest %v: watermark %d and backlog %d, want 9 and 0", newest, w, o.Backlog())
		}
	}
}
