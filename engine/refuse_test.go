package engine

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/store"
	"pgregory.net/rapid"
)

// TestRefusedRequestsLeaveNothing checks that a request refused after some
// of it was merged leaves nothing of itself, and that the rest of its
// group commits as if it had never come. Random groups of local
// operations and a peer's entries, with requests that fail (a stranger's
// entry whose last field cannot be merged, after others were; entries of
// which a later one is refused; a readings stream's entries of which a
// later one is invalid), are committed on one store as Run commits a
// group, and the same groups without the failing requests on another:
// every request but the failing ones has the same outcome on both, and the
// stores hold the same records, contexts, logs and readings.
func TestRefusedRequestsLeaveNothing(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		db, e := openWorkStore(rt, t.TempDir())
		refDB, ref := openWorkStore(rt, t.TempDir())
		// The peer's and the stranger's groups are never committed: they
		// read an empty store.
		empty, _ := openWorkStore(rt, t.TempDir())
		peer, stranger := New(empty, 2, Config{}), New(empty, 3, Config{})

		// "z" holds a counter on both, which no request changes: a
		// stranger's field of "z" typed as a counter and holding a set
		// fails to merge.
		seed := func() *request { return &request{ops: []Op{Add("z", 1)}} }
		runGroup(rt, e, []*request{seed()})
		runGroup(rt, ref, []*request{seed()})

		name := rapid.SampledFrom([]string{"a", "b"})
		op := rapid.OneOf(
			rapid.Custom(func(rt *rapid.T) Op { return Add(name.Draw(rt, "counter"), rapid.Int64Range(-9, 9).Draw(rt, "by")) }),
			rapid.Custom(func(rt *rapid.T) Op {
				return AddElems(name.Draw(rt, "set"), rapid.StringMatching("[xy]").Draw(rt, "elem"))
			}),
			rapid.Custom(func(rt *rapid.T) Op {
				return RemoveElems(name.Draw(rt, "set"), rapid.StringMatching("[xy]").Draw(rt, "elem"))
			}),
			rapid.Custom(func(rt *rapid.T) Op {
				return AddReadings("t", crdt.Reading{Time: rapid.Int64Range(1, 1000).Draw(rt, "time"), Value: 1})
			}),
			rapid.Custom(func(rt *rapid.T) Op { return Remove(name.Draw(rt, "remove")) }),
		)
		ops := func(label string, least int) []Op { return rapid.SliceOfN(op, least, 3).Draw(rt, label) }
		// strangerEntry returns the entry of ops made by replica 3 on its
		// empty state (dots from 1, which no store here applies), if it
		// takes them.
		strangerEntry := func(ops []Op) (store.Entry, bool) {
			sw := newWork(stranger, nil)
			if err := sw.do(&request{ops: ops}); err != nil {
				return store.Entry{}, false
			}
			return sw.entries[0], true
		}
		pw := newWork(peer, nil) // the peer's entries, applied in order

		for g := range rapid.IntRange(1, 4).Draw(rt, "groups") {
			// Each request is made anew for each store: building a
			// group writes into it.
			type kind struct {
				make func() *request
				fail string // why it must fail; "": as it does on the other store
			}
			var kinds []kind
			for i := range rapid.IntRange(1, 8).Draw(rt, fmt.Sprint("requests of group ", g)) {
				label := fmt.Sprintf("request %d.%d", g, i)
				switch rapid.IntRange(0, 5).Draw(rt, label) {
				case 0, 1:
					ops := ops(label+" ops", 1)
					kinds = append(kinds, kind{make: func() *request { return &request{ops: ops} }})
				case 2:
					n := len(pw.entries)
					pw.joined.requests = 0 // an entry of its own
					if err := pw.do(&request{ops: ops(label+" peer ops", 1)}); err != nil {
						continue // the peer refused it
					}
					en := pw.entries[n]
					kinds = append(kinds, kind{make: func() *request { return &request{entries: cloneEntries(en)} }})
				case 3:
					// A field "z" typed as a counter that holds a set:
					// merging it fails, after the fields before it
					// (none when the stranger made no operation).
					en := store.Entry{Origin: 3, First: 1, Last: 1}
					en.Delta.Ctx.Add(crdt.Dot{Replica: 3, Seq: 1})
					fields := map[crdt.Field]crdt.Value{}
					if ops := ops(label+" stranger ops", 0); len(ops) > 0 {
						var ok bool
						if en, ok = strangerEntry(ops); !ok {
							continue
						}
						if m, _ := en.Delta.Value.(*crdt.ORMap); m != nil {
							for _, f := range m.Fields() {
								fields[f] = m.Field(f)
							}
						}
					}
					set, err := crdt.New(crdt.TypeAWSet)
					if err != nil {
						rt.Fatal(err)
					}
					fields[crdt.Field{Name: "z", Type: crdt.TypePNCounter}] = set
					en.Delta.Value = crdt.NewORMap(fields)
					kinds = append(kinds, kind{make: func() *request { return &request{entries: cloneEntries(en)} }, fail: "a field of another type"})
				case 4:
					// The stranger's entry, then one of its entries
					// after a gap.
					en, ok := strangerEntry(ops(label+" stranger ops", 1))
					if !ok {
						continue
					}
					gap := store.Entry{Origin: 3, First: en.Last + 2, Last: en.Last + 2, Delta: en.Delta}
					kinds = append(kinds, kind{make: func() *request { return &request{entries: cloneEntries(en, gap)} }, fail: "an entry after a gap"})
				case 5:
					// A readings stream's entry, then an invalid one.
					en, _ := strangerEntry([]Op{AddReadings("t", crdt.Reading{Time: 5000, Value: 2})})
					bad := store.Entry{Origin: 3, Delta: en.Delta}
					kinds = append(kinds, kind{make: func() *request { return &request{entries: cloneEntries(en, bad), readings: true} }, fail: "an invalid readings entry"})
				}
			}
			var batch, refBatch []*request
			for _, k := range kinds {
				batch = append(batch, k.make())
				if k.fail == "" {
					refBatch = append(refBatch, k.make())
				}
			}
			runGroup(rt, e, batch)
			runGroup(rt, ref, refBatch)
			j := 0
			for i, k := range kinds {
				r := batch[i]
				if k.fail != "" {
					if r.err == nil {
						rt.Fatalf("group %d, request %d (%s) did not fail", g, i, k.fail)
					}
					continue
				}
				if (r.err == nil) != (refBatch[j].err == nil) {
					rt.Fatalf("group %d, request %d: %v; without the failing requests: %v", g, i, r.err, refBatch[j].err)
				}
				j++
			}
			if err := sameStore(db, refDB); err != nil {
				rt.Fatalf("after group %d: %v", g, err)
			}
		}
	})
}

