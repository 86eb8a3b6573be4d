package p2p

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/store"
)

// BenchmarkLoopbackSync measures sync throughput between two nodes on
// loopback: a holds b.N counter ops on 1,000 keys, written by 64 writers
// at a time (so its engine logs them in shared entries, which entries/s
// counts) or by one (an entry each), then b starts with a as its peer,
// and the clock runs until b holds them all, committed with the
// durability named. b holds a write of its own,
// so it is not a new node, which would get the state instead of the log;
// the new-node case runs b with nothing of its own, to measure that.
//
//	go test -run '^$' -bench LoopbackSync -benchtime 100000x ./p2p
func BenchmarkLoopbackSync(b *testing.B) {
	for _, d := range []store.Durability{store.Fsync, store.None} {
		for _, writers := range []int{64, 1} {
			b.Run(fmt.Sprintf("durability=%s/writers=%d", d, writers), func(b *testing.B) { benchmarkLoopbackSync(b, d, writers, false) })
		}
	}
	b.Run("new-node", func(b *testing.B) { benchmarkLoopbackSync(b, store.Fsync, 64, true) })
}

func benchmarkLoopbackSync(b *testing.B, durability store.Durability, writers int, empty bool) {
	a := startBenchNode(b, nodeOpts{durability: store.None})
	ctx := context.Background()
	errs := make(chan error, writers)
	for i := 0; i < b.N; i += writers {
		n := min(writers, b.N-i)
		for j := range n {
			go func() {
				_, err := a.eng.Do(ctx, engine.Add(fmt.Sprint("k", (i+j)%1000), 1))
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	entries := 0
	if err := a.db.AllEntries(func(store.Entry) error { entries++; return nil }); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if !empty {
		writeOffline(b, dir, engine.Add("own", 1))
	}
	b.ResetTimer()
	c := startBenchNode(b, nodeOpts{durability: durability, dir: dir}, a.p2p.Addrs()[0])
	actx := a.db.Context()
	av := actx.VersionVector()
	for {
		cctx := c.db.Context()
		if o := cctx.VersionVector().Compare(av); o == crdt.After || o == crdt.Equal {
			break
		}
		if b.Elapsed() > 5*time.Minute {
			b.Fatal("not synced in 5 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if !empty { // a new node gets the state, not the log
		b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
	}
}

// writeOffline performs op in the store of dir, as its node.
func writeOffline(tb testing.TB, dir string, op engine.Op) {
	tb.Helper()
	id, err := identity.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), Durability: store.None})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	eng := engine.New(db, id.Replica, engine.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	_, err = eng.Do(ctx, op)
	cancel()
	<-done
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkChangedKeysInALargeStore: two nodes in step on a store of
// 1,000,000 keys; a then changes k keys, and the bytes both send until b
// holds the changes are compared with the encoded deltas of those changes:
// the bytes of the messages, and those on the wire (their connection runs
// through a counting proxy).
//
//	go test -run '^$' -bench ChangedKeys -benchtime 1x -timeout 30m ./p2p
func BenchmarkChangedKeysInALargeStore(b *testing.B) {
	const keys, batch = 1_000_000, 1000
	a := startBenchNode(b, nodeOpts{durability: store.None})
	ctx := context.Background()
	for i := 0; i < keys; i += batch {
		ops := make([]engine.Op, batch)
		for j := range ops {
			ops[j] = engine.Set(fmt.Sprintf("k%07d", i+j), []byte("v0"))
		}
		if _, err := a.eng.DoAll(ctx, ops...); err != nil {
			b.Fatal(err)
		}
	}
	addr, proxy := throughProxy(b, a)
	c := startBenchNode(b, nodeOpts{durability: store.None}, addr)
	inStep := func() bool { av, cv := a.db.Context(), c.db.Context(); return av.Equal(&cv) }
	for !inStep() {
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint("k=", k), func(b *testing.B) {
			for b.Loop() {
				sent := func() uint64 {
					var n uint64
					for _, s := range a.p2p.Stats() {
						n += s.BytesSent
					}
					for _, s := range c.p2p.Stats() {
						n += s.BytesSent
					}
					return n
				}
				before, wire := sent(), proxy.bytes.Load()
				var deltas int
				for i := range k {
					name := fmt.Sprintf("k%07d", (i*7919)%keys)
					if _, err := a.eng.Do(ctx, engine.Set(name, []byte("changed"))); err != nil {
						b.Fatal(err)
					}
				}
				// The deltas of the k changes, as the log holds them.
				av := a.db.Context()
				a.db.Entries(a.eng.Replica(), av.VersionVector()[a.eng.Replica()]-crdt.Seq(k), func(e store.Entry) error {
					enc, _ := e.Delta.MarshalCBOR()
					deltas += len(enc)
					return nil
				})
				for !inStep() {
					time.Sleep(5 * time.Millisecond)
				}
				// Let the round in flight finish before counting.
				time.Sleep(200 * time.Millisecond)
				b.ReportMetric(float64(sent()-before)/float64(deltas), "messages/deltas")
				b.ReportMetric(float64(proxy.bytes.Load()-wire)/float64(deltas), "wire/deltas")
				b.ReportMetric(float64(deltas), "delta-bytes")
			}
		})
	}
}
