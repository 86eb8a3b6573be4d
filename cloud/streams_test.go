package cloud

import (
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
)

// memLog is one origin's log in memory, one dot per entry.
type memLog struct {
	origin crdt.ReplicaID
	last   crdt.Seq
}

func (l *memLog) Vector() crdt.VersionVector { return crdt.VersionVector{l.origin: l.last} }

func (l *memLog) Entries(origin crdt.ReplicaID, after crdt.Seq, _ int) ([]replication.Entry, int, error) {
	var out []replication.Entry
	for s := after + 1; origin == l.origin && s <= l.last; s++ {
		var ctx crdt.Context
		ctx.Add(crdt.Dot{Replica: origin, Seq: s})
		out = append(out, replication.Entry{Origin: origin, First: s, Last: s, Delta: crdt.Causal{Ctx: ctx}})
	}
	return out, len(out), nil
}

// TestStreamsStateFirst: the readings stream sends only while the state
// stream has nothing to send, and only to an aggregator whose acks carry
// a readings vector; each stream moves on its own vector.
func TestStreamsStateFirst(t *testing.T) {
	log := &memLog{origin: 7, last: 3}
	s := NewStreams(log, log, nil, nil, OutboxConfig{Window: 1})
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
	st, rd := s.Acked(Ack{Vector: crdt.VersionVector{7: 3}, Readings: crdt.VersionVector{}})
	if !st || rd {
		t.Errorf("ack changed state %v, readings %v; want state only", st, rd)
	}
	b, readings := next()
	if b == nil || !readings || b.Entries[0].First != 1 || b.Entries[0].Last != 3 {
		t.Fatalf("after the state ack: %+v (readings %v), want the readings stream from 1 to 3", b, readings)
	}
	// A new write goes before the rest of the readings.
	log.last = 4
	if b, readings := next(); b == nil || readings || b.Entries[0].First != 4 {
		t.Fatalf("after a new write: %+v (readings %v), want the state stream's 4", b, readings)
	}
	if b, _ := next(); b != nil {
		t.Fatalf("%+v with both windows full", b)
	}
	st, rd = s.Acked(Ack{Vector: crdt.VersionVector{7: 4}, Readings: crdt.VersionVector{7: 3}})
	if !st || !rd || s.Readings.AckedVector()[7] != 3 || s.State.AckedVector()[7] != 4 {
		t.Errorf("after both acks: state %v readings %v", s.State.AckedVector(), s.Readings.AckedVector())
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
