package crdt

import (
	"bytes"
	"slices"
)

// LWWRegister is a last-writer-wins register. A write overwrites every
// value it has observed; of concurrent writes, the one with the larger HLC
// timestamp wins, and the larger replica ID breaks a tie. Because the HLC
// timestamp of a write exceeds everything its replica has seen, a write
// always beats the writes it observed.
type LWWRegister struct{ entries DotFun[Stamped] }

// Stamped is an LWWRegister entry: a value and the time it was written.
type Stamped struct {
	Time  Timestamp
	Value []byte
}

var _ Value = (*LWWRegister)(nil)

// Type returns TypeLWWRegister.
func (*LWWRegister) Type() Type { return TypeLWWRegister }

// IsBottom reports whether the register holds no value.
func (r *LWWRegister) IsBottom() bool { return r.entries.IsBottom() }

// Get returns the winning value and its timestamp; ok is false when the
// register is empty.
func (r *LWWRegister) Get() (v []byte, t Timestamp, ok bool) {
	var best Dot
	for d, e := range r.entries {
		if !ok || lwwLess(r.entries[best].Time, best, e.Time, d) {
			best, ok = d, true
		}
	}
	if !ok {
		return nil, Timestamp{}, false
	}
	e := r.entries[best]
	return e.Value, e.Time, true
}

// lwwLess orders concurrent writes: by timestamp, then replica, then dot.
func lwwLess(t1 Timestamp, d1 Dot, t2 Timestamp, d2 Dot) bool {
	if c := t1.Compare(t2); c != 0 {
		return c < 0
	}
	return d1.Compare(d2) < 0
}

// Set returns the delta that writes v at time t (from the replica's HLC).
func (r *LWWRegister) Set(g *DotGen, t Timestamp, v []byte) Causal {
	entries, ctx := overwrite(r.entries, g, Stamped{Time: t, Value: v})
	return delta(&LWWRegister{entries: entries}, ctx)
}

func (r *LWWRegister) merge(o Value, c, oc *Context, m mode) Value {
	r.entries = r.entries.merge(o.(*LWWRegister).entries, c, oc, m)
	return r
}
func (*LWWRegister) empty() Value           { return new(LWWRegister) }
func (r *LWWRegister) eachDot(fn func(Dot)) { r.entries.eachDot(fn) }

// MVRegister is a multi-value register: a write overwrites the values it has
// observed, and concurrent writes are all kept until a later write
// overwrites them together.
type MVRegister struct{ entries DotFun[[]byte] }

var _ Value = (*MVRegister)(nil)

// Type returns TypeMVRegister.
func (*MVRegister) Type() Type { return TypeMVRegister }

// IsBottom reports whether the register holds no value.
func (r *MVRegister) IsBottom() bool { return r.entries.IsBottom() }

// Values returns the concurrent values, sorted bytewise, without duplicates.
func (r *MVRegister) Values() [][]byte {
	vs := make([][]byte, 0, len(r.entries))
	for _, v := range r.entries {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, bytes.Compare)
	return slices.CompactFunc(vs, bytes.Equal)
}

// Set returns the delta that writes v, overwriting every observed value.
func (r *MVRegister) Set(g *DotGen, v []byte) Causal {
	entries, ctx := overwrite(r.entries, g, v)
	return delta(&MVRegister{entries: entries}, ctx)
}

func (r *MVRegister) merge(o Value, c, oc *Context, m mode) Value {
	r.entries = r.entries.merge(o.(*MVRegister).entries, c, oc, m)
	return r
}
func (*MVRegister) empty() Value           { return new(MVRegister) }
func (r *MVRegister) eachDot(fn func(Dot)) { r.entries.eachDot(fn) }

// overwrite builds the delta that replaces every entry of f with v under a
// new dot: its context covers all observed entries.
func overwrite[V any](f DotFun[V], g *DotGen, v V) (DotFun[V], Context) {
	var ctx Context
	f.eachDot(ctx.Add)
	d := g.Next()
	ctx.Add(d)
	return DotFun[V]{d: v}, ctx
}
