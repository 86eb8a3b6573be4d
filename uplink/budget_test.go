package uplink

import (
	"testing"
	"time"
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
