package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/internal/poll"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
)

// open starts a store and engine on dir; both stop at test end (or when
// the returned stop is called).
func open(t testing.TB, dir string, replica crdt.ReplicaID) (*store.DB, *engine.Engine, func()) {
	t.Helper()
	return openWith(t, store.Options{Dir: dir, Durability: store.None}, replica)
}

// openWith is open with the given store options.
func openWith(t testing.TB, o store.Options, replica crdt.ReplicaID) (*store.DB, *engine.Engine, func()) {
	t.Helper()
	db, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(db, replica, engine.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return db, e, stop
}

func do(t testing.TB, e *engine.Engine, op engine.Op) crdt.Value {
	t.Helper()
	v, err := e.Do(context.Background(), op)
	if err != nil {
		t.Fatalf("%s: %v", op.Name, err)
	}
	return v
}

func TestOpsPersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	_, e, stop := open(t, dir, 1)
	do(t, e, engine.Add("c", 5))
	if v := do(t, e, engine.Add("c", -2)); v.(*crdt.PNCounter).Value() != 3 {
		t.Fatalf("read-your-writes: counter %d, want 3", v.(*crdt.PNCounter).Value())
	}
	do(t, e, engine.AddElems("s", "a", "b"))
	do(t, e, engine.RemoveElems("s", "a"))
	do(t, e, engine.Set("r", []byte("v1")))
	do(t, e, engine.Enable("f", true))
	do(t, e, engine.AddElems("gone", "x"))
	if v := do(t, e, engine.Remove("gone")); v != nil {
		t.Fatalf("remove returned %v", v)
	}
	stop()

	db, _, _ := open(t, dir, 1)
	get := func(name string, typ crdt.Type) crdt.Value {
		vs, err := db.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return vs[typ]
	}
	if got := get("c", crdt.TypePNCounter).(*crdt.PNCounter).Value(); got != 3 {
		t.Errorf("counter %d, want 3", got)
	}
	if got := get("s", crdt.TypeAWSet).(*crdt.AWSet).Elements(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("set %q, want [b]", got)
	}
	if got, _, _ := get("r", crdt.TypeLWWRegister).(*crdt.LWWRegister).Get(); string(got) != "v1" {
		t.Errorf("register %q", got)
	}
	if !get("f", crdt.TypeEWFlag).(*crdt.EWFlag).Enabled() {
		t.Error("flag not enabled")
	}
	if vs, _ := db.Get("gone"); vs != nil {
		t.Errorf("removed key still has %v", vs)
	}
	checkReplay(t, db)
}

func TestBadOperationsStoreNothing(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 1)
	do(t, e, engine.Add("k", 1))
	before := db.Context()

	tests := []struct {
		name string
		op   engine.Op
		want error
	}{
		{"type mismatch", engine.AddElems("k", "x"), engine.ErrTypeMismatch},
		{"empty name", engine.Add("", 1), store.ErrInvalidName},
		{"NUL in name", engine.Add("a\x00b", 1), store.ErrInvalidName},
		{"long name", engine.Add(strings.Repeat("n", store.MaxNameBytes+1), 1), store.ErrInvalidName},
		{"oversized value", engine.SetMV("big", make([]byte, store.MaxValueBytes+1)), store.ErrTooLarge},
		{"unknown type", engine.Op{Name: "u", Type: 200, Mutate: engine.Add("u", 1).Mutate}, crdt.ErrUnknownType},
		{"invalid reading", engine.AddReadings("t", crdt.Reading{Value: inf()}), crdt.ErrInvalidReading},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Do(context.Background(), tc.op); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	after := db.Context()
	if !before.Equal(&after) {
		t.Errorf("failed operations changed the context")
	}
	for _, name := range []string{"big", "u", "t"} {
		if vs, _ := db.Get(name); vs != nil {
			t.Errorf("%s stored after a failed operation", name)
		}
	}
	if vs, _ := db.Get("k"); vs[crdt.TypePNCounter].(*crdt.PNCounter).Value() != 1 {
		t.Error("the existing key changed")
	}
}

