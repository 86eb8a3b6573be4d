package crdt

import (
	"slices"
)

// AWSet is an add-wins observed-remove set of strings. Each element carries
// the dots of the adds that created it; a remove drops the dots it has
// observed, so an add concurrent with a remove survives.
type AWSet struct{ elems DotMap[string, DotSet] }

var _ Value = (*AWSet)(nil)

// Type returns TypeAWSet.
func (*AWSet) Type() Type { return TypeAWSet }

// IsBottom reports whether the set is empty.
func (s *AWSet) IsBottom() bool { return s.elems.IsBottom() }

// Contains reports whether e is in the set.
func (s *AWSet) Contains(e string) bool { return !s.elems[e].IsBottom() }

// Len returns the number of elements.
func (s *AWSet) Len() int { return len(s.elems) }

// Elements returns the elements in ascending order.
func (s *AWSet) Elements() []string {
	es := make([]string, 0, len(s.elems))
	for e, ds := range s.elems {
		if !ds.IsBottom() {
			es = append(es, e)
		}
	}
	slices.Sort(es)
	return es
}

// Add returns the delta that adds the elements, one new dot each.
func (s *AWSet) Add(g *DotGen, elems ...string) Causal {
	var ctx Context
	out := make(DotMap[string, DotSet], len(elems))
	for _, e := range elems {
		if _, dup := out[e]; dup {
			continue
		}
		s.elems[e].eachDot(ctx.Add)
		d := g.Next()
		ctx.Add(d)
		out[e] = DotSet{d}
	}
	return delta(&AWSet{elems: out}, ctx)
}

// Remove returns the delta that removes the elements, as far as observed.
func (s *AWSet) Remove(elems ...string) Causal {
	var ctx Context
	out := make(DotMap[string, DotSet], len(elems))
	for _, e := range elems {
		s.elems[e].eachDot(ctx.Add)
		out[e] = nil
	}
	return delta(&AWSet{elems: out}, ctx)
}

func (s *AWSet) merge(o Value, c, oc *Context, m mode) Value {
	s.elems = s.elems.merge(o.(*AWSet).elems, c, oc, m)
	return s
}
func (*AWSet) empty() Value           { return new(AWSet) }
func (s *AWSet) eachDot(fn func(Dot)) { s.elems.eachDot(fn) }
