package crdt

import (
	"math"
	"slices"
)

// Context is a causal context: the set of dots a replica has seen, whether
// their entries are still present or were removed. It is stored compactly as
// a version vector of contiguous prefixes plus a dot cloud for the rare dots
// seen out of order; every operation keeps it compacted, so a dot is in the
// cloud only while a gap separates it from its replica's prefix.
//
// The zero value is an empty context ready to use. A Context is not safe for
// concurrent use; copy it with Clone before handing it to another owner.
type Context struct {
	vv    VersionVector
	cloud map[Dot]struct{}
}

// Contains reports whether the context has seen d.
func (c *Context) Contains(d Dot) bool {
	if c.vv.Contains(d) {
		return true
	}
	_, ok := c.cloud[d]
	return ok
}

// ContainsRange reports whether the context has seen every dot r:from …
// r:to (true when the range is empty).
func (c *Context) ContainsRange(r ReplicaID, from, to Seq) bool {
	from = max(from, c.vv[r]+1)
	if from > to {
		return true
	}
	n := Seq(0)
	for d := range c.cloud {
		if d.Replica == r && d.Seq >= from && d.Seq <= to {
			n++
		}
	}
	return n == to-from+1
}

// Max returns the largest sequence number of replica r that the context has
// seen, in its prefix or its cloud.
func (c *Context) Max(r ReplicaID) Seq {
	m := c.vv[r]
	for d := range c.cloud {
		if d.Replica == r && d.Seq > m {
			m = d.Seq
		}
	}
	return m
}

// Prefix returns the end of r's contiguous prefix: every dot of r up to it
// has been seen (the version vector's entry for r).
func (c *Context) Prefix(r ReplicaID) Seq { return c.vv[r] }

// Add records that d has been seen.
func (c *Context) Add(d Dot) {
	if !d.valid() || c.Contains(d) {
		return
	}
	if d.Seq == c.vv[d.Replica]+1 {
		if c.vv == nil {
			c.vv = make(VersionVector)
		}
		c.vv[d.Replica] = d.Seq
		c.absorb(d.Replica)
		return
	}
	if c.cloud == nil {
		c.cloud = make(map[Dot]struct{})
	}
	c.cloud[d] = struct{}{}
}

// AddRange records that dots r:from … r:to have been seen.
func (c *Context) AddRange(r ReplicaID, from, to Seq) {
	if from == 0 {
		from = 1
	}
	if from <= c.vv[r]+1 && to > c.vv[r] {
		if c.vv == nil {
			c.vv = make(VersionVector)
		}
		c.vv[r] = to
		for d := range c.cloud { // now covered by the prefix
			if d.Replica == r && d.Seq <= to {
				delete(c.cloud, d)
			}
		}
		c.absorb(r)
		return
	}
	for s := from; s <= to && s >= from; s++ {
		c.Add(Dot{Replica: r, Seq: s})
	}
}

// Merge adds every dot of o to c.
func (c *Context) Merge(o *Context) {
	grown := false
	for r, n := range o.vv {
		if n > c.vv[r] {
			if c.vv == nil {
				c.vv = make(VersionVector, len(o.vv))
			}
			c.vv[r] = n
			grown = true
		}
	}
	if grown {
		for d := range c.cloud {
			if c.vv.Contains(d) {
				delete(c.cloud, d)
			}
		}
		for r := range o.vv {
			c.absorb(r)
		}
	}
	for d := range o.cloud {
		c.Add(d)
	}
}

// absorb moves cloud dots of r that continue r's prefix into the prefix.
func (c *Context) absorb(r ReplicaID) {
	if len(c.cloud) == 0 {
		return
	}
	for {
		next := Dot{Replica: r, Seq: c.vv[r] + 1}
		if _, ok := c.cloud[next]; !ok {
			return
		}
		delete(c.cloud, next)
		c.vv[r] = next.Seq
	}
}

// VersionVector returns a copy of the contiguous prefix of the context.
// Dots in the cloud are not in it.
func (c *Context) VersionVector() VersionVector { return c.vv.Clone() }

// Cloud returns the dots seen beyond the contiguous prefixes, sorted.
func (c *Context) Cloud() []Dot {
	ds := make([]Dot, 0, len(c.cloud))
	for d := range c.cloud {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, Dot.Compare)
	return ds
}

// Clone returns a copy of c that shares no memory with it.
func (c *Context) Clone() Context {
	var o Context
	if len(c.vv) > 0 {
		o.vv = c.vv.Clone()
	}
	if len(c.cloud) > 0 {
		o.cloud = make(map[Dot]struct{}, len(c.cloud))
		for d := range c.cloud {
			o.cloud[d] = struct{}{}
		}
	}
	return o
}

// Equal reports whether c and o contain the same dots.
func (c *Context) Equal(o *Context) bool {
	if len(c.cloud) != len(o.cloud) || c.vv.Compare(o.vv) != Equal {
		return false
	}
	for d := range c.cloud {
		if _, ok := o.cloud[d]; !ok {
			return false
		}
	}
	return true
}

// Len returns the number of dots in c, saturating at math.MaxInt.
func (c *Context) Len() int {
	n := uint64(len(c.cloud))
	for _, s := range c.vv {
		if uint64(s) >= math.MaxInt-n {
			return math.MaxInt
		}
		n += uint64(s)
	}
	return int(n)
}

// eachDot calls f for every dot in c. Use it only when size is small.
func (c *Context) eachDot(f func(Dot)) {
	for r, n := range c.vv {
		for s := Seq(1); s <= n; s++ {
			f(Dot{Replica: r, Seq: s})
		}
	}
	for d := range c.cloud {
		f(d)
	}
}
