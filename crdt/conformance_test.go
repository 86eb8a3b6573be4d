package crdt_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/edged-dev/edged/crdt"
)

// Conformance scenarios from the published reference implementations of
// delta CRDTs (Almeida et al.'s delta-enabled-crdts, Riak DT, Automerge's
// and Akka's OR-set/OR-map tests), ported as scenarios and expected values.

const (
	rA crdt.ReplicaID = 0xA
	rB crdt.ReplicaID = 0xB
	rC crdt.ReplicaID = 0xC
)

// node is a replica in a scenario: its state and an op helper.
type node struct {
	id crdt.ReplicaID
	x  crdt.Causal
}

func newNode(id crdt.ReplicaID, typ crdt.Type) *node {
	v, err := crdt.New(typ)
	if err != nil {
		panic(err)
	}
	return &node{id: id, x: crdt.Causal{Value: v}}
}

func (n *node) gen() *crdt.DotGen { return crdt.NewDotGen(&n.x.Ctx, n.id) }

// do applies a delta made by op to the node and returns it for shipping.
func (n *node) do(t testing.TB, d crdt.Causal) crdt.Causal {
	t.Helper()
	if err := n.x.Apply(d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (n *node) apply(t testing.TB, ds ...crdt.Causal) {
	t.Helper()
	for _, d := range ds {
		if err := n.x.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *node) join(t testing.TB, o *node) {
	t.Helper()
	if err := n.x.Join(o.x.Clone()); err != nil {
		t.Fatal(err)
	}
}

// value returns the node's value as a Value of its type, empty if bottom.
func value[T crdt.Value](n *node, typ crdt.Type) T {
	if n.x.Value == nil {
		v, _ := crdt.New(typ)
		return v.(T)
	}
	return n.x.Value.(T)
}

func set(n *node) *crdt.AWSet { return value[*crdt.AWSet](n, crdt.TypeAWSet) }

func TestAWSetAddWins(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b *node)
		want []string
	}{
		{"concurrent add and remove of an observed element: add wins", func(t *testing.T, a, b *node) {
			d := a.do(t, set(a).Add(a.gen(), "x"))
			b.apply(t, d)
			rm := a.do(t, set(a).Remove("x"))
			add := b.do(t, set(b).Add(b.gen(), "x"))
			a.apply(t, add)
			b.apply(t, rm)
		}, []string{"x"}},
		{"remove after observing every add: removed", func(t *testing.T, a, b *node) {
			b.apply(t, a.do(t, set(a).Add(a.gen(), "x")))
			a.apply(t, b.do(t, set(b).Add(b.gen(), "x")))
			b.apply(t, a.do(t, set(a).Remove("x")))
		}, nil},
		{"remove of an unobserved element does nothing", func(t *testing.T, a, b *node) {
			rm := b.do(t, set(b).Remove("x"))
			a.do(t, set(a).Add(a.gen(), "x"))
			a.apply(t, rm)
			b.join(t, a)
		}, []string{"x"}},
		{"concurrent removes of an element both observed", func(t *testing.T, a, b *node) {
			b.apply(t, a.do(t, set(a).Add(a.gen(), "x", "y")))
			r1 := a.do(t, set(a).Remove("x"))
			r2 := b.do(t, set(b).Remove("x"))
			a.apply(t, r2)
			b.apply(t, r1)
		}, []string{"y"}},
		{"re-add after remove", func(t *testing.T, a, b *node) {
			a.do(t, set(a).Add(a.gen(), "x"))
			a.do(t, set(a).Remove("x"))
			a.do(t, set(a).Add(a.gen(), "x"))
			b.join(t, a)
		}, []string{"x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(rA, crdt.TypeAWSet), newNode(rB, crdt.TypeAWSet)
			tc.run(t, a, b)
			a.join(t, b)
			b.join(t, a)
			for _, n := range []*node{a, b} {
				if got := set(n).Elements(); !slices.Equal(got, tc.want) {
					t.Errorf("replica %s: elements %q, want %q", n.id, got, tc.want)
				}
			}
		})
	}
}

func TestMVRegisterConcurrentWrites(t *testing.T) {
	mv := func(n *node) *crdt.MVRegister { return value[*crdt.MVRegister](n, crdt.TypeMVRegister) }
	values := func(n *node) []string {
		var vs []string
		for _, v := range mv(n).Values() {
			vs = append(vs, string(v))
		}
		return vs
	}
	a, b, c := newNode(rA, crdt.TypeMVRegister), newNode(rB, crdt.TypeMVRegister), newNode(rC, crdt.TypeMVRegister)
	wa := a.do(t, mv(a).Set(a.gen(), []byte("a")))
	wb := b.do(t, mv(b).Set(b.gen(), []byte("b")))
	a.apply(t, wb)
	b.apply(t, wa)
	c.apply(t, wb, wa)
	for _, n := range []*node{a, b, c} {
		if got := values(n); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("after concurrent writes replica %s holds %q, want both", n.id, got)
		}
	}
	wc := c.do(t, mv(c).Set(c.gen(), []byte("c")))
	a.apply(t, wc)
	b.apply(t, wc, wc) // duplicated
	for _, n := range []*node{a, b, c} {
		if got := values(n); !slices.Equal(got, []string{"c"}) {
			t.Fatalf("after the overwriting write replica %s holds %q, want [c]", n.id, got)
		}
	}
}

