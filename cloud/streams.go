package cloud

import "github.com/edged-dev/edged/crdt"

// Streams are a node's two uploads of its log, so that the cloud gets the
// CRDT state first and the raw readings after. The state stream is the
// log with raw readings left out (their dots still go, in the entries'
// contexts): it carries key state, summaries and latest values, and is
// acknowledged by the aggregator's log vector. The readings stream is the
// same entries with only their raw readings (ReadingsOutbox), oldest or
// newest first, sent only while the state stream has nothing to send, and
// acknowledged by the ranges of entries whose readings the aggregator
// holds. Each stream has its own watermark, and the log is collected only
// once both cover it.
//
// Raw readings are immutable facts, so they need not travel in the log's
// causal order with the state: the aggregator stores them apart, each once
// (engine.Engine.Readings). Like Outbox, Streams is not safe for
// concurrent use.
type Streams struct {
	State    *Outbox
	Readings *ReadingsOutbox
	// takesReadings: the last ack came from an aggregator that takes the
	// readings stream (its ack carries a readings vector).
	takesReadings bool
}

// NewStreams returns the streams over the state and readings views of a
// log, from their persisted watermarks; newest sends the newest readings
// first. A nil readings view means the log holds no raw readings: there
// is no readings stream.
func NewStreams(state Log, readings ReadingsLog, stateAcked, readingsAcked crdt.VersionVector, cfg OutboxConfig, newest bool) *Streams {
	s := &Streams{State: NewOutbox(state, stateAcked, cfg)}
	if readings != nil {
		s.Readings = NewReadingsOutbox(readings, readingsAcked, cfg, newest)
	}
	return s
}

// Next returns the next batch to publish and whether it is the readings
// stream's, or nil when neither stream may send. The state stream goes
// first: readings only when it has nothing to send (it is caught up, or
// its window is full), and only to an aggregator that takes them.
func (s *Streams) Next() (b *Batch, readings bool, err error) {
	if b, err = s.State.Next(); b != nil || err != nil || !s.takesReadings || s.Readings == nil {
		return b, false, err
	}
	b, err = s.Readings.Next()
	return b, b != nil, err
}

// Acked takes an aggregator's ack for either stream. It reports whether
// the state stream's acknowledged vector changed (the driver persists it
// as a watermark). The readings stream's watermark also moves when it
// finds entries its log no longer holds: the driver persists it whenever
// ReadingsOutbox.Watermark changes.
func (s *Streams) Acked(a Ack) (state bool) {
	state = s.State.Acked(a.Vector)
	s.takesReadings = a.Readings != nil
	if s.takesReadings && s.Readings != nil {
		s.Readings.Acked(a.Readings)
	}
	return state
}

// Tick advances both streams' clocks.
func (s *Streams) Tick() {
	s.State.Tick()
	if s.Readings != nil {
		s.Readings.Tick()
	}
}

// Rewind makes both streams send again what was not acknowledged.
func (s *Streams) Rewind() {
	s.State.Rewind()
	if s.Readings != nil {
		s.Readings.Rewind()
	}
}

// Stats returns the counters of both streams added up.
func (s *Streams) Stats() OutboxStats {
	st := s.State.Stats()
	if s.Readings != nil {
		r := s.Readings.Stats()
		st.Batches += r.Batches
		st.Entries += r.Entries
		st.DeltaBytes += r.DeltaBytes
		st.Retries += r.Retries
		st.Unservable += r.Unservable
	}
	return st
}

// ReadingsBacklog returns how many dots of the log the readings stream
// has not had acknowledged (zero without a readings stream).
func (s *Streams) ReadingsBacklog() uint64 {
	if s.Readings == nil {
		return 0
	}
	return s.Readings.Backlog()
}

// InFlight returns how many batches of both streams await their ack.
func (s *Streams) InFlight() int {
	n := s.State.InFlight()
	if s.Readings != nil {
		n += s.Readings.InFlight()
	}
	return n
}
