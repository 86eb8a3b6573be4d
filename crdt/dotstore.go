package crdt

import "slices"

// mode says how one dot store is merged into another.
type mode uint8

const (
	// full: the incoming store is a whole state, so local entries it does not
	// list are checked against its context too. Without it the merge is
	// sparse: only entries the incoming store lists are touched, which is
	// correct for deltas because every dot in a delta's context belongs to
	// an entry the delta lists (removals are listed as empty entries).
	full mode = 1 << iota
	// keep: the receiver is a delta (group), so entries that become empty
	// stay listed: they record removals. Without it they are pruned.
	keep
)

// store is what a dot store offers to the generic merge of DotMap.
type store[S any] interface {
	// merge joins o into the receiver and returns the result; c is the
	// receiver's causal context and oc is o's. It never retains o's maps.
	merge(o S, c, oc *Context, m mode) S
	// empty returns the bottom element of the receiver's kind.
	empty() S
	// IsBottom reports whether the store holds no dots.
	IsBottom() bool
	// eachDot calls f for every dot in the store.
	eachDot(f func(Dot))
}

// DotSet is a dot store of bare dots (the paper's DotSet), kept sorted and
// without duplicates. An element of an AWSet and an EWFlag are DotSets.
type DotSet []Dot

var _ store[DotSet] = DotSet(nil)

// Contains reports whether s holds d.
func (s DotSet) Contains(d Dot) bool {
	_, ok := slices.BinarySearchFunc(s, d, Dot.Compare)
	return ok
}

func (s DotSet) merge(o DotSet, c, oc *Context, _ mode) DotSet {
	out := make(DotSet, 0, len(s)+len(o))
	i, j := 0, 0
	for i < len(s) || j < len(o) {
		switch {
		case j == len(o) || (i < len(s) && s[i].Compare(o[j]) < 0):
			if !oc.Contains(s[i]) {
				out = append(out, s[i])
			}
			i++
		case i == len(s) || o[j].Compare(s[i]) < 0:
			if !c.Contains(o[j]) {
				out = append(out, o[j])
			}
			j++
		default:
			out = append(out, s[i])
			i++
			j++
		}
	}
	return out
}

func (DotSet) empty() DotSet    { return nil }
func (s DotSet) IsBottom() bool { return len(s) == 0 }
func (s DotSet) eachDot(f func(Dot)) {
	for _, d := range s {
		f(d)
	}
}

// DotFun is a dot store that maps each dot to an immutable payload (the
// paper's DotFun). Counters, registers and reading sets are DotFuns. A
// payload never changes once written under a dot, so two replicas holding
// the same dot hold the same payload.
type DotFun[V any] map[Dot]V

var _ store[DotFun[int]] = DotFun[int](nil)

func (f DotFun[V]) merge(o DotFun[V], c, oc *Context, _ mode) DotFun[V] {
	if f == nil {
		f = make(DotFun[V], len(o))
	}
	// Drop local entries the other side has seen but no longer holds. When
	// the other context is small (a delta), walk it instead of the whole
	// local store, which makes applying a delta cost O(delta).
	if n := oc.Len(); n < len(f) {
		oc.eachDot(func(d Dot) {
			if _, ok := o[d]; !ok {
				delete(f, d)
			}
		})
	} else {
		for d := range f {
			if _, ok := o[d]; !ok && oc.Contains(d) {
				delete(f, d)
			}
		}
	}
	for d, v := range o {
		if _, ok := f[d]; !ok && !c.Contains(d) {
			f[d] = v
		}
	}
	return f
}

func (DotFun[V]) empty() DotFun[V] { return nil }

// IsBottom reports whether f holds no dots.
func (f DotFun[V]) IsBottom() bool { return len(f) == 0 }
func (f DotFun[V]) eachDot(fn func(Dot)) {
	for d := range f {
		fn(d)
	}
}

// sorted returns the dots of f in ascending order.
func (f DotFun[V]) sorted() []Dot {
	ds := make([]Dot, 0, len(f))
	for d := range f {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, Dot.Compare)
	return ds
}

// DotMap is a dot store that maps keys to nested dot stores (the paper's
// DotMap). AWSet maps elements to DotSets; ORMap maps fields to CRDT values.
type DotMap[K comparable, S store[S]] map[K]S

func (m DotMap[K, S]) merge(o DotMap[K, S], c, oc *Context, md mode) DotMap[K, S] {
	if m == nil {
		m = make(DotMap[K, S], len(o))
	}
	for k, ov := range o {
		mv, ok := m[k]
		if !ok {
			mv = ov.empty()
		}
		m.put(k, mv.merge(ov, c, oc, md), md)
	}
	if md&full != 0 {
		for k, mv := range m {
			if _, ok := o[k]; !ok {
				m.put(k, mv.merge(mv.empty(), c, oc, md), md)
			}
		}
	}
	return m
}

// put stores v under k, or prunes k when v is empty and the mode allows.
func (m DotMap[K, S]) put(k K, v S, md mode) {
	if v.IsBottom() && md&keep == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

func (DotMap[K, S]) empty() DotMap[K, S] { return nil }

// IsBottom reports whether no key of m holds a dot.
func (m DotMap[K, S]) IsBottom() bool {
	for _, v := range m {
		if !v.IsBottom() {
			return false
		}
	}
	return true
}

func (m DotMap[K, S]) eachDot(f func(Dot)) {
	for _, v := range m {
		v.eachDot(f)
	}
}
