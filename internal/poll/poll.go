// Package poll is a test harness: it waits for a condition by polling it
// with a deadline, so tests never sleep to synchronise.
package poll

import (
	"testing"
	"time"
)

// Interval is the time between two checks of a condition.
const Interval = 5 * time.Millisecond

// Until checks cond every Interval until it holds, and fails t if it
// does not within d; what names the condition in the failure.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}
