package engine_test

import (
	"context"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/engine/enginetest"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
)

// TestJoinPages: a page of state transfer joins whole states with the
// peer's context (what it saw and no longer holds is removed here), keeps
// concurrent local writes and names outside the page or its scope, and
// stores its progress; the last page takes the peer's base.
func TestJoinPages(t *testing.T) {
	ctx := context.Background()
	db1, eng1 := enginetest.Start(t, 1, engine.Config{})
	db2, eng2 := enginetest.Start(t, 2, engine.Config{})
	for _, op := range []engine.Op{engine.AddElems("s", "x", "y"), engine.Add("c", 1), engine.Add("secret", 7), engine.AddElems("z", "q")} {
		if _, err := eng1.Do(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	// The peer receives the log without the local key, then removes x and
	// counts.
	shared := func(name string) bool { return name != "secret" }
	var es []store.Entry
	db1.AllEntries(func(e store.Entry) error {
		r := replication.Restrict(replication.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta}, shared)
		es = append(es, store.Entry{Origin: r.Origin, First: r.First, Last: r.Last, Delta: r.Delta})
		return nil
	})
	if err := eng2.Apply(ctx, es); err != nil {
		t.Fatal(err)
	}
	eng2.Do(ctx, engine.RemoveElems("s", "x"))
	eng2.Do(ctx, engine.Add("c", 5))
	// Concurrently, here.
	eng1.Do(ctx, engine.Add("c", 2))

	base, basevv := db2.Context(), db2.LogVector()
	recs, _, err := db2.Records("", "t", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	prog := store.Transfer{Version: 1, From: "peer2", Cursor: "t", Base: base, BaseVector: basevv}
	if err := eng1.Join(ctx, &engine.Page{Last: "t", Records: recs, Ctx: db2.Context(), Keep: shared, Progress: prog}); err != nil {
		t.Fatal(err)
	}
	if got := elems(t, db1, "s"); len(got) != 1 || got[0] != "y" {
		t.Errorf("s = %v, want [y]: the peer's removal of x", got)
	}
	if got := count(t, db1, "c"); got != 8 {
		t.Errorf("c = %d, want 1+5+2", got)
	}
	if got := count(t, db1, "secret"); got != 7 {
		t.Errorf("secret = %d: a name outside the page's scope was touched", got)
	}
	if got := elems(t, db1, "z"); len(got) != 1 {
		t.Errorf("z = %v: a name outside the page's range was touched", got)
	}
	if tr, err := db1.Transfer(); err != nil || tr == nil || tr.Cursor != "t" || tr.From != "peer2" {
		t.Fatalf("stored progress: %+v, %v", tr, err)
	}
	if db1.LogVector()[2] != 0 {
		t.Error("the log vector took the base before the last page")
	}
	// A transfer given up is forgotten, so a restart does not resume it;
	// what its pages joined stays.
	if err := eng1.ForgetTransfer(ctx); err != nil {
		t.Fatal(err)
	}
	if tr, err := db1.Transfer(); err != nil || tr != nil {
		t.Fatalf("progress after ForgetTransfer: %+v, %v", tr, err)
	}
	if got := count(t, db1, "c"); got != 8 || db1.LogVector()[2] != 0 {
		t.Errorf("c = %d, log vector %v after ForgetTransfer, want 8 and no base", got, db1.LogVector())
	}
	// The first page again, so that the last one finishes a transfer.
	if err := eng1.Join(ctx, &engine.Page{Last: "t", Records: recs, Ctx: db2.Context(), Keep: shared, Progress: prog}); err != nil {
		t.Fatal(err)
	}

	rest, _, _ := db2.Records("t", "", 0, nil)
	if err := eng1.Join(ctx, &engine.Page{After: "t", Records: rest, Ctx: db2.Context(), Keep: shared, Progress: prog, Done: true}); err != nil {
		t.Fatal(err)
	}
	if tr, _ := db1.Transfer(); tr != nil {
		t.Errorf("progress kept after the last page: %+v", tr)
	}
	if got, want := db1.LogVector()[2], basevv[2]; got != want || want == 0 {
		t.Errorf("log vector of the peer's origin = %d, want %d", got, want)
	}
	c1 := db1.Context()
	if !c1.Contains(crdt.Dot{Replica: 2, Seq: basevv[2]}) {
		t.Error("the context lacks the base")
	}
	// A page that lists a name outside its range is refused whole.
	bad := &engine.Page{After: "a", Last: "b", Records: []store.Record{{Name: "zz", Enc: rest[0].Enc}}, Progress: prog}
	if err := eng1.Join(ctx, bad); err == nil {
		t.Error("a page with a name outside its range was joined")
	}
}

func elems(t *testing.T, db *store.DB, name string) []string {
	t.Helper()
	vs, err := db.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := vs[crdt.TypeAWSet].(*crdt.AWSet); ok {
		return s.Elements()
	}
	return nil
}

func count(t *testing.T, db *store.DB, name string) int64 {
	t.Helper()
	vs, err := db.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := vs[crdt.TypePNCounter].(*crdt.PNCounter); ok {
		return c.Value()
	}
	return 0
}
