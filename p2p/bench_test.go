package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

// BenchmarkLoopbackSync measures sync throughput between two nodes on
// loopback: a holds b.N delta-log entries (counter ops on 1,000 keys),
// then b starts with a as its peer, and the clock runs until b holds them
// all, committed with the durability named.
//
//	go test -run '^$' -bench LoopbackSync -benchtime 100000x ./p2p
func BenchmarkLoopbackSync(b *testing.B) {
	for _, d := range []store.Durability{store.Fsync, store.None} {
		b.Run("durability="+string(d), func(b *testing.B) { benchmarkLoopbackSync(b, d) })
	}
}

func benchmarkLoopbackSync(b *testing.B, durability store.Durability) {
	a := startBenchNode(b, nodeOpts{durability: store.None})
	ctx := context.Background()
	errs := make(chan error, 64)
	for i := 0; i < b.N; i += 64 {
		n := min(64, b.N-i)
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
	b.ResetTimer()
	c := startBenchNode(b, nodeOpts{durability: durability}, a.p2p.Addrs()[0])
	av := a.db.Context()
	for {
		cv := c.db.Context()
		if cv.Equal(&av) {
			break
		}
		if b.Elapsed() > 5*time.Minute {
			b.Fatal("not synced in 5 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
}
