package node

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"
)

// TestQuantile: the quantile is taken over what the histogram gained
// since the previous reading, as the upper bound of its bucket; the last,
// open bucket gives its lower bound.
func TestQuantile(t *testing.T) {
	h := &metrics.Float64Histogram{
		Buckets: []float64{0, 0.001, 0.010, 0.100, math.Inf(1)},
		Counts:  []uint64{100, 10, 5, 3},
	}
	for _, tc := range []struct {
		prev []uint64
		q    float64
		want time.Duration
	}{
		{[]uint64{0, 0, 0, 0}, 0.5, time.Millisecond},
		{[]uint64{100, 0, 0, 0}, 0.5, 10 * time.Millisecond},   // 18 new: 10 under 10ms
		{[]uint64{100, 0, 0, 0}, 0.8, 100 * time.Millisecond},  // the 15th is in (10ms, 100ms]
		{[]uint64{100, 10, 5, 0}, 0.9, 100 * time.Millisecond}, // only the open bucket gained
		{[]uint64{100, 10, 5, 3}, 0.9, 0},                      // nothing new
		{[]uint64{91, 9, 5, 3}, 0.9, time.Millisecond},         // 9 quick, 1 slow: the 9th of 10 is quick
	} {
		if got := quantile(h, tc.prev, tc.q); got != tc.want {
			t.Errorf("quantile(prev %v, %v) = %v, want %v", tc.prev, tc.q, got, tc.want)
		}
	}
}
