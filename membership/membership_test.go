package membership

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// run heartbeats id at the given offsets from t0 and ticks every 100 ms
// until the end, returning the changes with the time of each.
func run(tb *Table, id string, beats []time.Duration, end time.Duration) (changes []Change, at []time.Duration) {
	b := 0
	for now := time.Duration(0); now <= end; now += 100 * time.Millisecond {
		for b < len(beats) && beats[b] <= now {
			if c, ok := tb.Heartbeat(id, t0.Add(beats[b])); ok {
				changes, at = append(changes, c), append(at, now)
			}
			b++
		}
		for _, c := range tb.Tick(t0.Add(now)) {
			changes, at = append(changes, c), append(at, now)
		}
	}
	return changes, at
}

// idleBeats returns heartbeats every 3-5 s (jittered rounds) until end.
func idleBeats(rng *rand.Rand, end time.Duration) []time.Duration {
	var beats []time.Duration
	for t := time.Duration(0); t < end; t += 3*time.Second + time.Duration(rng.Int64N(int64(2*time.Second))) {
		beats = append(beats, t)
	}
	return beats
}

func TestIdlePeersAreNeverSuspected(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for peer := range 5 {
		tb := New(DefaultConfig())
		tb.Add("p", t0, t0)
		if changes, _ := run(tb, "p", idleBeats(rng, 10*time.Minute), 10*time.Minute); len(changes) != 0 {
			t.Fatalf("peer %d: %v", peer, changes)
		}
	}
}

func TestSilentPeerIsSuspectedThenDead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	beats := idleBeats(rng, time.Minute)
	last := beats[len(beats)-1]
	tb := New(DefaultConfig())
	changes, at := run(tb, "p", beats, 2*time.Minute)
	if len(changes) != 2 || changes[0].To != Suspect || changes[1].To != Dead {
		t.Fatalf("changes %v", changes)
	}
	if dead := at[1] - last; dead > 10*time.Second {
		t.Errorf("dead %v after the last heartbeat, want ≤ 10 s", dead)
	}
	// It comes back.
	if c, ok := tb.Heartbeat("p", t0.Add(3*time.Minute)); !ok || c.To != Alive {
		t.Errorf("a heartbeat from a dead peer: %v %v", c, ok)
	}
}

func TestBusyPeerIsNotSuspectedWhenItGoesIdle(t *testing.T) {
	var beats []time.Duration
	for t := time.Duration(0); t < 30*time.Second; t += 10 * time.Millisecond {
		beats = append(beats, t) // many messages a second
	}
	beats = append(beats, idleBeats(rand.New(rand.NewPCG(5, 6)), 2*time.Minute)[8:]...)
	tb := New(DefaultConfig())
	if changes, _ := run(tb, "p", beats, 2*time.Minute); len(changes) != 0 {
		t.Errorf("changes %v", changes)
	}
}

func TestLeftPeerIsNotSuspected(t *testing.T) {
	tb := New(DefaultConfig())
	tb.Heartbeat("p", t0)
	if c, ok := tb.Leave("p", t0.Add(time.Second)); !ok || c.To != Left {
		t.Fatalf("leave: %v", c)
	}
	if changes := tb.Tick(t0.Add(time.Hour)); len(changes) != 0 {
		t.Errorf("a peer that left: %v", changes)
	}
	if m, _ := tb.Get("p"); m.State != Left || !m.Since.Equal(t0.Add(time.Second)) {
		t.Errorf("member %+v", m)
	}
}

func TestRestoredPeerCountsFromItsLastSighting(t *testing.T) {
	tb := New(DefaultConfig())
	tb.Add("p", t0, t0.Add(time.Hour)) // last seen an hour before this start
	changes := tb.Tick(t0.Add(time.Hour))
	if len(changes) != 1 || changes[0].To != Dead {
		t.Errorf("changes %v", changes)
	}
}

// TestOutagesAreNotLearned: a peer back from a minute-long partition is
// detected as fast as before when it then fails.
func TestOutagesAreNotLearned(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	beats := idleBeats(rng, time.Minute)
	for _, b := range idleBeats(rng, time.Minute) {
		beats = append(beats, 2*time.Minute+b) // back after a minute's silence
	}
	last := beats[len(beats)-1]
	tb := New(DefaultConfig())
	changes, at := run(tb, "p", beats, 4*time.Minute)
	if n := len(changes); n < 2 || changes[n-1].To != Dead {
		t.Fatalf("changes %v", changes)
	}
	if dead := at[len(at)-1] - last; dead > 10*time.Second {
		t.Errorf("dead %v after the last heartbeat, want ≤ 10 s", dead)
	}
}
