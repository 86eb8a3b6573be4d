package crdt

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Reading is one sensor reading: an immutable fact.
type Reading struct {
	// Time is when the reading was taken, in Unix nanoseconds (wall time
	// is data here, never used for ordering replicas).
	Time int64
	// Value is the measurement; never NaN or infinite.
	Value float64
	// Flags qualify the reading, e.g. FlagClockUnsynced.
	Flags ReadingFlags
}

// ReadingFlags qualify a reading.
type ReadingFlags uint8

// FlagClockUnsynced marks a reading taken before the node's wall clock was
// synchronised (for example a board without RTC that booted in 1970).
const FlagClockUnsynced ReadingFlags = 1 << 0

func (r Reading) validate() error {
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return fmt.Errorf("%w: value %v is not a finite number", ErrInvalidReading, r.Value)
	}
	return nil
}

// ReadingSet is a grow-only set of sensor readings, each under its own dot.
// It has no remove: a node forgets old readings locally (retention) by
// dropping entries while their dots stay in its context, so a copy relayed
// back by a peer is not accepted again.
type ReadingSet struct{ entries DotFun[Reading] }

var _ Value = (*ReadingSet)(nil)

// Type returns TypeReadingSet.
func (*ReadingSet) Type() Type { return TypeReadingSet }

// IsBottom reports whether the set holds no reading.
func (s *ReadingSet) IsBottom() bool { return s.entries.IsBottom() }

// Len returns the number of readings.
func (s *ReadingSet) Len() int { return len(s.entries) }

// Readings returns the readings ordered by time (then by dot).
func (s *ReadingSet) Readings() []Reading {
	ds := s.entries.sorted()
	slices.SortStableFunc(ds, func(a, b Dot) int { return cmp.Compare(s.entries[a].Time, s.entries[b].Time) })
	rs := make([]Reading, len(ds))
	for i, d := range ds {
		rs[i] = s.entries[d]
	}
	return rs
}

// Each calls fn for each reading with its dot, in no particular order.
func (s *ReadingSet) Each(fn func(Dot, Reading)) {
	for d, r := range s.entries {
		fn(d, r)
	}
}

// Add returns the delta that adds the readings, one new dot each. A reading
// with a NaN or infinite value fails the whole call with ErrInvalidReading.
func (s *ReadingSet) Add(g *DotGen, rs ...Reading) (Causal, error) {
	for i, r := range rs {
		if err := r.validate(); err != nil {
			return Causal{}, fmt.Errorf("reading %d: %w", i, err)
		}
	}
	var ctx Context
	out := make(DotFun[Reading], len(rs))
	for _, r := range rs {
		d := g.Next()
		ctx.Add(d)
		out[d] = r
	}
	return delta(&ReadingSet{entries: out}, ctx), nil
}

func (s *ReadingSet) merge(o Value, c, oc *Context, m mode) Value {
	s.entries = s.entries.merge(o.(*ReadingSet).entries, c, oc, m)
	return s
}
func (*ReadingSet) empty() Value           { return new(ReadingSet) }
func (s *ReadingSet) eachDot(fn func(Dot)) { s.entries.eachDot(fn) }
