package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

// The durable benchmarks run the production configuration: fsync
// durability and the low-memory profile, on a fresh data directory in the
// benchmark's temporary directory (so on the disk that holds it, not
// tmpfs, or fsync would be free). Each round of a benchmark gets its own
// directory; opening and closing are outside the timer.
//
//	go test -run '^$' -bench 'Durable|BadgerFsync' -benchtime 3s ./engine

// benchWriters is the number of concurrent writers of the target
// (≥ 50,000 durable ops/s with 64 writers on a 2-core machine).
const benchWriters = 64

// durability is the benchmarks' store durability: fsync, as in
// production; none shows what the engine does without waiting for the
// disk (go test -bench Durable ./engine -args -durability none).
var durability = flag.String("durability", string(store.Fsync), "store durability of the engine benchmarks: fsync or none")

// openBench starts a store and engine on a fresh directory and returns
// the directory and a stop function that stops the engine and closes the
// store (call it with the timer stopped).
func openBench(b *testing.B) (string, *engine.Engine, func()) {
	b.Helper()
	dir := b.TempDir()
	_, e, stop := openWith(b, store.Options{Dir: dir, Profile: store.LowMemory, Durability: store.Durability(*durability)}, 1)
	return dir, e, stop
}

// commits returns the number of Badger transactions the engine committed
// to the closed data directory dir, or false if it cannot tell.
//
// The engine exposes no counter, so this reads Badger's commit timestamps:
// every write transaction takes the next one, store.Open writes the
// format marker ("mformat") in the first, and every engine commit
// rewrites the store's context ("c"). On a directory only the engine
// wrote after Open, commits = version("c") - version("mformat").
func commits(b *testing.B, dir string) (uint64, bool) {
	b.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).
		WithReadOnly(true).
		WithLogger(nil).
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(1 << 20).
		WithIndexCacheSize(1 << 20))
	if err != nil {
		b.Logf("open %s to count commits: %v", dir, err)
		return 0, false
	}
	defer bdb.Close()
	var first, last uint64
	err = bdb.View(func(txn *badger.Txn) error {
		f, err := txn.Get([]byte("mformat"))
		if err != nil {
			return err
		}
		c, err := txn.Get([]byte("c"))
		if err != nil {
			return err
		}
		first, last = f.Version(), c.Version()
		return nil
	})
	if err != nil || last <= first {
		b.Logf("count commits in %s: versions %d..%d: %v", dir, first, last, err)
		return 0, false
	}
	return last - first, true
}

// BenchmarkDurableOps measures durable PN-counter increments through the
// engine: one writer (each op waits for its own fsync), and 64 writers on
// their own keys or all on one key (ops share fsyncs by group commit).
// ops/commit is the average group size.
func BenchmarkDurableOps(b *testing.B) {
	for _, bc := range []struct{ writers, keys int }{
		{1, 1},
		{benchWriters, benchWriters},
		{benchWriters, 1},
	} {
		b.Run(fmt.Sprintf("writers=%d/keys=%d", bc.writers, bc.keys), func(b *testing.B) {
			benchDurableOps(b, bc.writers, bc.keys)
		})
	}
}

func benchDurableOps(b *testing.B, writers, keys int) {
	dir, e, stop := openBench(b)
	ctx := context.Background()
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("counter/%02d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if writers == 1 {
		for i := range b.N {
			if _, err := e.Do(ctx, engine.Add(names[i%keys], 1)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		// RunParallel starts p × GOMAXPROCS goroutines.
		b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			name := names[int(next.Add(1)-1)%keys]
			for pb.Next() {
				if _, err := e.Do(ctx, engine.Add(name, 1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	stop()
	if n, ok := commits(b, dir); ok {
		b.ReportMetric(float64(b.N)/float64(n), "ops/commit")
	}
}

// BenchmarkDurableLatency measures the latency of durable ops from one
// writer issuing them one after another: each is a commit and an fsync.
func BenchmarkDurableLatency(b *testing.B) {
	_, e, stop := openBench(b)
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := e.Do(ctx, engine.Add("counter", 1)); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	reportLatency(b, lat)
	stop()
}

// BenchmarkOpenLoopLatency sends durable ops at a fixed 1,000/s (open loop:
// each leaves on schedule whether or not earlier ones have returned), to
// 64 keys, and reports latency percentiles: the engine's share of an HTTP
// op's latency. Run it with -benchtime 10000x (ten seconds).
func BenchmarkOpenLoopLatency(b *testing.B) {
	_, e, stop := openBench(b)
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	errs := make(chan error, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if wait := time.Until(start.Add(time.Duration(i) * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			t := time.Now()
			if _, err := e.Do(ctx, engine.Add(fmt.Sprint("k", i%64), 1)); err != nil {
				errs <- err
			}
			lat[i] = time.Since(t)
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	reportLatency(b, lat)
	stop()
}

// BenchmarkBadgerFsyncTxn is the baseline without group commit: raw Badger
// with synced writes and the low-memory profile's memtables, one small
// transaction (one 8-byte value) per op from one goroutine, so one fsync
// per op. Compare with BenchmarkDurableOps/writers=64.
func BenchmarkBadgerFsyncTxn(b *testing.B) {
	bdb, err := badger.Open(badger.DefaultOptions(b.TempDir()).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithLogger(nil).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := bdb.Close(); err != nil && !errors.Is(err, badger.ErrDBClosed) {
			b.Error(err)
		}
	}()
	keys := make([][]byte, benchWriters)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "counter/%02d", i)
	}
	var val [8]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint64(val[:], uint64(i))
		err := bdb.Update(func(txn *badger.Txn) error {
			return txn.Set(keys[i%len(keys)], val[:])
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// reportLatency reports the median and 99th percentile of lat, which it
// sorts.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
