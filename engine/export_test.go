package engine

import (
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/store"
)

// Queued returns the number of requests waiting for Run to take them.
func (e *Engine) Queued() int { return len(e.reqs) }

// Send queues op as Do does, and returns a function that waits for its
// outcome. When Send returns, the request is in the queue or taken by Run.
func (e *Engine) Send(op Op) func() (crdt.Value, error) {
	r := &request{ops: []Op{op}, done: make(chan struct{})}
	e.reqs <- r
	return func() (crdt.Value, error) {
		<-r.done
		if r.err != nil {
			return nil, r.err
		}
		return r.values[0], nil
	}
}

// SendEntries queues entries as Apply does, and returns a function that
// waits for their outcome. When it returns, the request is in the queue or
// taken by Run.
func (e *Engine) SendEntries(entries []store.Entry) func() error {
	r := &request{entries: entries, done: make(chan struct{})}
	e.reqs <- r
	return func() error {
		<-r.done
		return r.err
	}
}