func TestLWWRegisterTieBreak(t *testing.T) {
	lww := func(n *node) *crdt.LWWRegister { return value[*crdt.LWWRegister](n, crdt.TypeLWWRegister) }
	ts := crdt.Timestamp{Wall: 100}
	a, b := newNode(rA, crdt.TypeLWWRegister), newNode(rB, crdt.TypeLWWRegister)
	wa := a.do(t, lww(a).Set(a.gen(), ts, []byte("from A")))
	wb := b.do(t, lww(b).Set(b.gen(), ts, []byte("from B")))
	a.apply(t, wb)
	b.apply(t, wa)
	for _, n := range []*node{a, b} {
		if got, _, _ := lww(n).Get(); string(got) != "from B" {
			t.Errorf("replica %s: %q, want the larger replica ID's write", n.id, got)
		}
	}
	// A later timestamp wins over a larger replica ID.
	a.do(t, lww(a).Set(a.gen(), crdt.Timestamp{Wall: 100, Logical: 1}, []byte("later")))
	b.join(t, a)
	if got, _, _ := lww(b).Get(); string(got) != "later" {
		t.Errorf("got %q, want the later write", got)
	}
}

func TestEWFlagEnableWins(t *testing.T) {
	flag := func(n *node) *crdt.EWFlag { return value[*crdt.EWFlag](n, crdt.TypeEWFlag) }
	a, b := newNode(rA, crdt.TypeEWFlag), newNode(rB, crdt.TypeEWFlag)
	b.apply(t, a.do(t, flag(a).Enable(a.gen())))
	off := a.do(t, flag(a).Disable())
	on := b.do(t, flag(b).Enable(b.gen()))
	a.apply(t, on)
	b.apply(t, off)
	if !flag(a).Enabled() || !flag(b).Enabled() {
		t.Fatal("concurrent enable and disable: want enabled")
	}
	a.apply(t, a.do(t, flag(a).Disable()))
	b.join(t, a)
	if flag(b).Enabled() {
		t.Fatal("disable after observing every enable: want disabled")
	}
}

func TestORMapRemoveConcurrentWithUpdate(t *testing.T) {
	m := func(n *node) *crdt.ORMap { return value[*crdt.ORMap](n, crdt.TypeORMap) }
	f := crdt.Field{Name: "tags", Type: crdt.TypeAWSet}
	addTo := func(n *node, elems ...string) crdt.Causal {
		d, err := m(n).Update(f, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.AWSet).Add(n.gen(), elems...), nil })
		if err != nil {
			t.Fatal(err)
		}
		return n.do(t, d)
	}
	a, b := newNode(rA, crdt.TypeORMap), newNode(rB, crdt.TypeORMap)
	b.apply(t, addTo(a, "x"))
	rm := a.do(t, m(a).Remove("tags"))
	up := addTo(b, "y")
	a.apply(t, up)
	b.apply(t, rm)
	for _, n := range []*node{a, b} {
		v, ok := m(n).Get("tags")
		if !ok {
			t.Fatalf("replica %s: field removed, want the concurrent update to survive", n.id)
		}
		if got := v.(*crdt.AWSet).Elements(); !slices.Equal(got, []string{"y"}) {
			t.Fatalf("replica %s: %q, want only the concurrent update [y]", n.id, got)
		}
	}
}

func TestORMapTypeConflict(t *testing.T) {
	m := func(n *node) *crdt.ORMap { return value[*crdt.ORMap](n, crdt.TypeORMap) }
	a, b := newNode(rA, crdt.TypeORMap), newNode(rB, crdt.TypeORMap)
	da, err := m(a).Update(crdt.Field{Name: "k", Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) {
		return v.(*crdt.PNCounter).Add(a.gen(), 5)
	})
	must(t, err)
	db, err := m(b).Update(crdt.Field{Name: "k", Type: crdt.TypeLWWRegister}, func(v crdt.Value) (crdt.Causal, error) {
		return v.(*crdt.LWWRegister).Set(b.gen(), crdt.Timestamp{Wall: 1}, []byte("s")), nil
	})
	must(t, err)
	a.do(t, da)
	b.do(t, db)
	a.apply(t, db)
	b.apply(t, da)
	for _, n := range []*node{a, b} {
		v, _ := m(n).Get("k")
		if v.Type() != crdt.TypeLWWRegister {
			t.Fatalf("replica %s shows %s, want the higher type register on every replica", n.id, v.Type())
		}
		if fs := m(n).Fields(); len(fs) != 2 {
			t.Fatalf("replica %s: fields %v, want both kept", n.id, fs)
		}
	}
	a.apply(t, a.do(t, m(a).Remove("k")))
	if !m(a).IsBottom() {
		t.Fatalf("remove of the name left %v", m(a).Fields())
	}
}

