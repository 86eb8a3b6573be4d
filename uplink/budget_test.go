package uplink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
)

func TestWindows(t *testing.T) {
	at := func(hm string) time.Time {
		c, err := clock(hm)
		if err != nil {
			t.Fatal(err)
		}
		return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(c)
	}
	night, err := ParseWindow("22:00-06:00")
	if err != nil {
		t.Fatal(err)
	}
	noon, _ := ParseWindow("11:30-12:30")
	for _, tt := range []struct {
		at   string
		ws   []Window
		want bool
	}{
		{"03:00", nil, true},
		{"23:59", []Window{night}, true},
		{"00:00", []Window{night}, true},
		{"05:59", []Window{night}, true},
		{"06:00", []Window{night}, false},
		{"21:59", []Window{night}, false},
		{"12:00", []Window{night, noon}, true},
		{"12:30", []Window{night, noon}, false},
	} {
		if got := scheduled(tt.ws, at(tt.at)); got != tt.want {
			t.Errorf("scheduled at %s in %v = %v", tt.at, tt.ws, got)
		}
	}
	for _, bad := range []string{"", "22:00", "25:00-01:00", "10:00-10:00", "10-12", "10:00-12:00-14:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) took it", bad)
		}
	}
}

// TestShedReadingsCountedOnce: the readings left out of a batch are
// counted once, though the batch is read again when it is sent again.
func TestShedReadingsCountedOnce(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eng := engine.New(db, 1, engine.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	rs := make([]crdt.Reading, 10)
	for i := range rs {
		rs[i] = crdt.Reading{Time: int64(i + 1), Value: float64(i)}
	}
	if _, err := eng.Do(ctx, engine.AddReadings("_r/temp", rs...)); err != nil {
		t.Fatal(err)
	}
	bulk := func(name string) bool { return strings.HasPrefix(name, "_r/") }
	log := &shedLog{Log: storelog.Log{DB: db, Keep: bulk}, bulk: bulk, shed: true}
	o := cloud.NewReadingsOutbox(log, nil, cloud.OutboxConfig{}, false)
	for i := range 2 {
		if b, err := o.Next(); err != nil || b == nil {
			t.Fatalf("batch %d: %v, %v", i, b, err)
		}
		if log.readings != 10 {
			t.Fatalf("%d readings counted as shed after batch %d; want 10", log.readings, i)
		}
		o.Rewind() // a reconnection: the batch is sent again
	}
}
