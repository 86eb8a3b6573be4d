package crdt

import (
	"fmt"
	"math"
)

// GCounter is a grow-only counter. Each replica owns one entry, tagged with
// the dot of its latest increment, holding its running total; an increment
// replaces the replica's entry. The value is the sum of the entries.
//
// Inside an ORMap a counter can be removed, which resets the entries the
// remover observed. A replica that increments concurrently with the removal
// keeps its whole running total, because its new entry replaces the old one
// rather than adding to it (the semantics of Riak's embedded counters).
type GCounter struct{ entries DotFun[uint64] }

var _ Value = (*GCounter)(nil)

// Type returns TypeGCounter.
func (*GCounter) Type() Type { return TypeGCounter }

// IsBottom reports whether the counter has no entries.
func (c *GCounter) IsBottom() bool { return c.entries.IsBottom() }

// Value returns the count, saturating at math.MaxUint64.
func (c *GCounter) Value() uint64 {
	var sum uint64
	for _, n := range c.entries {
		sum = addSat(sum, n)
	}
	return sum
}

// Inc returns the delta that adds n to the counter on g's replica.
func (c *GCounter) Inc(g *DotGen, n uint64) (Causal, error) {
	entries, ctx, err := replaceOwn(c.entries, g, func(old uint64) (uint64, error) {
		if old > math.MaxUint64-n {
			return 0, fmt.Errorf("%w: %d + %d", ErrOverflow, old, n)
		}
		return old + n, nil
	})
	return delta(&GCounter{entries: entries}, ctx), err
}

func (c *GCounter) merge(o Value, cc, oc *Context, m mode) Value {
	c.entries = c.entries.merge(o.(*GCounter).entries, cc, oc, m)
	return c
}
func (*GCounter) empty() Value           { return new(GCounter) }
func (c *GCounter) eachDot(fn func(Dot)) { c.entries.eachDot(fn) }

// PNCounter is a counter that can be incremented and decremented: each
// replica's entry holds its running totals of increments and decrements.
// Removal inside an ORMap behaves as for GCounter.
type PNCounter struct{ entries DotFun[PN] }

// PN is one replica's running totals in a PNCounter.
type PN struct{ Inc, Dec uint64 }

var _ Value = (*PNCounter)(nil)

// Type returns TypePNCounter.
func (*PNCounter) Type() Type { return TypePNCounter }

// IsBottom reports whether the counter has no entries.
func (c *PNCounter) IsBottom() bool { return c.entries.IsBottom() }

// Value returns increments minus decrements, saturating at the int64 range.
func (c *PNCounter) Value() int64 {
	var inc, dec uint64
	for _, e := range c.entries {
		inc, dec = addSat(inc, e.Inc), addSat(dec, e.Dec)
	}
	if inc >= dec {
		return int64(min(inc-dec, math.MaxInt64))
	}
	return -int64(min(dec-inc, math.MaxInt64))
}

// Add returns the delta that adds n (which may be negative) on g's replica.
func (c *PNCounter) Add(g *DotGen, n int64) (Causal, error) {
	entries, ctx, err := replaceOwn(c.entries, g, func(old PN) (PN, error) {
		by, total := uint64(n), &old.Inc
		if n < 0 {
			by, total = uint64(-(n+1))+1, &old.Dec
		}
		if *total > math.MaxUint64-by {
			return PN{}, fmt.Errorf("%w: %d + %d", ErrOverflow, *total, by)
		}
		*total += by
		return old, nil
	})
	return delta(&PNCounter{entries: entries}, ctx), err
}

func (c *PNCounter) merge(o Value, cc, oc *Context, m mode) Value {
	c.entries = c.entries.merge(o.(*PNCounter).entries, cc, oc, m)
	return c
}
func (*PNCounter) empty() Value           { return new(PNCounter) }
func (c *PNCounter) eachDot(fn func(Dot)) { c.entries.eachDot(fn) }

// replaceOwn builds the delta that replaces the entry of g's replica in f
// with next(old entry), under a new dot. The delta's context covers the old
// entry's dot, so joining it drops the old entry everywhere.
func replaceOwn[V any](f DotFun[V], g *DotGen, next func(V) (V, error)) (DotFun[V], Context, error) {
	var (
		ctx  Context
		old  V
		last Seq
	)
	for d, v := range f {
		if d.Replica == g.Replica() {
			ctx.Add(d)
			if d.Seq > last { // a replica has one entry; be deterministic anyway
				old, last = v, d.Seq
			}
		}
	}
	v, err := next(old)
	if err != nil {
		return nil, Context{}, err
	}
	d := g.Next()
	ctx.Add(d)
	return DotFun[V]{d: v}, ctx, nil
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
