package localmqtt

import "sync/atomic"

// ErrorKind classifies the inputs that were refused or failed, and the
// outputs that could not be published.
type ErrorKind int

// Error kinds, the keys of Stats.Errors.
const (
	// KindTopic: an input topic names no valid sensor or key, is longer
	// than max_topic_bytes, or a Response Topic is refused; or a changed
	// key cannot be published (its topic would be invalid or ambiguous).
	KindTopic ErrorKind = iota
	// KindPayload: a payload is too large or malformed (checked by the
	// node before the Backend sees it).
	KindPayload
	// KindBackend: the Backend returned an error (other than not found).
	KindBackend
	// KindNotFound: a get asked for a key that does not exist. It is
	// answered with an error object but not reported on <p>/errors.
	KindNotFound
	// KindDropped: a QoS 0 input found the queue full or the node
	// stopping; an input was still queued when the shutdown drain ran out
	// of time; or a key change found the pending-changes buffer full.
	KindDropped
	// KindPanic: handling a message panicked; the panic was recovered.
	KindPanic
	// KindPublish: the node failed to publish a document or reply.
	KindPublish
	// KindShed: a QoS 0 input dropped because the node sheds load.
	KindShed
	// KindDeclined: a QoS 1 or 2 input not acknowledged, so that its
	// publisher sends it again: the queue stayed full for max hold (5s in
	// embedded mode), or the node was stopping.
	KindDeclined

	numKinds
)

var kindNames = [numKinds]string{
	KindTopic:    "topic",
	KindPayload:  "payload",
	KindBackend:  "backend",
	KindNotFound: "not_found",
	KindDropped:  "dropped",
	KindPanic:    "panic",
	KindPublish:  "publish",
	KindShed:     "shed",
	KindDeclined: "declined",
}

// String returns the kind's name, a Prometheus-friendly label value such as
// "not_found".
func (k ErrorKind) String() string {
	if k < 0 || k >= numKinds {
		return "unknown"
	}
	return kindNames[k]
}

// ErrorKinds returns every ErrorKind, in order.
func ErrorKinds() []ErrorKind {
	kinds := make([]ErrorKind, numKinds)
	for i := range kinds {
		kinds[i] = ErrorKind(i)
	}
	return kinds
}

// Stats are the counters of a Server since New. Every counter only grows.
type Stats struct {
	// Received counts messages on input topics (readings, set, get),
	// whether or not they were valid.
	Received uint64
	// Readings counts readings stored: the sum of Backend.Ingest's counts.
	Readings uint64
	// Ops counts operations Backend.Do applied.
	Ops uint64
	// Gets counts gets answered with a document.
	Gets uint64
	// Changes counts key documents (and removals) published.
	Changes uint64
	// Delayed counts the QoS 1 and 2 inputs held back, before they were
	// acknowledged, while the node shed their class.
	Delayed uint64
	// Errors counts problems by kind; every kind is present.
	Errors map[ErrorKind]uint64
}

// counters are the live Stats.
type counters struct {
	received, readings, ops, gets, changes, delayed atomic.Uint64
	errors                                          [numKinds]atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Received: c.received.Load(),
		Readings: c.readings.Load(),
		Ops:      c.ops.Load(),
		Gets:     c.gets.Load(),
		Changes:  c.changes.Load(),
		Delayed:  c.delayed.Load(),
		Errors:   make(map[ErrorKind]uint64, numKinds),
	}
	for k := range c.errors {
		s.Errors[ErrorKind(k)] = c.errors[k].Load()
	}
	return s
}
