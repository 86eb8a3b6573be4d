package node

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
)

// How often the node's load is measured for the shedding governor: every
// loadInterval while work comes to the governor or a class is shed, and
// every idleInterval once a measurement found neither, so an idle
// gateway wakes up less (its CPU budget is 1% of a core). The first
// decision after an idle measurement wakes the driver at once, so a burst
// is measured from its start.
const (
	loadInterval = 100 * time.Millisecond
	idleInterval = time.Second
)

// The runtime's measures read for the governor: memory as the Go runtime
// counts it against GOMEMLIMIT (all it mapped, less what it returned to
// the OS), and how long goroutines waited to run.
var loadSamples = []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}, {Name: "/sched/latencies:seconds"}}

// queueQuantile is the quantile of the scheduler's latency, over an
// interval, taken as the CPU queue's wait: most wakeups are quick even
// under overload (timers, the collector), so the median says little.
const queueQuantile = 0.9

// watchLoad feeds the governor the node's memory (against the Go memory
// limit), CPU queue and data directory (against its budget) until ctx is
// done, and logs each change of a class's state.
func watchLoad(ctx context.Context, gov *shedding.Governor, db *store.DB, log *slog.Logger) {
	w := &loadWatcher{gov: gov, db: db, log: log}
	t := time.NewTimer(loadInterval)
	defer t.Stop()
	var wake <-chan struct{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		var next time.Duration
		next, wake = w.measure(time.Now())
		t.Reset(next)
	}
}

// loadWatcher is watchLoad's state between measurements.
type loadWatcher struct {
	gov       *shedding.Governor
	db        *store.DB
	log       *slog.Logger
	prev      []uint64 // the scheduler latency histogram's counts
	decisions uint64   // the governor's decisions so far
}

// measure feeds the governor one measurement at now and returns when to
// measure next: after loadInterval while there is work or shedding, else
// after idleInterval or at the governor's next decision, whichever comes
// first.
func (w *loadWatcher) measure(now time.Time) (time.Duration, <-chan struct{}) {
	gov := w.gov
	metrics.Read(loadSamples)
	used := loadSamples[0].Value.Uint64() - loadSamples[1].Value.Uint64()
	if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < 1<<62 {
		gov.ObserveMemory(used, uint64(limit), now)
	}
	h := loadSamples[2].Value.Float64Histogram()
	if w.prev != nil {
		gov.ObserveQueue(quantile(h, w.prev, queueQuantile), now)
	}
	w.prev = append(w.prev[:0], h.Counts...)
	st := w.db.Stats()
	gov.ObserveDisk(st.Used(), st.Budget, now)
	gov.Tick(now)
	for _, c := range gov.Changes() {
		if c.Degraded {
			w.log.Warn("shedding load", "class", c.Class.String(), "reason", string(c.Reason))
		} else {
			w.log.Info("load shedding over", "class", c.Class.String())
		}
	}
	n, degraded := gov.Activity()
	busy := n != w.decisions || degraded
	w.decisions = n
	if busy {
		return loadInterval, nil
	}
	return idleInterval, gov.WakeOnWork(n)
}

// quantile returns the q-quantile of the counts h gained since prev (the
// upper bound of its bucket), or 0 when it gained none.
func quantile(h *metrics.Float64Histogram, prev []uint64, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		total += c - prev[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total))) // the rank-th smallest wait
	var n uint64
	for i, c := range h.Counts {
		n += c - prev[i]
		if n >= rank {
			upper := h.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = h.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