func TestCounterIdempotentJoins(t *testing.T) {
	gc := func(n *node) *crdt.GCounter { return value[*crdt.GCounter](n, crdt.TypeGCounter) }
	pn := func(n *node) *crdt.PNCounter { return value[*crdt.PNCounter](n, crdt.TypePNCounter) }
	a, b := newNode(rA, crdt.TypeGCounter), newNode(rB, crdt.TypeGCounter)
	for range 3 {
		d, err := gc(a).Inc(a.gen(), 2)
		must(t, err)
		a.do(t, d)
	}
	d, err := gc(b).Inc(b.gen(), 1)
	must(t, err)
	b.do(t, d)
	for range 5 {
		a.join(t, b)
		b.join(t, a)
		b.apply(t, d)
	}
	if gc(a).Value() != 7 || gc(b).Value() != 7 {
		t.Fatalf("gcounter after repeated joins: %d and %d, want 7", gc(a).Value(), gc(b).Value())
	}

	p, q := newNode(rA, crdt.TypePNCounter), newNode(rB, crdt.TypePNCounter)
	for _, by := range []int64{10, -3, -3} {
		d, err := pn(p).Add(p.gen(), by)
		must(t, err)
		q.apply(t, p.do(t, d), d)
	}
	q.join(t, p)
	p.join(t, q)
	if pn(p).Value() != 4 || pn(q).Value() != 4 {
		t.Fatalf("pncounter: %d and %d, want 4", pn(p).Value(), pn(q).Value())
	}
}

func TestCounterOverflow(t *testing.T) {
	c := newNode(rA, crdt.TypeGCounter)
	d, err := value[*crdt.GCounter](c, crdt.TypeGCounter).Inc(c.gen(), ^uint64(0))
	must(t, err)
	c.do(t, d)
	if _, err := value[*crdt.GCounter](c, crdt.TypeGCounter).Inc(c.gen(), 1); err == nil {
		t.Fatal("increment past 2^64-1 succeeded")
	}
}

// TestOutOfOrderAddAddRemove delivers add(x)@A, add(x)@B and a remove of x
// that observed both, in all 6 orders, to a third replica.
func TestOutOfOrderAddAddRemove(t *testing.T) {
	a, b := newNode(rA, crdt.TypeAWSet), newNode(rB, crdt.TypeAWSet)
	addA := a.do(t, set(a).Add(a.gen(), "x"))
	addB := b.do(t, set(b).Add(b.gen(), "x"))
	a.apply(t, addB)
	rm := a.do(t, set(a).Remove("x"))
	deltas := []crdt.Causal{addA, addB, rm}
	for _, order := range [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			c := newNode(rC, crdt.TypeAWSet)
			for _, i := range order {
				c.apply(t, deltas[i])
			}
			if set(c).Contains("x") {
				t.Fatalf("x present after order %v", order)
			}
			if !equal(t, c.x, a.x) {
				t.Fatalf("state differs from the remover's")
			}
		})
	}
}

// TestCounterRemoveConcurrentWithInc pins the documented reset semantics of
// counters inside a map: the concurrent incrementer keeps its whole total.
func TestCounterRemoveConcurrentWithInc(t *testing.T) {
	m := func(n *node) *crdt.ORMap { return value[*crdt.ORMap](n, crdt.TypeORMap) }
	f := crdt.Field{Name: "hits", Type: crdt.TypeGCounter}
	inc := func(n *node, by uint64) crdt.Causal {
		d, err := m(n).Update(f, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.GCounter).Inc(n.gen(), by) })
		must(t, err)
		return n.do(t, d)
	}
	a, b := newNode(rA, crdt.TypeORMap), newNode(rB, crdt.TypeORMap)
	a.apply(t, inc(b, 5))
	a.apply(t, inc(a, 2))
	b.join(t, a)
	rm := a.do(t, m(a).Remove("hits"))
	up := inc(b, 1)
	a.apply(t, up)
	b.apply(t, rm)
	for _, n := range []*node{a, b} {
		v, ok := m(n).Get("hits")
		if !ok || v.(*crdt.GCounter).Value() != 6 {
			t.Fatalf("replica %s: %v, want B's running total 6 (A's 2 reset)", n.id, v)
		}
	}
}

func TestReadingSetRejectsNaN(t *testing.T) {
	var s crdt.ReadingSet
	var ctx crdt.Context
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := s.Add(crdt.NewDotGen(&ctx, rA), crdt.Reading{Time: 1, Value: 1}, crdt.Reading{Time: 2, Value: bad})
		if !errors.Is(err, crdt.ErrInvalidReading) {
			t.Errorf("reading %v: err %v, want ErrInvalidReading", bad, err)
		}
	}
}
