package node

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
)

// loadInterval is how often the node's memory and disk are measured for
// the shedding governor.
const loadInterval = 100 * time.Millisecond

// Memory as the Go runtime counts it against GOMEMLIMIT: all it mapped,
// less what it returned to the OS.
var memSamples = []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}

// watchLoad feeds the governor the node's memory (against the Go memory
// limit) and data directory (against its budget) until ctx is done, and
// logs each change of a class's state.
func watchLoad(ctx context.Context, gov *shedding.Governor, db *store.DB, log *slog.Logger) {
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		metrics.Read(memSamples)
		used := memSamples[0].Value.Uint64() - memSamples[1].Value.Uint64()
		if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < 1<<62 {
			gov.ObserveMemory(used, uint64(limit), now)
		}
		st := db.Stats()
		gov.ObserveDisk(st.Bytes, st.Budget, now)
		gov.Tick(now)
		for _, c := range gov.Changes() {
			if c.Degraded {
				log.Warn("shedding load", "class", c.Class.String(), "reason", string(c.Reason))
			} else {
				log.Info("load shedding over", "class", c.Class.String())
			}
		}
	}
}