// TestOversizedOpInGroupSparesOthers: an oversized operation committed in
// the same group as good ones fails alone.
func TestOversizedOpInGroupSparesOthers(t *testing.T) {
	db, e, _ := open(t, t.TempDir(), 1)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := engine.Add("n", 1)
			if i%10 == 0 {
				op = engine.SetMV("big", make([]byte, store.MaxValueBytes+1))
			}
			_, errs[i] = e.Do(context.Background(), op)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if wantErr := i%10 == 0; (err != nil) != wantErr || (wantErr && !errors.Is(err, store.ErrTooLarge)) {
			t.Errorf("op %d: err %v", i, err)
		}
	}
	if vs, _ := db.Get("n"); vs[crdt.TypePNCounter].(*crdt.PNCounter).Value() != 36 {
		t.Errorf("counter %v, want 36", vs[crdt.TypePNCounter])
	}
	checkReplay(t, db)
}

// TestReplication: two engines that exchange their logs converge, and a
// redelivered entry changes nothing.
func TestReplication(t *testing.T) {
	dbA, a, _ := open(t, t.TempDir(), 1)
	dbB, b, _ := open(t, t.TempDir(), 2)
	do(t, a, engine.AddElems("s", "x"))
	do(t, b, engine.AddElems("s", "y"))
	do(t, a, engine.Add("c", 2))
	do(t, b, engine.Add("c", 3))
	ship := func(from *store.DB, to *engine.Engine) {
		var es []store.Entry
		if err := from.AllEntries(func(e store.Entry) error { es = append(es, e); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := to.Apply(context.Background(), es); err != nil {
			t.Fatal(err)
		}
	}
	ship(dbA, b)
	ship(dbB, a)
	ship(dbA, b) // duplicates
	do(t, a, engine.RemoveElems("s", "x", "y"))
	ship(dbA, b)
	for _, db := range []*store.DB{dbA, dbB} {
		vs, _ := db.Get("c")
		if got := vs[crdt.TypePNCounter].(*crdt.PNCounter).Value(); got != 5 {
			t.Errorf("counter %d, want 5", got)
		}
		if vs, _ := db.Get("s"); vs != nil {
			t.Errorf("set %v, want removed", vs)
		}
	}
	ca, cb := dbA.Context(), dbB.Context()
	if !ca.Equal(&cb) {
		t.Error("contexts differ after exchange")
	}
	checkReplay(t, dbA)
	checkReplay(t, dbB)
}

// TestApplyRefusesEntriesLackingTheirDots: a group whose delta lacks some
// of the dots it covers would raise the log vector over writes never
// applied, and the node would never ask for them again.
func TestApplyRefusesEntriesLackingTheirDots(t *testing.T) {
	dbA, a, _ := open(t, t.TempDir(), 1)
	dbB, b, _ := open(t, t.TempDir(), 2)
	do(t, a, engine.AddElems("s", "x"))
	do(t, a, engine.AddElems("s", "y"))
	do(t, a, engine.AddElems("s", "z"))
	var es []store.Entry
	if err := dbA.AllEntries(func(e store.Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	// Entries 1 and 3 joined as one group 1-3: the delta lacks dot 2.
	gapped := store.Entry{Origin: es[0].Origin, First: 1, Last: 3, Delta: es[0].Delta.Clone()}
	if err := gapped.Delta.JoinDelta(es[2].Delta); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), []store.Entry{gapped}); err == nil {
		t.Fatal("a group lacking one of its dots was applied")
	}
	if vv := dbB.LogVector(); vv[es[0].Origin] != 0 {
		t.Fatalf("log vector %v after a refused entry", vv)
	}
	if err := b.Apply(context.Background(), es); err != nil {
		t.Fatalf("the entries themselves: %v", err)
	}
	if vs, _ := dbB.Get("s"); vs == nil || vs[crdt.TypeAWSet].(*crdt.AWSet).Len() != 3 {
		t.Fatalf("set %v, want x, y and z", vs)
	}
}

// TestRefusedRemoteEntryIsNotPartlyStored: a peer's entry touching "a"
// and "b", applied on a node whose record of "b" cannot be read (here a
// damaged record; a Badger read error takes the same path). Merging it
// changes "a" before it fails on "b": the entry is refused whole, and
// nothing of it is stored, not a's new record either (which would hold
// dots the context lacks).
func TestRefusedRemoteEntryIsNotPartlyStored(t *testing.T) {
	dbA, a, _ := open(t, t.TempDir(), 1)
	if _, err := a.DoAll(context.Background(), engine.AddElems("a", "x"), engine.AddElems("b", "y")); err != nil {
		t.Fatal(err)
	}
	var es []store.Entry
	if err := dbA.AllEntries(func(e store.Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}

	dirB := t.TempDir()
	damageRecord(t, dirB, "b")
	dbB, b, _ := open(t, dirB, 2)

	err := b.Apply(context.Background(), es)
	if err == nil {
		t.Fatal("entry applied over a damaged record")
	}
	t.Logf("Apply: %v", err)
	vs, gerr := dbB.Get("a")
	if gerr != nil {
		t.Fatal(gerr)
	}
	ctx := dbB.Context()
	if vs != nil {
		t.Fatalf("refused entry partly stored: a = %v elements; context holds (1,1): %v; log vector %v",
			vs[crdt.TypeAWSet].(*crdt.AWSet).Elements(), ctx.Contains(crdt.Dot{Replica: 1, Seq: 1}), dbB.LogVector())
	}
	if ctx.Contains(crdt.Dot{Replica: 1, Seq: 1}) || dbB.LogVector()[1] != 0 {
		t.Fatalf("refused entry partly stored: context %v, log vector %v", ctx, dbB.LogVector())
	}
}

// damageRecord makes a new store in dir whose record of name does not
// decode, written by Badger directly under the store's key of it ("k"
// and the name).
func damageRecord(t testing.TB, dir, name string) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"+name), []byte{0xff}) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkReplay asserts that the stored state equals the join of every
// logged delta: the log and the materialised state agree.
func checkReplay(t testing.TB, db *store.DB) {
	t.Helper()
	var replay crdt.Causal
	err := db.AllEntries(func(e store.Entry) error { return replay.Apply(e.Delta) })
	if err != nil {
		t.Fatal(err)
	}
	ctx := db.Context()
	if !replay.Ctx.Equal(&ctx) {
		t.Fatalf("replayed context differs from the stored one")
	}
	want := map[crdt.Field]crdt.Value{}
	if m, ok := replay.Value.(*crdt.ORMap); ok {
		for _, f := range m.Fields() {
			if f.Type == crdt.TypeReadingSet {
				checkFacts(t, db, f.Name, m.Field(f).(*crdt.ReadingSet))
				continue
			}
			want[f] = m.Field(f)
		}
	}
	got := map[crdt.Field]crdt.Value{}
	err = db.Scan("", "", 0, func(name string, vs map[crdt.Type]crdt.Value) error {
		for typ, v := range vs {
			got[crdt.Field{Name: name, Type: typ}] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("stored fields %d, replayed %d", len(got), len(want))
	}
	for f, v := range want {
		a, _ := crdt.Causal{Value: v}.MarshalCBOR()
		b, _ := crdt.Causal{Value: got[f]}.MarshalCBOR()
		if !bytes.Equal(a, b) {
			t.Fatalf("field %s: stored state differs from the replayed log", f)
		}
	}
}

// checkFacts asserts that the readings stored for name are those of rs,
// each once, with its dot.
func checkFacts(t testing.TB, db *store.DB, name string, rs *crdt.ReadingSet) {
	t.Helper()
	want := map[crdt.Dot]crdt.Reading{}
	rs.Each(func(d crdt.Dot, r crdt.Reading) { want[d] = r })
	got := map[crdt.Dot]crdt.Reading{}
	err := db.Readings(name, math.MinInt64/2, math.MaxInt64, func(o crdt.ReplicaID, s crdt.Seq, r crdt.Reading) error {
		d := crdt.Dot{Replica: o, Seq: s}
		if _, dup := got[d]; dup {
			t.Errorf("%s: reading %v stored twice", name, d)
		}
		got[d] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%s: stored readings %v, logged %v", name, got, want)
	}
}

// TestGroupBuiltDuringACommit checks the pipelined write path: a group
// built while the one before it is being committed sees that group's
// effects if it commits, and is built again without them if it fails.
func TestGroupBuiltDuringACommit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		firstFull bool // the disk is full for the first group's commit
		want      int64
		dots      crdt.Seq // the second op's dot
	}{
		{"first group commits", false, 11, 2},
		{"first group fails", true, 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, v, err := duringFirstCommit(t, tc.firstFull, engine.Add("c", 10))
			if err != nil {
				t.Fatalf("second op: %v", err)
			}
			if got := v.(*crdt.PNCounter).Value(); got != tc.want {
				t.Errorf("second op returned %d, want %d", got, tc.want)
			}
			vs, err := db.Get("c")
			if err != nil {
				t.Fatal(err)
			}
			if got := vs[crdt.TypePNCounter].(*crdt.PNCounter).Value(); got != tc.want {
				t.Errorf("store holds %d, want %d", got, tc.want)
			}
			if ctx := db.Context(); ctx.Max(1) != tc.dots {
				t.Errorf("context holds dots up to %d, want %d", ctx.Max(1), tc.dots)
			}
		})
	}
}

// TestErrorOnAFailedGroupIsNotKept checks that an op that failed only
// because of the group it was built on (a type mismatch with a counter
// that group created) is answered by its own outcome when that group fails
// and it is built again.
func TestErrorOnAFailedGroupIsNotKept(t *testing.T) {
	set := engine.Set("c", []byte("v"))
	if _, _, err := duringFirstCommit(t, false, set); !errors.Is(err, engine.ErrTypeMismatch) {
		t.Fatalf("register set on the first group's counter: %v, want a type mismatch", err)
	}
	db, v, err := duringFirstCommit(t, true, set)
	if err != nil {
		t.Fatalf("register set after the first group failed: %v", err)
	}
	vs, err := db.Get("c")
	if err != nil {
		t.Fatal(err)
	}
	if v == nil || vs[crdt.TypeLWWRegister] == nil || len(vs) != 1 {
		t.Fatalf("returned %v; store holds %v, want the register alone", v, vs)
	}
}

// TestStoreFailureStopsTheEngine checks that when Badger fails a commit
// after taking it (here: made it, then reported a failure), the engine
// answers that group with store.ErrFailed and stops with it, whichever
// path the group took, so that no later operation takes the failed
// group's dots; and that the store opened again holds a state its log
// replays to, before and after a new operation.
func TestStoreFailureStopsTheEngine(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(*engine.Engine) error
		want error // of op
	}{
		{"group committed by the committer", func(e *engine.Engine) error {
			_, err := e.Do(context.Background(), engine.Add("b", 1))
			return err
		}, store.ErrFailed},
		// Fails midway (its second part is a type mismatch), so the group
		// is built again without it and committed on Run's goroutine.
		{"group built again", func(e *engine.Engine) error {
			_, err := e.DoAll(context.Background(), engine.Add("b", 1), engine.AddElems("b", "e"))
			return err
		}, engine.ErrTypeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var commits atomic.Int64
			o := store.Options{Dir: t.TempDir(), Durability: store.None, CommitFault: func() error {
				if commits.Add(1) == 2 {
					return syscall.EIO
				}
				return nil
			}}
			db, err := store.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			e := engine.New(db, 1, engine.Config{})
			done := make(chan error, 1)
			go func() { done <- e.Run(context.Background()) }()
			do(t, e, engine.Add("a", 1))
			if err := tc.op(e); !errors.Is(err, tc.want) {
				t.Fatalf("op of the failed commit: %v, want %v", err, tc.want)
			}
			runFailed(t, done)
			if _, err := e.Do(context.Background(), engine.Add("c", 1)); !errors.Is(err, engine.ErrStopped) {
				t.Fatalf("op after the failure: %v, want engine.ErrStopped", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			o.CommitFault = nil
			db, e, _ = openWith(t, o, 1)
			checkReplay(t, db)
			do(t, e, engine.Add("c", 1))
			checkReplay(t, db)
		})
	}
}

// TestStoreFailureAtStopIsReturned: a commit that fails while Run commits
// what it held when its context was cancelled is a store failure all the
// same: Run returns it, so the node does not exit as if all went well.
func TestStoreFailureAtStopIsReturned(t *testing.T) {
	var armed atomic.Bool
	armed.Store(true)
	release := make(chan struct{})
	var commits atomic.Int64
	db, err := store.Open(store.Options{Dir: t.TempDir(), Durability: store.None,
		// The first commit waits for release, at its start.
		FreeSpace: func(string) (int64, error) {
			if armed.CompareAndSwap(true, false) {
				<-release
			}
			return 1 << 40, nil
		},
		// The second, made after cancellation, fails.
		CommitFault: func() error {
			if commits.Add(1) == 2 {
				return syscall.EIO
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := engine.New(db, 1, engine.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	first := e.Send(engine.Add("a", 1))
	waitFor(t, "the held commit", func() bool { return !armed.Load() })
	second := send(t, e, engine.Add("b", 1))
	cancel()
	close(release)
	if _, err := first(); err != nil {
		t.Fatalf("first op: %v", err)
	}
	if _, err := second(); !errors.Is(err, store.ErrFailed) {
		t.Fatalf("op of the failed commit: %v, want store.ErrFailed", err)
	}
	runFailed(t, done)
}

// runFailed waits for Run to return, on done, with store.ErrFailed.
func runFailed(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrFailed) {
			t.Fatalf("Run returned %v, want store.ErrFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the store failed, and Run did not return")
	}
}

// TestLocalRequestsShareLogEntries checks that the local requests of one
// group are logged as few entries: each joins the entry of the local
// requests just before it while the joined delta stays small enough for
// its record to stay under the store's value threshold, never across
// another origin's entry, and never with readings. Whatever the entries,
// the log replays to the stored state.
func TestLocalRequestsShareLogEntries(t *testing.T) {
	rdb, remote, _ := open(t, t.TempDir(), 2)
	do(t, remote, engine.Add("z", 5))
	var entries []store.Entry
	err := rdb.AllEntries(func(en store.Entry) error {
		entries = append(entries, en)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db, e, release := holdFirstCommit(t) // dot 1
	half := bytes.Repeat([]byte("x"), store.ValueThreshold/2)
	var waits []func() (crdt.Value, error)
	for _, op := range []engine.Op{
		engine.Add("a", 1),        // 2
		engine.AddElems("s", "x"), // 3
		engine.Set("r1", half),    // 4: joins
		engine.Set("r2", half),    // 5: a second half would not
		engine.Add("a", 1),        // 6
		engine.Set("r3", bytes.Repeat([]byte("x"), store.ValueThreshold)), // 7: alone
	} {
		waits = append(waits, send(t, e, op))
	}
	applied := e.SendEntries(entries)
	waitFor(t, "the engine to take the remote entry", func() bool { return e.Queued() == 0 })
	for _, op := range []engine.Op{
		engine.Add("a", 1), // 8
		engine.AddReadings("t", crdt.Reading{Time: 1, Value: 2}), // 9: never joined
		engine.Add("a", 1),           // 10
		engine.Set("a", []byte("v")), // fails: takes no dot
	} {
		waits = append(waits, send(t, e, op))
	}
	for range 64 { // 11…74
		waits = append(waits, send(t, e, engine.Add("b", 1)))
	}
	if err := release(false); err != nil {
		t.Fatal(err)
	}
	if err := applied(); err != nil {
		t.Fatal(err)
	}
	for i, wait := range waits {
		if _, err := wait(); (err != nil) != (i == 9) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	var got []store.Entry
	err = db.Entries(1, 0, func(en store.Entry) error {
		got = append(got, en)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, en := range got {
		ranges = append(ranges, fmt.Sprintf("%d-%d", en.First, en.Last))
		if enc, err := store.EncodeEntry(en); err != nil {
			t.Fatal(err)
		} else if en.Last > en.First && len(enc) >= store.ValueThreshold {
			t.Errorf("entry %d-%d joins requests in %d bytes, over the value threshold", en.First, en.Last, len(enc))
		}
	}
	// 10…74 share a few entries, each up to the bound.
	want := []string{"1-1", "2-4", "5-6", "7-7", "8-8", "9-9"}
	if len(got) < len(want)+2 || !slices.Equal(ranges[:len(want)], want) || got[len(want)].First != 10 || got[len(got)-1].Last != 74 || len(got) > len(want)+10 {
		t.Errorf("log entries %v, want %v and then 10…74 in 2 to 10 entries", ranges, want)
	}
	checkReplay(t, db)
}

// TestJoinedEntriesStayWithinReplicationLimits checks that what joins
// stays sendable: removals list every dot they remove (a replication
// message carries at most MaxCloudDots out-of-order ones) and the skeleton
// of every removed entry (a message is at most 4 MiB), so concurrent
// removals that fit a message each must not be joined into one that
// does not. A peer holding everything before them pulls them as
// replication sends them, and must accept every message.
func TestJoinedEntriesStayWithinReplicationLimits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		sets, elems, pad int
	}{
		{"two removals of 2,100 dots each", 2, 2100, 1},
		{"64 removals of 70 dots each", 64, 70, 1},
		{"eight removals of 600 KiB each", 8, 600, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, e, hold := openHoldable(t)
			do(t, e, engine.Add("pad", 1)) // the sets' dots out of order
			for i := range tc.sets {
				elems := make([]string, tc.elems)
				for j := range elems {
					elems[j] = fmt.Sprintf("%0*d/%d", tc.pad, i, j)
				}
				do(t, e, engine.AddElems(fmt.Sprintf("s%d", i), elems...))
				do(t, e, engine.Add("pad", 1)) // and apart
			}
			from := db.LogVector()[1]
			release := hold(engine.Add("c", 1))
			var waits []func() (crdt.Value, error)
			for i := range tc.sets {
				waits = append(waits, send(t, e, engine.Remove(fmt.Sprintf("s%d", i))))
			}
			if _, err := release(false); err != nil {
				t.Fatal(err)
			}
			for _, wait := range waits {
				if _, err := wait(); err != nil {
					t.Fatal(err)
				}
			}
			log, mine := storelog.Log{DB: db}, db.LogVector()
			for from < mine[1] {
				ch, err := replication.NextChunk(log, mine, func(crdt.ReplicaID) crdt.Seq { return from }, 256<<10)
				if err != nil {
					t.Fatal(err)
				}
				first := ch.Entries[0]
				b, err := replication.EncodeDense(replication.Message{Version: replication.Version, Kind: replication.KindEntries, Entries: ch.Entries})
				if err != nil {
					t.Fatalf("sending %d-%d: %v", first.First, first.Last, err)
				}
				if _, err := replication.Decode(b); err != nil {
					t.Fatalf("the receiver refuses the message of %d-%d: %v", first.First, first.Last, err)
				}
				from = ch.Entries[len(ch.Entries)-1].Last
			}
		})
	}
}

// TestValuesOfTheGroupInFlightStay checks that the values a group returns
// are not changed by the next group, built on that group's state while it
// is committed.
func TestValuesOfTheGroupInFlightStay(t *testing.T) {
	_, e, hold := openHoldable(t)
	do(t, e, engine.AddElems("s", "x"))
	release := hold(engine.Add("c", 1), engine.AddElems("s", "y"))
	a := send(t, e, engine.Add("c", 100))
	b := send(t, e, engine.RemoveElems("s", "x", "y"))
	vs, err := release(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, wait := range []func() (crdt.Value, error){a, b} {
		if _, err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if got := vs[0].(*crdt.PNCounter).Value(); got != 1 {
		t.Errorf("the first group's counter reads %d, want 1", got)
	}
	if got := vs[1].(*crdt.AWSet).Elements(); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("the first group's set reads %v, want [x y]", got)
	}
}

// duringFirstCommit adds 1 to counter "c" on a fresh engine and, while
// that group's commit is held open, submits second. It then lets the first
// commit fail with a full disk (firstFull) or succeed, checks the first
// op's outcome, and returns the store and second's outcome.
func duringFirstCommit(t *testing.T, firstFull bool, second engine.Op) (*store.DB, crdt.Value, error) {
	t.Helper()
	db, e, release := holdFirstCommit(t)
	wait := send(t, e, second)
	if err := release(firstFull); firstFull != errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("first op: %v (disk full: %t)", err, firstFull)
	}
	v, err := wait()
	return db, v, err
}

// openHoldable starts an engine (replica 1) on a fresh store whose
// commits can be held open. hold commits first (as one DoAll) and holds
// that commit open: what is sent meanwhile makes the next group. release
// lets the held commit fail with a full disk (full) or succeed, and
// returns first's outcome.
func openHoldable(t *testing.T) (*store.DB, *engine.Engine, func(first ...engine.Op) (release func(full bool) ([]crdt.Value, error))) {
	t.Helper()
	// The store asks for the free space at the start of each commit:
	// armed, the next ask waits for release.
	var armed atomic.Bool
	release := make(chan bool)
	free := func(string) (int64, error) {
		if armed.CompareAndSwap(true, false) && <-release {
			return 0, nil
		}
		return 1 << 40, nil
	}
	db, e, _ := openWith(t, store.Options{Dir: t.TempDir(), Durability: store.None, FreeSpace: free}, 1)
	hold := func(first ...engine.Op) func(bool) ([]crdt.Value, error) {
		t.Helper()
		armed.Store(true)
		type outcome struct {
			vs  []crdt.Value
			err error
		}
		out := make(chan outcome, 1)
		go func() {
			vs, err := e.DoAll(context.Background(), first...)
			out <- outcome{vs, err}
		}()
		waitFor(t, "the held commit", func() bool { return !armed.Load() })
		return func(full bool) ([]crdt.Value, error) {
			release <- full
			o := <-out
			return o.vs, o.err
		}
	}
	return db, e, hold
}

// holdFirstCommit is openHoldable holding the first commit, of an
// increment of counter "c" (dot 1), and returns its error on release.
func holdFirstCommit(t *testing.T) (*store.DB, *engine.Engine, func(full bool) error) {
	t.Helper()
	db, e, hold := openHoldable(t)
	release := hold(engine.Add("c", 1))
	return db, e, func(full bool) error {
		_, err := release(full)
		return err
	}
}

// send queues op and waits until the engine has taken it, so that what is
// sent next comes after it. It returns a function that waits for op's
// outcome.
func send(t *testing.T, e *engine.Engine, op engine.Op) func() (crdt.Value, error) {
	t.Helper()
	wait := e.Send(op)
	waitFor(t, "the engine to take "+op.Name, func() bool { return e.Queued() == 0 })
	return wait
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, cond)
}
