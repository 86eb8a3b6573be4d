package crdt

import (
	"maps"
	"slices"
)

// VersionVector maps each replica to the length of the contiguous prefix of
// its events that has been seen: {r: n} means dots r:1 … r:n. A missing
// replica means zero. The zero value (nil) is an empty vector for reading;
// use make or Clone before writing.
type VersionVector map[ReplicaID]Seq

// Ordering is the causal relation between two version vectors.
type Ordering int

// The outcomes of VersionVector.Compare.
const (
	Equal      Ordering = iota // both have seen exactly the same events
	Before                     // the receiver has seen a strict subset
	After                      // the receiver has seen a strict superset
	Concurrent                 // each has seen an event the other has not
)

var orderingNames = [...]string{"equal", "before", "after", "concurrent"}

// String names the ordering.
func (o Ordering) String() string { return orderingNames[o] }

// Compare returns how v relates causally to o.
func (v VersionVector) Compare(o VersionVector) Ordering {
	less, greater := false, false
	for r, n := range v {
		if m := o[r]; n > m {
			greater = true
		} else if n < m {
			less = true
		}
	}
	for r, m := range o {
		if _, ok := v[r]; !ok && m > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Contains reports whether v has seen dot d.
func (v VersionVector) Contains(d Dot) bool { return d.Seq != 0 && d.Seq <= v[d.Replica] }

// Merge raises every entry of v to at least o's (the pointwise maximum).
func (v VersionVector) Merge(o VersionVector) {
	for r, m := range o {
		if m > v[r] {
			v[r] = m
		}
	}
}

// Clone returns a copy of v that shares no memory with it.
func (v VersionVector) Clone() VersionVector {
	c := make(VersionVector, len(v))
	maps.Copy(c, v)
	return c
}

// Replicas returns the replicas with a non-zero entry, in ascending order.
func (v VersionVector) Replicas() []ReplicaID {
	rs := make([]ReplicaID, 0, len(v))
	for r, n := range v {
		if n > 0 {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	return rs
}
