package series

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkQueryDay queries one day of a 1 Hz sensor, stored as a sensor
// adapter stores it (one ingest per reading, so 86,400 small fragments),
// then compacted as the store's GC does every few minutes.
//
//	go test -run '^$' -bench QueryDay -benchtime 20x ./series
func BenchmarkQueryDay(b *testing.B) {
	s := newSeries(b, fixedClock(true))
	ctx := context.Background()
	day := 24 * time.Hour
	start := time.Now()
	for i := range int(day / time.Second) {
		r := Reading{Sensor: "boiler.temp", Value: float64(i % 1000), Time: t0.Add(time.Duration(i) * time.Second)}
		if _, err := s.Ingest(ctx, []Reading{r}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored 86,400 readings in %s", time.Since(start).Round(time.Millisecond))
	if _, err := s.db.CompactReadings(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		step time.Duration
		want int
	}{
		{"step=1m/summaries", time.Minute, 1440},
		{"step=90s/readings", 90 * time.Second, 960},
		{"raw", 0, 86400},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				pts, err := s.Run(ctx, Query{Sensor: "boiler.temp", From: t0, To: t0.Add(day), Step: c.step, Agg: Avg})
				if err != nil {
					b.Fatal(err)
				}
				if len(pts) != c.want {
					b.Fatalf("%d points, want %d", len(pts), c.want)
				}
			}
		})
	}
}

// BenchmarkIngest measures Ingest of line-protocol-sized batches
// (without HTTP), durability none.
func BenchmarkIngest(b *testing.B) {
	for _, series := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=5000/series=%d", series), func(b *testing.B) {
			s := newSeries(b, fixedClock(true))
			ctx := context.Background()
			rs := make([]Reading, 5000)
			n := 0
			for b.Loop() {
				for i := range rs {
					n++
					rs[i] = Reading{Sensor: fmt.Sprint("s", i%series), Value: 1, Time: t0.Add(time.Duration(n) * time.Millisecond)}
				}
				if _, err := s.Ingest(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
