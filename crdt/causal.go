package crdt

import "fmt"

// Causal pairs a value with a causal context: the paper's Causal⟨T⟩. It is
// both what a replica holds (a state) and what a delta-mutator returns (a
// delta: a fragment of the value plus the dots it covers). A nil Value is the
// bottom of every type.
//
// Joins never retain the other side's maps, so the argument may be reused;
// payload byte slices are shared, and are immutable.
type Causal struct {
	Value Value
	Ctx   Context
}

// Join merges another whole state y into the state x. It is the lattice
// join: commutative, associative and idempotent. Entries of x that y has
// seen (in its context) but no longer holds are removed.
func (x *Causal) Join(y Causal) error { return x.merge(y, full) }

// Apply merges the delta d into the state x. Unlike Join it touches only
// the entries d lists, so its cost is proportional to the delta, not to the
// state. It requires what every delta made by this package's mutators (and
// joined with JoinDelta) satisfies: each dot of d's context belongs to an
// entry that d lists, at every level of nesting. A delta that breaks it (a
// buggy or hostile peer's) cannot corrupt x, but may leave entries that a
// full Join would have removed.
func (x *Causal) Apply(d Causal) error { return x.merge(d, 0) }

// JoinDelta merges delta e into the delta group x. Entries that become empty
// stay listed, because in a delta they record removals.
func (x *Causal) JoinDelta(e Causal) error { return x.merge(e, keep) }

func (x *Causal) merge(y Causal, md mode) error {
	v, err := mergeValue(x.Value, &x.Ctx, y.Value, &y.Ctx, md)
	if err != nil {
		return err
	}
	x.Value = v
	x.Ctx.Merge(&y.Ctx)
	return nil
}

// Clone returns a deep copy of x.
func (x Causal) Clone() Causal {
	c := Causal{Ctx: x.Ctx.Clone()}
	if x.Value != nil {
		c.Value = Clone(x.Value)
	}
	return c
}

// delta wraps a mutator's result.
func delta(v Value, ctx Context) Causal { return Causal{Value: v, Ctx: ctx} }

// ApplyValue merges the delta value d, whose context is dc, into the state
// value v, whose context is c, and returns the result (nil when it is
// bottom). Neither context is changed: it is the primitive for a store that
// keeps the fields of a key space apart and shares one context among them.
// Merge every field of a delta with the contexts as they were before the
// delta, then merge dc into c once. v may be nil; d must not be retained.
func ApplyValue(v Value, c *Context, d Value, dc *Context) (Value, error) {
	return mergeValue(v, c, d, dc, 0)
}

// JoinValue is ApplyValue for whole states: entries of v that dc has seen
// and d lacks are removed even where d does not list them (state transfer).
func JoinValue(v Value, c *Context, d Value, dc *Context) (Value, error) {
	return mergeValue(v, c, d, dc, full)
}

func mergeValue(v Value, c *Context, d Value, dc *Context, md mode) (Value, error) {
	switch {
	case v == nil && d == nil:
	case d == nil:
		if md&full != 0 {
			v = v.merge(v.empty(), c, dc, md)
		}
	case v == nil:
		v = d.empty().merge(d, c, dc, md)
	case v.Type() != d.Type():
		return nil, fmt.Errorf("%w: cannot join %s into %s", ErrTypeMismatch, d.Type(), v.Type())
	default:
		v = v.merge(d, c, dc, md)
	}
	if v != nil && md&keep == 0 && v.IsBottom() {
		v = nil
	}
	return v, nil
}
