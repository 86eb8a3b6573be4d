package engine

import "github.com/edged-dev/edged/crdt"

// Constructors of the common operations.

// Add adds by (which may be negative) to the counter name.
func Add(name string, by int64) Op {
	return Op{Name: name, Type: crdt.TypePNCounter, Mutate: func(v crdt.Value, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.PNCounter).Add(g, by)
	}}
}

// Set writes value to the last-writer-wins register name.
func Set(name string, value []byte) Op {
	return Op{Name: name, Type: crdt.TypeLWWRegister, Mutate: func(v crdt.Value, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.LWWRegister).Set(g, now, value), nil
	}}
}

// SetMV writes value to the multi-value register name.
func SetMV(name string, value []byte) Op {
	return Op{Name: name, Type: crdt.TypeMVRegister, Mutate: func(v crdt.Value, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.MVRegister).Set(g, value), nil
	}}
}

// AddElems adds elements to the set name.
func AddElems(name string, elems ...string) Op {
	return Op{Name: name, Type: crdt.TypeAWSet, Mutate: func(v crdt.Value, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.AWSet).Add(g, elems...), nil
	}}
}

// RemoveElems removes elements from the set name.
func RemoveElems(name string, elems ...string) Op {
	named := 0
	for _, e := range elems {
		named += len(e) + elemOverhead
	}
	return Op{Name: name, Type: crdt.TypeAWSet, Mutate: func(v crdt.Value, _ *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.AWSet).Remove(elems...), nil
	}, named: named}
}

// elemOverhead bounds what a set's delta adds to an element it names: the
// element's header and an empty set of dots.
const elemOverhead = 8

// Enable enables (on) or disables the flag name.
func Enable(name string, on bool) Op {
	return Op{Name: name, Type: crdt.TypeEWFlag, Mutate: func(v crdt.Value, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		if on {
			return v.(*crdt.EWFlag).Enable(g), nil
		}
		return v.(*crdt.EWFlag).Disable(), nil
	}}
}

// AddReadings appends readings to the reading set name.
func AddReadings(name string, rs ...crdt.Reading) Op {
	return Op{Name: name, Type: crdt.TypeReadingSet, Mutate: func(v crdt.Value, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
		return v.(*crdt.ReadingSet).Add(g, rs...)
	}}
}

// Remove removes name, of whatever type.
func Remove(name string) Op { return Op{Name: name, Remove: true} }
