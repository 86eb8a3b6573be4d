package shedding

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func admitN(g *Governor, c Class, n int, now time.Time) (admitted, downsampled, refused int) {
	for range n {
		switch d := g.Admit(c, now); {
		case !d.Admit:
			refused++
			if d.RetryAfter <= 0 {
				panic("a refusal without Retry-After")
			}
		case d.Downsample:
			downsampled++
		default:
			admitted++
		}
	}
	return
}

// TestClassesShareTheLimit: with 8 in flight allowed, bulk work is taken
// up to 4, downsampled up to 6 and refused beyond; normal work up to 8;
// critical work whatever is in flight.
func TestClassesShareTheLimit(t *testing.T) {
	g := New(Config{MinLimit: 2, MaxLimit: 8})
	if a, d, r := admitN(g, Bulk, 10, t0); a != 4 || d != 2 || r != 4 {
		t.Errorf("bulk: %d taken, %d downsampled, %d refused; want 4, 2, 4", a, d, r)
	}
	if a, _, r := admitN(g, Normal, 5, t0); a != 2 || r != 3 {
		t.Errorf("normal: %d taken, %d refused; want 2, 3", a, r)
	}
	if a, _, r := admitN(g, Critical, 10, t0); a != 10 || r != 0 {
		t.Errorf("critical: %d taken, %d refused; want 10, 0", a, r)
	}
	st := g.Status()
	if st.State != "degraded" || st.InFlight != 18 || !st.Classes["bulk"].Degraded || st.Classes["bulk"].Refused[ReasonConcurrency] != 4 {
		t.Errorf("status %+v", st)
	}
	// Work ends, fast: every class recovers once the hold is over.
	for range 18 {
		g.Done(time.Millisecond, t0)
	}
	g.Tick(t0.Add(500 * time.Millisecond))
	if !g.Status().Classes["normal"].Degraded {
		t.Error("normal recovered before the hold was over")
	}
	g.Tick(t0.Add(time.Second))
	if st := g.Status(); st.State != "normal" {
		t.Errorf("after the hold: %+v", st)
	}
	changes := g.Changes()
	if len(changes) != 4 { // bulk and normal in, and out
		t.Errorf("changes %+v", changes)
	}
	if len(g.Changes()) != 0 {
		t.Error("changes reported twice")
	}
}

// TestRefusalCountersStartAtZero: every reason a class can be refused for
// has its counter from the start, so /metrics exports it at zero and an
// alert sees the first refusal as an increase.
func TestRefusalCountersStartAtZero(t *testing.T) {
	st := New(Config{}).Status()
	for class, want := range map[string][]Reason{
		"critical": {ReasonConcurrency},
		"normal":   {ReasonConcurrency, ReasonMemory},
		"bulk":     {ReasonConcurrency, ReasonMemory, ReasonDisk},
	} {
		got := st.Classes[class].Refused
		for _, r := range want {
			if n, ok := got[r]; !ok || n != 0 {
				t.Errorf("%s refused for %s: %d, %v; want 0, present", class, r, n, ok)
			}
		}
	}
}

// TestTickReportsOnlyShedWork: work in flight up to where the next would
// be downsampled degrades nothing at a tick; only a newcomer shed does.
func TestTickReportsOnlyShedWork(t *testing.T) {
	g := New(Config{MinLimit: 8, MaxLimit: 8})
	if a, d, r := admitN(g, Bulk, 4, t0); a != 4 || d != 0 || r != 0 {
		t.Fatalf("bulk: %d taken, %d downsampled, %d refused; want 4, 0, 0", a, d, r)
	}
	g.Tick(t0)
	if st := g.Status(); st.State != "normal" || len(g.Changes()) != 0 {
		t.Errorf("degraded with nothing shed: %+v", st)
	}
	if n, degraded := g.Activity(); n != 4 || degraded {
		t.Errorf("activity %d, %v; want 4 decisions, none degraded", n, degraded)
	}
	if _, d, _ := admitN(g, Bulk, 1, t0); d != 1 {
		t.Fatal("the fifth bulk request was not downsampled")
	}
	if n, degraded := g.Activity(); n != 5 || !degraded {
		t.Errorf("activity %d, %v; want 5 decisions, degraded", n, degraded)
	}
	if st := g.Status(); !st.Classes["bulk"].Degraded {
		t.Errorf("bulk not degraded once shed: %+v", st)
	}
}

