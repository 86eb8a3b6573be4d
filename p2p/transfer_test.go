package p2p

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/internal/poll"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
)

func logLen(t *testing.T, db *store.DB) int {
	t.Helper()
	n := 0
	if err := db.AllEntries(func(store.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func records(t *testing.T, db *store.DB, keep func(string) bool) []store.Record {
	t.Helper()
	recs, _, err := db.Records("", "", 0, keep)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestLateNodeCatchesUpByStateTransfer: once every peer acknowledged the
// log it is collected; a node that joins later cannot be caught up from
// it and gets the state instead (local keys withheld), removals included,
// and then syncs by the log again.
func TestLateNodeCatchesUpByStateTransfer(t *testing.T) {
	scope := secretsLocal
	a := startBenchNode(t, nodeOpts{durability: store.None, scope: scope})
	b := startBenchNode(t, nodeOpts{durability: store.None, scope: scope}, a.p2p.Addrs()[0])
	ctx := context.Background()
	for i := range 300 {
		if _, err := a.eng.DoAll(ctx, engine.Add(fmt.Sprintf("count/%03d", i), int64(i)), engine.AddElems("members", fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	a.eng.Do(ctx, engine.Add("secret/pin", 1234))
	a.eng.Do(ctx, engine.RemoveElems("members", "m7"))
	a.eng.Do(ctx, engine.Remove("count/100"))
	fleet := func(name string) bool { return scope(name) == replication.Fleet }
	waitFor(t, "b to converge", func() bool { return slices.EqualFunc(records(t, a.db, fleet), records(t, b.db, nil), recordEqual) })

	// Once a knows that b holds everything, GC empties both logs.
	waitFor(t, "the logs to be collected", func() bool {
		a.db.CollectGarbage()
		b.db.CollectGarbage()
		return logLen(t, a.db) == 0 && logLen(t, b.db) == 0
	})
	marks, err := a.db.Watermarks()
	if err != nil || marks["peer/"+b.p2p.host.ID().String()] == nil {
		t.Fatalf("a's watermarks: %v, %v", marks, err)
	}

	c := startBenchNode(t, nodeOpts{durability: store.None, scope: scope}, a.p2p.Addrs()[0])
	waitFor(t, "c to catch up", func() bool { return slices.EqualFunc(records(t, a.db, fleet), records(t, c.db, nil), recordEqual) })
	// The engine's counters are copied out after the step that joined the
	// last page, so they may lag the data by a moment.
	waitFor(t, "c's transfer to be counted", func() bool { return c.p2p.SyncStats().TransfersDone > 0 })
	if st := c.p2p.SyncStats(); st.TransfersDone != 1 || st.StatesReceived < 300 {
		t.Errorf("c: %d transfers done, %d states received", st.TransfersDone, st.StatesReceived)
	}
	if vs, _ := c.db.Get("secret/pin"); vs != nil {
		t.Error("a local key reached c by state transfer")
	}
	if vs, _ := c.db.Get("count/100"); vs != nil {
		t.Error("a removed key reached c")
	}
	if tr, _ := c.db.Transfer(); tr != nil {
		t.Errorf("the finished transfer's progress is still stored: %+v", tr)
	}
	// The log takes over again, both ways.
	c.eng.Do(ctx, engine.Add("count/000", 5))
	a.eng.Do(ctx, engine.Add("count/001", 5))
	waitFor(t, "writes after the transfer", func() bool {
		return counter(a.db, "count/000") == 5 && counter(b.db, "count/000") == 5 && counter(c.db, "count/001") == 6
	})
}

func recordEqual(x, y store.Record) bool { return x.Name == y.Name && string(x.Enc) == string(y.Enc) }

// TestTransferResumesAfterRestart: a node stopped in the middle of a state
// transfer resumes it from its stored progress when it starts again, and
// does not fetch the whole state again.
func TestTransferResumesAfterRestart(t *testing.T) {
	const keys = 60_000
	a := startBenchNode(t, nodeOpts{durability: store.None})
	fill(t, a, keys)
	dir := t.TempDir()
	c := startBenchNode(t, nodeOpts{durability: store.None, dir: dir}, a.p2p.Addrs()[0])
	waitFor(t, "c to join a first page", func() bool { tr, _ := c.db.Transfer(); return tr != nil })
	c.stop()
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := db.Transfer()
	db.Close()
	if err != nil || tr == nil {
		t.Fatalf("c finished its transfer before it was stopped (%v): make the state larger", err)
	}

	// A slower clock: a's sends to c stall for a few seconds after c's
	// restart (libp2p notices the old connection's end), and a transfer
	// is given up after five tries of two rounds each.
	c = startBenchNode(t, nodeOpts{durability: store.None, dir: dir, tick: 250 * time.Millisecond}, a.p2p.Addrs()[0])
	// 60,000 keys under the race detector on a busy 2-core machine take
	// a while: a generous deadline, polled.
	poll.Until(t, time.Minute, "c to catch up", func() bool { return slices.EqualFunc(records(t, a.db, nil), records(t, c.db, nil), recordEqual) })
	waitFor(t, "c's transfer to be counted", func() bool { return c.p2p.SyncStats().TransfersDone > 0 })
	st := c.p2p.SyncStats()
	if st.TransfersDone != 1 || st.StatesReceived >= keys {
		t.Errorf("after the restart: %d transfers done, %d of %d states received (resumed after %q)", st.TransfersDone, st.StatesReceived, keys, tr.Cursor)
	}
}

// fill writes keys registers of 16 bytes to tn.
func fill(t *testing.T, tn *testNode, keys int) {
	t.Helper()
	for i := 0; i < keys; i += 1000 {
		ops := make([]engine.Op, 1000)
		for j := range ops {
			ops[j] = engine.Set(fmt.Sprintf("k%06d", i+j), []byte(strings.Repeat("v", 16)))
		}
		if _, err := tn.eng.DoAll(context.Background(), ops...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAbandonedTransferIsForgotten: when the serving peer goes silent
// mid-transfer, the driver deletes the stored progress of the transfer the
// engine gave up, so that a restart starts a new one instead of resuming
// it (the ranges joined since hold more than the old base covers).
func TestAbandonedTransferIsForgotten(t *testing.T) {
	a := startBenchNode(t, nodeOpts{durability: store.None})
	fill(t, a, 60_000)
	c := startBenchNode(t, nodeOpts{durability: store.None}, a.p2p.Addrs()[0])
	waitFor(t, "c to join a first page", func() bool { tr, _ := c.db.Transfer(); return tr != nil })
	a.stop()
	if c.p2p.SyncStats().TransfersDone > 0 {
		t.Fatal("c finished its transfer before a was stopped: make the state larger")
	}
	poll.Until(t, time.Minute, "c to give the transfer up", func() bool { return c.p2p.SyncStats().TransfersAbandoned > 0 })
	waitFor(t, "c's stored transfer progress to be deleted", func() bool { tr, err := c.db.Transfer(); return tr == nil && err == nil })
}
