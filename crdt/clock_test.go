package crdt_test

import (
	"errors"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
)

func TestVersionVectorCompare(t *testing.T) {
	tests := []struct {
		a, b crdt.VersionVector
		want crdt.Ordering
	}{
		{nil, nil, crdt.Equal},
		{crdt.VersionVector{1: 0}, nil, crdt.Equal},
		{crdt.VersionVector{1: 2}, crdt.VersionVector{1: 2}, crdt.Equal},
		{crdt.VersionVector{1: 1}, crdt.VersionVector{1: 2}, crdt.Before},
		{nil, crdt.VersionVector{1: 1}, crdt.Before},
		{crdt.VersionVector{1: 2, 2: 1}, crdt.VersionVector{1: 2}, crdt.After},
		{crdt.VersionVector{1: 2}, crdt.VersionVector{2: 1}, crdt.Concurrent},
		{crdt.VersionVector{1: 3, 2: 1}, crdt.VersionVector{1: 2, 2: 2}, crdt.Concurrent},
	}
	for _, tc := range tests {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v vs %v: %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
	v := crdt.VersionVector{1: 1, 2: 5}
	v.Merge(crdt.VersionVector{1: 3, 3: 1})
	if v.Compare(crdt.VersionVector{1: 3, 2: 5, 3: 1}) != crdt.Equal {
		t.Errorf("merge: %v", v)
	}
}

func TestContextCompaction(t *testing.T) {
	var c crdt.Context
	for _, s := range []crdt.Seq{3, 5, 1} {
		c.Add(crdt.Dot{Replica: 1, Seq: s})
	}
	if got := c.VersionVector()[1]; got != 1 {
		t.Fatalf("prefix %d, want 1", got)
	}
	if got := c.Cloud(); len(got) != 2 {
		t.Fatalf("cloud %v, want 1:3 and 1:5", got)
	}
	c.Add(crdt.Dot{Replica: 1, Seq: 2}) // fills the gap: 1..3 contiguous
	if got := c.VersionVector()[1]; got != 3 || len(c.Cloud()) != 1 {
		t.Fatalf("after filling the gap: prefix %d cloud %v", got, c.Cloud())
	}
	if c.Contains(crdt.Dot{Replica: 1, Seq: 4}) || !c.Contains(crdt.Dot{Replica: 1, Seq: 5}) {
		t.Fatal("Contains disagrees with the dots added")
	}
	if c.Max(1) != 5 {
		t.Fatalf("Max = %d, want 5", c.Max(1))
	}

	for _, tc := range []struct {
		from, to crdt.Seq
		want     bool
	}{{1, 3, true}, {2, 2, true}, {5, 5, true}, {3, 5, false}, {4, 4, false}, {1, 6, false}, {6, 5, true}} {
		if got := c.ContainsRange(1, tc.from, tc.to); got != tc.want {
			t.Errorf("ContainsRange(1, %d, %d) = %v, want %v (prefix 3, cloud 5)", tc.from, tc.to, got, tc.want)
		}
	}

	var o crdt.Context
	o.AddRange(1, 1, 4)
	o.Add(crdt.Dot{Replica: 2, Seq: 2})
	c.Merge(&o)
	if got := c.VersionVector()[1]; got != 5 || len(c.Cloud()) != 1 {
		t.Fatalf("after merge: prefix %d cloud %v, want 5 and [2:2]", got, c.Cloud())
	}
	cl := c.Clone()
	cl.Add(crdt.Dot{Replica: 2, Seq: 1})
	if c.Equal(&cl) || !cl.Contains(crdt.Dot{Replica: 2, Seq: 2}) || cl.VersionVector()[2] != 2 {
		t.Fatal("clone is not independent or did not compact")
	}
	gen := crdt.NewDotGen(&c, 1)
	if d := gen.Next(); d != (crdt.Dot{Replica: 1, Seq: 6}) {
		t.Fatalf("next dot %v, want 1:6", d)
	}
}

// fakeClock is a settable physical clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestHLC(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	h := crdt.NewHLC(clk.now, time.Minute)

	t1 := h.Now()
	t2 := h.Now() // clock did not move: the logical counter orders them
	if t2.Compare(t1) <= 0 || t2.Wall != t1.Wall || t2.Logical != 1 {
		t.Fatalf("t1 %v t2 %v: want same wall, logical +1", t1, t2)
	}
	clk.t = clk.t.Add(-time.Hour) // clock runs backwards
	if t3 := h.Now(); t3.Compare(t2) <= 0 {
		t.Fatalf("timestamp went backwards: %v after %v", t3, t2)
	}
	clk.t = time.Unix(2000, 0)
	if t4 := h.Now(); t4.Wall != clk.t.UnixNano() || t4.Logical != 0 {
		t.Fatalf("t4 %v: want the physical time", t4)
	}

	remote := crdt.Timestamp{Wall: clk.t.Add(30 * time.Second).UnixNano(), Logical: 7}
	if err := h.Observe(remote); err != nil {
		t.Fatal(err)
	}
	if t5 := h.Now(); t5.Compare(remote) <= 0 {
		t.Fatalf("local timestamp %v does not exceed the observed %v", t5, remote)
	}

	before := h.Last()
	far := crdt.Timestamp{Wall: clk.t.Add(time.Hour).UnixNano()}
	if err := h.Observe(far); !errors.Is(err, crdt.ErrClockSkew) {
		t.Fatalf("observe %v: err %v, want ErrClockSkew", far, err)
	}
	if h.Last() != before {
		t.Fatal("a refused timestamp moved the clock")
	}

	// A board without RTC boots in 1970: restored, the clock continues.
	boot := &fakeClock{t: time.Unix(0, 0)}
	h2 := crdt.NewHLC(boot.now, time.Minute)
	h2.Restore(before)
	if got := h2.Now(); got.Compare(before) <= 0 {
		t.Fatalf("after restore %v, want > %v", got, before)
	}
}

func TestAddRangeCompacts(t *testing.T) {
	var a, b crdt.Context
	a.Add(crdt.Dot{Replica: 1, Seq: 5})
	a.AddRange(1, 1, 10)
	b.AddRange(1, 1, 10)
	if !a.Equal(&b) || len(a.Cloud()) != 0 {
		t.Fatalf("AddRange left cloud %v", a.Cloud())
	}
}