// TestLatencyCutsTheLimit: fast work lets the limit grow from its start
// to the maximum; while even the fastest work of an interval is slower
// than the target, the limit falls in proportion each interval, down to
// MinLimit.
func TestLatencyCutsTheLimit(t *testing.T) {
	g := New(Config{MinLimit: 4, MaxLimit: 100, LatencyTarget: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
	if l := g.Status().Limit; l != startLimit {
		t.Errorf("limit %d at start, want %d", l, startLimit)
	}
	now := t0
	step := func(n int, every, latency time.Duration) {
		for range n {
			g.Admit(Normal, now)
			now = now.Add(every)
			g.Done(latency, now)
		}
	}
	step(6000, time.Millisecond, time.Millisecond) // one more per limit completions: (100² − 32²)/2 of them
	if l := g.Status().Limit; l != 100 {
		t.Errorf("limit %d after fast work, want the maximum 100", l)
	}
	// 1 s at 12ms: ten intervals, each cutting by 10/12.
	step(50, 20*time.Millisecond, 12*time.Millisecond)
	if l := g.Status().Limit; l < 12 || l > 22 {
		t.Errorf("limit %d after ten intervals 20%% over the target, want (10/12)^10 × 100 ≈ 16", l)
	}
	step(1000, 100*time.Millisecond, time.Second)
	if l := g.Status().Limit; l != 4 {
		t.Errorf("limit %d under lasting overload, want the floor 4", l)
	}
}

// TestQueueCutsTheLimit: while runnable work waits longer than the queue
// target for a CPU past one interval, with at least MinLimit requests in
// flight, the limit falls once an interval and does not grow however fast
// admitted work is; a blip, or a queue with little in flight (background
// work's), cuts nothing; critical work is still taken;
// once the wait is back under the target the limit grows again.
func TestQueueCutsTheLimit(t *testing.T) {
	g := New(Config{MinLimit: 4, MaxLimit: 64, QueueTarget: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
	now := t0
	fast := func(n int) {
		for range n {
			if g.Admit(Normal, now).Admit {
				g.Done(time.Millisecond, now)
			}
		}
	}
	g.ObserveQueue(time.Second, now)
	now = now.Add(100 * time.Millisecond)
	g.ObserveQueue(time.Millisecond, now)
	if l := g.Status().Limit; l != startLimit {
		t.Errorf("limit %d after a blip, want %d", l, startLimit)
	}
	for range 5 {
		g.ObserveQueue(40*time.Millisecond, now)
		now = now.Add(100 * time.Millisecond)
	}
	if l := g.Status().Limit; l != startLimit {
		t.Errorf("limit %d after a queue with nothing in flight, want %d", l, startLimit)
	}
	if a, _, _ := admitN(g, Normal, 4, now); a != 4 {
		t.Fatalf("%d of 4 normal requests taken", a)
	}
	for range 10 {
		g.ObserveQueue(40*time.Millisecond, now) // four times the target: halved
		fast(100)
		now = now.Add(100 * time.Millisecond)
	}
	if l := g.Status().Limit; l != 4 {
		t.Errorf("limit %d after a second of queueing, want the floor 4", l)
	}
	if st := g.Status(); st.QueueWaitMS != 40 {
		t.Errorf("queue wait %v ms in status, want 40", st.QueueWaitMS)
	}
	if a, _, r := admitN(g, Normal, 10, now); a != 0 || r != 10 {
		t.Errorf("normal: %d taken, %d refused; want 0 (4 in flight at the limit), 10", a, r)
	}
	if a, _, r := admitN(g, Critical, 100, now); a != 100 || r != 0 {
		t.Errorf("critical: %d taken, %d refused; want 100, 0", a, r)
	}
	for range 104 {
		g.Done(time.Millisecond, now)
	}
	now = now.Add(100 * time.Millisecond)
	g.ObserveQueue(9*time.Millisecond, now)
	fast(100)
	if l := g.Status().Limit; l <= 4 {
		t.Errorf("limit %d: did not grow once the queue was under its target", l)
	}
}

// TestMemoryShedsByClassWithHysteresis: bulk work is refused from 85% of
// the memory limit, normal work from 95%, critical never; each recovers
// below a lower level, after the hold.
func TestMemoryShedsByClassWithHysteresis(t *testing.T) {
	g := New(Config{})
	const limit = 1000
	check := func(now time.Time, want map[Class]bool) {
		t.Helper()
		for c, ok := range want {
			d := g.Admit(c, now)
			if d.Admit != ok {
				t.Errorf("%s at memory %.2f: admitted %v, want %v", c, g.Status().MemoryRatio, d.Admit, ok)
			}
			if d.Admit {
				g.Done(time.Millisecond, now)
			} else if d.Reason != ReasonMemory {
				t.Errorf("%s refused for %s", c, d.Reason)
			}
		}
	}
	g.ObserveMemory(800, limit, t0)
	check(t0, map[Class]bool{Bulk: true, Normal: true, Critical: true})
	g.ObserveMemory(860, limit, t0)
	check(t0, map[Class]bool{Bulk: false, Normal: true, Critical: true})
	g.ObserveMemory(960, limit, t0)
	check(t0, map[Class]bool{Bulk: false, Normal: false, Critical: true})
	g.ObserveMemory(900, limit, t0) // above normal's lower level
	check(t0, map[Class]bool{Bulk: false, Normal: false, Critical: true})
	g.ObserveMemory(800, limit, t0.Add(2*time.Second))
	check(t0.Add(2*time.Second), map[Class]bool{Bulk: false, Normal: true, Critical: true})
	g.ObserveMemory(700, limit, t0.Add(4*time.Second))
	check(t0.Add(4*time.Second), map[Class]bool{Bulk: true, Normal: true, Critical: true})
}

func TestDiskShedsBulk(t *testing.T) {
	g := New(Config{})
	g.ObserveDisk(96, 100, t0)
	if d := g.Admit(Bulk, t0); d.Admit || d.Reason != ReasonDisk {
		t.Errorf("bulk at 96%% of the budget: %+v", d)
	}
	if d := g.Admit(Normal, t0); !d.Admit {
		t.Errorf("normal at 96%% of the budget: %+v", d)
	}
	g.ObserveDisk(50, 100, t0.Add(time.Minute))
	if d := g.Admit(Bulk, t0.Add(time.Minute)); !d.Admit {
		t.Errorf("bulk at 50%%: %+v", d)
	}
}
