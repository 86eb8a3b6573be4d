package aggregator_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edged-dev/edged/aggregator"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/mqtttest"
	"github.com/edged-dev/edged/series"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/uplink"
)

// side is a store with its engine running.
type side struct {
	id  identity.Identity
	db  *store.DB
	eng *engine.Engine
}

func newSide(tb testing.TB, d store.Durability, onCommit func()) *side {
	tb.Helper()
	dir := tb.TempDir()
	id, err := identity.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), Durability: d})
	if err != nil {
		tb.Fatal(err)
	}
	s := &side{id: id, db: db}
	s.eng = engine.New(db, id.Replica, engine.Config{OnCommit: func([]string) {
		if onCommit != nil {
			onCommit()
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.eng.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-done
		db.Close()
	})
	return s
}

// envInt returns the integer in environment variable name, or def.
func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return n
}

// drain uploads the node's backlog to a fresh aggregator through a real
// Mosquitto and returns how long it took (from connecting to the last
// ack) and the uplink's final status.
func drain(b *testing.B, node *side, compress bool) (time.Duration, uplink.Status) {
	broker := mqtttest.Start(b)
	agg := newSide(b, store.Fsync, nil)
	bk := mqttconn.Broker{URL: broker.URL, ReconnectMaxInterval: time.Second}
	a, err := aggregator.New(aggregator.Config{Broker: bk, Queue: 16}, aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: agg.eng, DB: agg.db})
	if err != nil {
		b.Fatal(err)
	}
	up, err := uplink.New(uplink.Config{Broker: bk, Name: "bench", Compress: compress, MaxBatchBytes: 256 << 10, Window: 4, Tick: 100 * time.Millisecond, AckTimeout: 30 * time.Second},
		uplink.Options{Key: node.id.Key, Replica: node.id.Replica, PeerID: node.id.PeerID, DB: node.db, Bulk: series.IsRawReadings})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aggDone := make(chan error, 1)
	go func() { aggDone <- a.Run(ctx) }()
	defer func() { cancel(); <-aggDone }()
	select {
	case <-a.Subscribed():
	case <-time.After(10 * time.Second):
		b.Fatal("the aggregator did not subscribe")
	}
	b.ResetTimer()
	start := time.Now()
	upDone := make(chan error, 1)
	go func() { upDone <- up.Run(ctx) }()
	defer func() { cancel(); <-upDone }()
	for {
		st := up.Status()
		if st.Connected && st.Backlog == 0 && st.ReadingsBacklog == 0 && st.InFlight == 0 {
			b.StopTimer()
			return time.Since(start), st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkCloudDrain fills a node's log with a backlog of deltas (one
// operation each, on distinct keys: nothing merges) and measures the
// uplink draining it to an aggregator (fsync per merge) through a local
// Mosquitto. EDGED_BENCH_DELTAS sets the backlog (default 100,000).
func BenchmarkCloudDrain(b *testing.B) {
	n := envInt(b, "EDGED_BENCH_DELTAS", 100_000)
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("zstd=%v", compress), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				node := newSide(b, store.None, nil)
				ctx := context.Background()
				for i := 0; i < n; i += 1000 {
					ops := make([]engine.Op, min(1000, n-i))
					for j := range ops {
						ops[j] = engine.Add(fmt.Sprintf("app/k%07d", i+j), 1)
					}
					if _, err := node.eng.DoAll(ctx, ops...); err != nil {
						b.Fatal(err)
					}
				}
				d, st := drain(b, node, compress)
				b.ReportMetric(float64(n)/d.Seconds(), "deltas/s")
				b.ReportMetric(d.Seconds(), "s/drain")
				b.ReportMetric(float64(st.WireBytes)/float64(n), "wire-B/delta")
			}
		})
	}
}

// BenchmarkCloudReadings measures the bytes on the wire per reading:
// EDGED_BENCH_READINGS readings (default 100,000) of 10 sensors, one a
// second each, as HTTP ingestion stores them (raw readings, minute
// summaries and latest values), drained with and without zstd.
func BenchmarkCloudReadings(b *testing.B) {
	n := envInt(b, "EDGED_BENCH_READINGS", 100_000)
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("zstd=%v", compress), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				node := newSide(b, store.None, nil)
				ser := series.New(node.db, node.eng, nil, nil)
				t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
				const perPost = 100 // readings of one request
				for i := 0; i < n; i += perPost {
					rs := make([]series.Reading, min(perPost, n-i))
					for j := range rs {
						k := i + j
						rs[j] = series.Reading{Sensor: fmt.Sprintf("temp-%d", k%10), Unit: "C", Value: math.Round((20+5*math.Sin(float64(k)/600))*100) / 100,
							Time: t0.Add(time.Duration(k/10) * time.Second)}
					}
					if _, err := ser.Ingest(context.Background(), rs); err != nil {
						b.Fatal(err)
					}
				}
				d, st := drain(b, node, compress)
				b.ReportMetric(float64(st.WireBytes)/float64(n), "wire-B/reading")
				b.ReportMetric(float64(n)/d.Seconds(), "readings/s")
			}
		})
	}
}
