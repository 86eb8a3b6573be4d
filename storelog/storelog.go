// Package storelog serves the delta log and key states of a store to the
// pure protocol engines (replication, cloud), with the names a destination
// may not see withheld.
package storelog

import (
	"errors"
	"maps"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
)

// Log reads DB for one destination: Keep says which names it may see
// (nil: all), Origins whose writes it is sent (nil: all).
type Log struct {
	DB      *store.DB
	Keep    func(name string) bool
	Origins func(crdt.ReplicaID) bool
}

func (l Log) keep(name string) bool { return l.Keep == nil || l.Keep(name) }

// Vector is the log's vector, not the context's (see store.DB.LogVector),
// with the origins the destination is sent.
func (l Log) Vector() crdt.VersionVector {
	vv := l.DB.LogVector()
	if l.Origins != nil {
		maps.DeleteFunc(vv, func(r crdt.ReplicaID, _ crdt.Seq) bool { return !l.Origins(r) })
	}
	return vv
}

// Context returns the store's causal context.
func (l Log) Context() crdt.Context { return l.DB.Context() }

// States returns the states of the names after after up to upto that the
// destination may see (see replication.Log).
func (l Log) States(after, upto string, maxBytes int) ([]replication.State, bool, error) {
	recs, complete, err := l.DB.Records(after, upto, maxBytes, l.keep)
	states := make([]replication.State, len(recs))
	for i, r := range recs {
		states[i] = replication.State{Name: r.Name, Record: r.Enc}
	}
	return states, complete, err
}

var errFull = errors.New("batch full")

// Entries returns origin's entries after after, restricted to what the
// destination may see, as many as fit in maxBytes of deltas (at least
// one), and their size.
func (l Log) Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	return l.read(maxBytes, func(fn func(store.Entry) error) error {
		return l.DB.Entries(origin, after, func(e store.Entry) error {
			if e.Last <= after {
				return nil
			}
			return fn(e)
		})
	})
}

// EntriesDown returns origin's entries that start at or below upto,
// newest first, restricted and bounded as Entries.
func (l Log) EntriesDown(origin crdt.ReplicaID, upto crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	return l.read(maxBytes, func(fn func(store.Entry) error) error { return l.DB.EntriesDown(origin, upto, fn) })
}

// read collects the entries that each calls fn with, restricted to what
// the destination may see, as many as fit in maxBytes of deltas (at least
// one), and their size.
func (l Log) read(maxBytes int, each func(fn func(store.Entry) error) error) ([]replication.Entry, int, error) {
	var out []replication.Entry
	size := 0
	err := each(func(e store.Entry) error {
		re := replication.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta}
		if l.Keep != nil {
			re = replication.Restrict(re, l.Keep)
		}
		b, err := re.Delta.MarshalCBOR()
		if err != nil {
			return err
		}
		if len(out) > 0 && size+len(b) > maxBytes {
			return errFull
		}
		out = append(out, re)
		size += len(b)
		return nil
	})
	if errors.Is(err, errFull) {
		err = nil
	}
	return out, size, err
}
