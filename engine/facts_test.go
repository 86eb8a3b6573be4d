package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

func TestDoAllIsOneAtomicOperation(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 1)
	ctx := context.Background()
	vs, err := e.DoAll(ctx, engine.Add("c", 2), engine.Set("r", []byte("x")), engine.Add("c", 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := vs[2].(*crdt.PNCounter).Value(); got != 5 {
		t.Errorf("third op sees counter %d, want 5 (the first op's effect included)", got)
	}
	var es []store.Entry
	db.AllEntries(func(en store.Entry) error { es = append(es, en); return nil })
	if len(es) != 1 || es[0].First != 1 || es[0].Last != 3 {
		t.Fatalf("log %v, want one entry with dots 1-3", es)
	}

	// A failing part fails the whole: nothing of the earlier parts stays.
	before := db.Context()
	_, err = e.DoAll(ctx, engine.Add("c", 1), engine.AddElems("n", "a"), engine.Set("c", []byte("y")))
	if !errors.Is(err, engine.ErrTypeMismatch) {
		t.Fatalf("DoAll with a mismatched part = %v, want ErrTypeMismatch", err)
	}
	after := db.Context()
	if !before.Equal(&after) {
		t.Error("a failed DoAll advanced the context")
	}
	if v, _ := db.Get("c"); v[crdt.TypePNCounter].(*crdt.PNCounter).Value() != 5 {
		t.Error("a failed DoAll changed the counter")
	}
	if v, _ := db.Get("n"); v != nil {
		t.Errorf("a failed DoAll stored %v", v)
	}
	checkReplay(t, db)
}

func TestReadingsAreStoredAsFacts(t *testing.T) {
	dbA, a, _ := open(t, t.TempDir(), 1)
	dbB, b, _ := open(t, t.TempDir(), 2)
	ctx := context.Background()
	hour := store.FactBucket
	rs := []crdt.Reading{{Time: 10, Value: 1}, {Time: hour + 5, Value: 2}, {Time: -3, Value: 3, Flags: crdt.FlagClockUnsynced}}
	if _, err := a.DoAll(ctx, engine.AddReadings("t", rs...), engine.Set("t.latest", []byte("2"))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DoAll(ctx, engine.AddReadings("t", crdt.Reading{Time: 11, Value: 4})); err != nil {
		t.Fatal(err)
	}
	if vs, _ := dbA.Get("t"); vs != nil {
		t.Errorf("readings materialised in the record: %v", vs)
	}
	var got []crdt.Reading
	dbA.Readings("t", 0, hour, func(_ crdt.ReplicaID, _ crdt.Seq, r crdt.Reading) error { got = append(got, r); return nil })
	if len(got) != 1 || got[0] != rs[0] {
		t.Errorf("readings in the first hour %v, want %v", got, rs[:1])
	}

	ship := func(from *store.DB, to *engine.Engine) {
		var es []store.Entry
		from.AllEntries(func(en store.Entry) error { es = append(es, en); return nil })
		if err := to.Apply(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	ship(dbA, b)
	ship(dbB, a)
	ship(dbA, b) // duplicates change nothing
	for _, db := range []*store.DB{dbA, dbB} {
		n := 0
		db.Readings("t", -hour, 2*hour, func(crdt.ReplicaID, crdt.Seq, crdt.Reading) error { n++; return nil })
		if n != 4 {
			t.Errorf("%d readings after exchange, want 4", n)
		}
		checkReplay(t, db)
	}
}

func TestGroupTooBigForOneTransactionIsSplit(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 1)
	ctx := context.Background()
	ops := func(prefix string, n int) []engine.Op {
		var ops []engine.Op
		for i := range n {
			ops = append(ops, engine.Add(fmt.Sprintf("%s/%d", prefix, i), 1))
		}
		return ops
	}
	// Alone, too many writes for any transaction: a clear error.
	if _, err := e.DoAll(ctx, ops("huge", 20000)...); !errors.Is(err, store.ErrTxnTooBig) {
		t.Fatalf("DoAll of 20000 keys = %v, want ErrTxnTooBig", err)
	}
	// Each fits, their group does not: every one commits.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.DoAll(ctx, ops(fmt.Sprint("g", g), 1500)...)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	db.Scan("g", "", 0, func(string, map[crdt.Type]crdt.Value) error { n++; return nil })
	if n != 16*1500 {
		t.Fatalf("%d keys stored, want %d", n, 16*1500)
	}
	if _, err := db.Get("huge/0"); err != nil {
		t.Fatal(err)
	}
	checkReplay(t, db)
}

func TestDoAfterStopFailsAtOnce(t *testing.T) {
	_, e, stop := open(t, t.TempDir(), 1)
	stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if _, err := e.Do(context.Background(), engine.Add("c", 1)); !errors.Is(err, engine.ErrStopped) {
				t.Errorf("Do after stop = %v, want ErrStopped", err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Do after the engine stopped did not return")
	}
}

// TestOverlappingGroupsKeepTheLogServable: a group joined differently by
// another peer may overlap what a node holds; the node logs it from its
// first new dot, so that asking the log for what follows any dot finds it.
func TestOverlappingGroupsKeepTheLogServable(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 1)
	ctx := context.Background()
	// Ten single-dot entries of replica 9, each adding an element.
	var es []store.Entry
	for i := range crdt.Seq(10) {
		var c crdt.Context
		for s := crdt.Seq(1); s <= i; s++ {
			c.Add(crdt.Dot{Replica: 9, Seq: s})
		}
		d, err := crdt.NewORMap(nil).Update(crdt.Field{Name: "s", Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.AWSet).Add(crdt.NewDotGen(&c, 9), fmt.Sprint("e", i+1)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, store.Entry{Origin: 9, First: i + 1, Last: i + 1, Delta: d})
	}
	group := func(from, to int) store.Entry {
		g := store.Entry{Origin: 9, First: es[from-1].First, Last: es[to-1].Last, Delta: es[from-1].Delta.Clone()}
		for _, x := range es[from:to] {
			if err := g.Delta.JoinDelta(x.Delta); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	for _, batch := range [][]store.Entry{es[:4], {group(5, 7)}, {group(1, 10)}} {
		if err := e.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for after := crdt.Seq(0); after < 10; after++ {
		var got []store.Entry
		db.Entries(9, after, func(x store.Entry) error { got = append(got, x); return nil })
		covered := after
		for _, x := range got {
			if x.First > covered+1 {
				break
			}
			covered = max(covered, x.Last)
		}
		if covered != 10 {
			t.Errorf("entries after %d cover up to %d, want 10: %v", after, covered, got)
		}
	}
	vs, _ := db.Get("s")
	if n := vs[crdt.TypeAWSet].(*crdt.AWSet).Len(); n != 10 {
		t.Errorf("set holds %d elements, want 10", n)
	}
}

// TestEntriesAreAppliedForTheirContexts: an entry whose dots a node's
// context already covers (another delta superseded them) is still applied
// when it arrives, because its own context may supersede something else.
func TestEntriesAreAppliedForTheirContexts(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 9)
	ctx := context.Background()
	f := crdt.Field{Name: "r", Type: crdt.TypeMVRegister}
	set := func(state *crdt.Causal, origin crdt.ReplicaID, v string) store.Entry {
		m, _ := state.Value.(*crdt.ORMap)
		if m == nil {
			m = crdt.NewORMap(nil)
		}
		seq := state.Ctx.Max(origin) + 1
		d, err := m.Update(f, func(x crdt.Value) (crdt.Causal, error) {
			return x.(*crdt.MVRegister).Set(crdt.NewDotGen(&state.Ctx, origin), []byte(`"`+v+`"`)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := state.Apply(d.Clone()); err != nil {
			t.Fatal(err)
		}
		return store.Entry{Origin: origin, First: seq, Last: seq, Delta: d}
	}
	// Replica 3 sets c; replica 1, having seen it, sets a; replica 2,
	// having seen that, sets b. The register holds b alone.
	var world crdt.Causal
	e3 := set(&world, 3, "c")
	e1 := set(&world, 1, "a")
	e2 := set(&world, 2, "b")
	// They arrive in the opposite order.
	for _, en := range []store.Entry{e2, e1, e3} {
		if err := e.Apply(ctx, []store.Entry{en}); err != nil {
			t.Fatal(err)
		}
	}
	vs, _ := db.Get("r")
	got := vs[crdt.TypeMVRegister].(*crdt.MVRegister).Values()
	if len(got) != 1 || string(got[0]) != `"b"` {
		t.Fatalf("register holds %q, want only \"b\"", got)
	}
	checkReplay(t, db)
}

// TestReadingsStream: the raw readings of entries sent apart from the log
// (the cloud's readings stream) are stored once each, in whatever order
// the entries come (newest first, say), however they are grouped and
// however often they come; what is held persists; nothing else of them is
// applied.
func TestReadingsStream(t *testing.T) {
	dbA, a, _ := open(t, t.TempDir(), 1)
	dir := t.TempDir()
	dbB, b, stopB := open(t, dir, 2)
	ctx := context.Background()
	for i := range 3 {
		if _, err := a.DoAll(ctx, engine.AddReadings("t", crdt.Reading{Time: int64(i), Value: float64(i)}, crdt.Reading{Time: int64(i) + 100, Value: 9}),
			engine.Set("t.latest", []byte("9"))); err != nil {
			t.Fatal(err)
		}
	}
	var es []store.Entry
	dbA.AllEntries(func(en store.Entry) error { es = append(es, en); return nil })
	if len(es) != 3 {
		t.Fatalf("log %v, want 3 entries", es)
	}
	group := func(from, to int) store.Entry {
		g := store.Entry{Origin: es[from].Origin, First: es[from].First, Last: es[to].Last, Delta: es[from].Delta.Clone()}
		for _, e := range es[from+1 : to+1] {
			if err := g.Delta.JoinDelta(e.Delta); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	count := func() int {
		n := 0
		dbB.Readings("t", -1000, 1000, func(crdt.ReplicaID, crdt.Seq, crdt.Reading) error { n++; return nil })
		return n
	}
	// Newest first: the last entry, then the first two.
	if err := b.Readings(ctx, []store.Entry{es[2]}); err != nil {
		t.Fatal(err)
	}
	if err := b.Readings(ctx, []store.Entry{group(0, 1)}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 6 {
		t.Fatalf("%d readings after the three entries, want 6", n)
	}
	// Again, grouped otherwise and overlapping: only the new ones count.
	if err := b.Readings(ctx, []store.Entry{es[1], group(0, 2)}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 6 {
		t.Errorf("%d readings after all three entries, some twice, want 6", n)
	}
	if vs, _ := dbB.Get("t.latest"); vs != nil {
		t.Errorf("the readings stream applied state: t.latest = %v", vs)
	}
	if c := dbB.Context(); c.Max(1) != 0 {
		t.Errorf("the readings stream moved the context to %d", c.Max(1))
	}
	stopB()
	db, err := store.Open(store.Options{Dir: dir, Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.ReadingsHeld()[1]; len(got) != 1 || got.Prefix() != es[2].Last {
		t.Errorf("held after reopening: %v, want 1-%d", got, es[2].Last)
	}
}

// TestReadingsHoldsFewRanges: entries that leave holes no one fills keep
// what is held in at most crdt.MaxRanges ranges, the narrowest holes
// given up, and are all taken.
func TestReadingsHoldsFewRanges(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 2)
	for k := range crdt.Seq(crdt.MaxRanges + 6) {
		s := 3*k + 1 // every third dot: a hole of two after each
		if k%2 == 1 {
			s++ // and some holes of one, the narrowest
		}
		var ctx crdt.Context
		ctx.Add(crdt.Dot{Replica: 1, Seq: s})
		if err := e.Readings(context.Background(), []store.Entry{{Origin: 1, First: s, Last: s, Delta: crdt.Causal{Ctx: ctx}}}); err != nil {
			t.Fatalf("entry %d: %v", s, err)
		}
	}
	held := db.ReadingsHeld()[1]
	if err := held.Validate(); err != nil || len(held) > crdt.MaxRanges {
		t.Fatalf("held %d ranges (%v): %v", len(held), held, err)
	}
}
