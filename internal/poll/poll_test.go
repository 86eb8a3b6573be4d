package poll

import (
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = format }

func TestUntil(t *testing.T) {
	n := 0
	Until(t, time.Minute, "the third check", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("checked %d times, want 3", n)
	}
	// The recorder does not stop the test; the condition holds once it
	// has failed, so Until returns.
	r := &recorder{TB: t}
	Until(r, 10*Interval, "never", func() bool { return r.failed != "" })
	if r.failed == "" {
		t.Error("a condition that never holds did not fail the test")
	}
}
