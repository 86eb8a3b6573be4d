package node

import (
	"log/slog"
	"testing"
	"time"

	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
)

// TestLoadWatcherWakesOnWork: a measurement that finds no work schedules
// the next one an idle interval later, or at the governor's next decision,
// whichever comes first; one that finds work, a load interval later.
func TestLoadWatcherWakesOnWork(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gov := shedding.New(shedding.Config{})
	w := &loadWatcher{gov: gov, db: db, log: slog.New(slog.DiscardHandler)}
	now := time.Now()

	next, wake := w.measure(now)
	if next != idleInterval || wake == nil {
		t.Fatalf("with no work: next in %s, wake %v; want %s and a wake", next, wake, idleInterval)
	}
	select {
	case <-wake:
		t.Fatal("woken before any decision")
	default:
	}
	gov.Admit(shedding.Normal, now)
	select {
	case <-wake:
	default:
		t.Fatal("the first decision after an idle measurement did not wake the driver")
	}

	if next, wake = w.measure(now.Add(time.Millisecond)); next != loadInterval || wake != nil {
		t.Fatalf("after a decision: next in %s, wake %v; want %s and none", next, wake, loadInterval)
	}
	if next, _ = w.measure(now.Add(loadInterval)); next != idleInterval {
		t.Fatalf("with no work since: next in %s, want %s", next, idleInterval)
	}
}
