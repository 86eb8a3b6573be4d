package clocksync

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSynced(t *testing.T) {
	floor := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	withRTC := t.TempDir()
	if err := os.MkdirAll(filepath.Join(withRTC, "sys/class/rtc/rtc0"), 0o755); err != nil {
		t.Fatal(err)
	}
	noRTC := t.TempDir()
	for _, c := range []struct {
		name   string
		now    time.Time
		root   string
		kernel bool
		want   bool
	}{
		{"booted in 1970", time.Unix(30, 0), noRTC, true, false},
		{"before the build, even with an RTC", floor.Add(-time.Hour), withRTC, true, false},
		{"no RTC, kernel unsynchronised", floor.Add(time.Hour), noRTC, false, false},
		{"no RTC, NTP synchronised", floor.Add(time.Hour), noRTC, true, true},
		{"RTC past the build", floor.Add(time.Hour), withRTC, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := New(Options{Now: func() time.Time { return c.now }, Floor: floor, SysRoot: c.root, KernelSynced: func() bool { return c.kernel }})
			if got := ch.Synced(); got != c.want {
				t.Errorf("Synced() = %v, want %v", got, c.want)
			}
		})
	}
}
