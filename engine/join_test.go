package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/store"
	"pgregory.net/rapid"
)

// openWorkStore returns an engine, not running, on a new store in dir,
// closed when t's test or rapid case ends, for tests that build groups
// themselves.
func openWorkStore(t interface {
	Fatal(...any)
	Cleanup(func())
}, dir string) (*store.DB, *Engine) {
	db, err := store.Open(store.Options{Dir: dir, Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, New(db, 1, Config{})
}

// lastEntryError returns what breaks logLocal's bound in w's last entry
// after a request of ops, or nil: a delta that encodes to more than the
// bytes counted for it, or an entry that joins requests and does not stay
// under the store's value threshold. Requests with readings are never
// counted, nor joined.
func lastEntryError(w *work, ops ...Op) error {
	for _, op := range ops {
		if op.Type == crdt.TypeReadingSet {
			return nil
		}
	}
	last := w.entries[len(w.entries)-1]
	delta, err := last.Delta.MarshalCBOR()
	if err != nil {
		return err
	}
	if len(delta) > w.joined.bytes {
		return fmt.Errorf("entry %d-%d: delta encodes to %d bytes, counted as %d", last.First, last.Last, len(delta), w.joined.bytes)
	}
	if w.joined.requests > 1 {
		enc, err := store.EncodeEntry(last)
		if err != nil {
			return err
		}
		if len(enc) >= store.ValueThreshold {
			return fmt.Errorf("entry %d-%d of %d requests stores %d bytes, not under the value threshold of %d", last.First, last.Last, w.joined.requests, len(enc), store.ValueThreshold)
		}
	}
	return nil
}

// TestJoinBoundsEncodedDeltas checks the bound logLocal takes instead of
// encoding each request's delta: for requests of every kind of operation,
// adding and removing large values, each committed in a group of its own,
// the bytes counted for its entry are at least its encoded delta.
func TestJoinBoundsEncodedDeltas(t *testing.T) {
	db, e := openWorkStore(t, t.TempDir())
	big := strings.Repeat("x", 3000)
	for i, op := range []Op{
		Add("c", 1), Add("c", -5),
		Set("r", []byte(big)), Set("r", []byte("y")),
		SetMV("m", []byte(big)), SetMV("m", []byte("z")),
		AddElems("s", big+"1", big+"2", "a"), AddElems("s", big+"1"), RemoveElems("s", big+"1", big+"2"),
		Enable("f", true), Enable("f", true), Enable("f", false),
		Remove("s"), Remove("r"), Remove("m"),
	} {
		w := newWork(e, nil)
		if err := w.do(&request{ops: []Op{op}}); err != nil {
			t.Fatalf("op %d (%s): %v", i, op.Name, err)
		}
		if err := lastEntryError(w, op); err != nil {
			t.Errorf("op %d (%s): %v", i, op.Name, err)
		}
		if err := db.Commit(w.batch()); err != nil {
			t.Fatal(err)
		}
		e.finish(w, nil, nil)
	}
}

// TestJoinedEntriesStayInline checks that the entries concurrent requests
// share are bounded as counted and stay under the store's value threshold,
// so that a commit writes only Badger's WAL: a group of one-operation
// requests on many keys and on one, as the durable benchmarks make.
func TestJoinedEntriesStayInline(t *testing.T) {
	_, e := openWorkStore(t, t.TempDir())
	w := newWork(e, nil)
	var ops []Op
	for i := range 64 {
		ops = append(ops, Add(fmt.Sprintf("counter/%02d", i), 1), Add("counter/one", 1))
	}
	for i := range 16 {
		ops = append(ops, Set(fmt.Sprintf("register/%02d", i), []byte(strings.Repeat("v", 10*i))), AddElems("set", fmt.Sprint(i)))
	}
	joined := 0
	for i, op := range ops {
		if err := w.do(&request{ops: []Op{op}}); err != nil {
			t.Fatalf("op %d (%s): %v", i, op.Name, err)
		}
		if err := lastEntryError(w, op); err != nil {
			t.Errorf("op %d (%s): %v", i, op.Name, err)
		}
		joined = max(joined, w.joined.requests)
	}
	if joined < 8 {
		t.Errorf("entries joined at most %d requests, want 8 or more", joined)
	}
	t.Logf("%d requests in %d entries", len(ops), len(w.entries))
}

// TestJoinBoundHolds checks logLocal's bound on random sequences of
// requests of one to three operations of every kind, on short and long
// names, with peers' entries between them that give a name a second type,
// committed in random groups: whenever the last entry may be joined, its
// encoded delta is within the bytes counted for it, and an entry that
// joined requests stays under the store's value threshold.
func TestJoinBoundHolds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		db, e := openWorkStore(rt, t.TempDir())
		_, peer := openWorkStore(rt, t.TempDir())
		peer.replica = 2
		text := func(label string, most int) string {
			return strings.Repeat("x", rapid.IntRange(0, most).Draw(rt, label))
		}
		names := []string{"a", "b", text("long name", 400) + "c", text("long name", 400) + "d"}
		name := rapid.SampledFrom(names)
		op := rapid.OneOf(
			rapid.Custom(func(rt *rapid.T) Op {
				return Add(name.Draw(rt, "counter"), rapid.Int64Range(-1000, 1000).Draw(rt, "by"))
			}),
			rapid.Custom(func(rt *rapid.T) Op { return Set(name.Draw(rt, "register"), []byte(text("value", 700))) }),
			rapid.Custom(func(rt *rapid.T) Op { return SetMV(name.Draw(rt, "mv"), []byte(text("value", 700))) }),
			rapid.Custom(func(rt *rapid.T) Op {
				elems := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) string { return text("elem", 200) + "e" }), 1, 8).Draw(rt, "elems")
				if rapid.Bool().Draw(rt, "remove") {
					return RemoveElems(name.Draw(rt, "set"), elems...)
				}
				return AddElems(name.Draw(rt, "set"), elems...)
			}),
			rapid.Custom(func(rt *rapid.T) Op { return Enable(name.Draw(rt, "flag"), rapid.Bool().Draw(rt, "on")) }),
			rapid.Custom(func(rt *rapid.T) Op {
				return AddReadings(name.Draw(rt, "readings"), crdt.Reading{Time: rapid.Int64Range(1, 1e12).Draw(rt, "time"), Value: 1})
			}),
			rapid.Custom(func(rt *rapid.T) Op { return Remove(name.Draw(rt, "remove")) }),
		)
		w, pw := newWork(e, nil), newWork(peer, nil)
		for i := range rapid.IntRange(1, 100).Draw(rt, "requests") {
			ops := rapid.SliceOfN(op, 1, 3).Draw(rt, fmt.Sprint("ops", i))
			if rapid.IntRange(0, 4).Draw(rt, "from the peer") == 0 {
				// The peer's entry for its request, applied here: a
				// name then holds what both gave it.
				if err := pw.do(&request{ops: ops}); err == nil {
					_ = w.do(&request{entries: pw.entries[len(pw.entries)-1:]})
				}
			} else if err := w.do(&request{ops: ops}); err == nil {
				if err := lastEntryError(w, ops...); err != nil {
					rt.Fatal(err)
				}
			}
			if rapid.IntRange(0, 9).Draw(rt, "commit") == 0 {
				if err := db.Commit(w.batch()); err != nil {
					rt.Fatal(err)
				}
				e.finish(w, nil, nil)
				w = newWork(e, nil)
			}
		}
	})
}