// runGroup builds and commits batch as Run does a group taken while none
// is being committed (launch, then land on the committer's outcome).
func runGroup(t *rapid.T, e *Engine, batch []*request) {
	for _, r := range batch {
		r.done = make(chan struct{})
	}
	flights := make(chan *flight, 1)
	if f := e.launch(flights, batch, nil); f != nil {
		<-flights
		if !e.land(f, e.db.Commit(f.b)) {
			t.Fatal("the group was not committed")
		}
	}
	for _, r := range batch {
		select {
		case <-r.done:
		default:
			t.Fatal("a request of the group was not answered")
		}
	}
}

// cloneEntries returns copies of es whose deltas are their own: building
// a group may keep parts of a delta in the working state.
func cloneEntries(es ...store.Entry) []store.Entry {
	out := make([]store.Entry, len(es))
	for i, en := range es {
		en.Delta = en.Delta.Clone()
		out[i] = en
	}
	return out
}

// sameStore returns what differs between the states of a and b: records,
// context, log vector, log entries, readings of "t" and what is held of
// a readings stream.
func sameStore(a, b *store.DB) error {
	var diffs []string
	recsA, _, errA := a.Records("", "", 0, nil)
	recsB, _, errB := b.Records("", "", 0, nil)
	if errA != nil || errB != nil {
		return fmt.Errorf("records: %v, %v", errA, errB)
	}
	if d := recordsDiffer(recsA, recsB); d != nil {
		diffs = append(diffs, fmt.Sprintf("records of %v", d))
	}
	if ca, cb := a.Context(), b.Context(); !ca.Equal(&cb) {
		diffs = append(diffs, fmt.Sprintf("contexts %v and %v", ca, cb))
	}
	if va, vb := a.LogVector(), b.LogVector(); !maps.Equal(va, vb) {
		diffs = append(diffs, fmt.Sprintf("log vectors %v and %v", va, vb))
	}
	if ea, eb := logOf(a), logOf(b); !slices.Equal(ea, eb) {
		diffs = append(diffs, fmt.Sprintf("%d and %d log entries, not the same", len(ea), len(eb)))
	}
	if ra, rb := readingsOf(a, "t"), readingsOf(b, "t"); !slices.Equal(ra, rb) {
		diffs = append(diffs, fmt.Sprintf("readings %v and %v", ra, rb))
	}
	if ha, hb := a.ReadingsHeld(), b.ReadingsHeld(); !reflect.DeepEqual(ha, hb) {
		diffs = append(diffs, fmt.Sprintf("readings held %v and %v", ha, hb))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the stores differ: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// recordsDiffer returns the names whose records a and b do not both hold
// alike.
func recordsDiffer(a, b []store.Record) []string {
	recs := map[string][]byte{}
	for _, r := range a {
		recs[r.Name] = r.Enc
	}
	var names []string
	for _, r := range b {
		if enc, ok := recs[r.Name]; !ok || !bytes.Equal(enc, r.Enc) {
			names = append(names, r.Name)
		}
		delete(recs, r.Name)
	}
	for name := range recs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// logOf returns the encoded log entries of db, in the log's order.
func logOf(db *store.DB) []string {
	var out []string
	err := db.AllEntries(func(en store.Entry) error {
		enc, err := store.EncodeEntry(en)
		out = append(out, string(enc))
		return err
	})
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	return out
}

// readingsOf returns the stored readings of name, as origin/seq:reading,
// sorted: a fact's readings are in no particular order.
func readingsOf(db *store.DB, name string) []string {
	var out []string
	err := db.Readings(name, math.MinInt64/2, math.MaxInt64, func(o crdt.ReplicaID, s crdt.Seq, r crdt.Reading) error {
		out = append(out, fmt.Sprintf("%s/%d:%v", o, s, r))
		return nil
	})
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	slices.Sort(out)
	return out
}
