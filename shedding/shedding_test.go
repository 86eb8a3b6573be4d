package shedding

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func admitN(g *Governor, c Class, n int, now time.Time) (admitted, downsampled, refused int) {
	for range n {
		switch d := g.AdmitReadings(c, now); {
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
		"normal":   {ReasonConcurrency, ReasonCPU, ReasonMemory},
		"bulk":     {ReasonConcurrency, ReasonCPU, ReasonMemory, ReasonDisk},
	} {
		got := st.Classes[class].Refused
		for _, r := range want {
			if n, ok := got[r]; !ok || n != 0 {
				t.Errorf("%s refused for %s: %d, %v; want 0, present", class, r, n, ok)
			}
		}
	}
}

// TestOnlyReadingsAreDownsampled: bulk work that is not a write of
// readings is taken whole where readings would be downsampled, and does
// not degrade the class.
func TestOnlyReadingsAreDownsampled(t *testing.T) {
	for _, admit := range []func(*Governor, Class, time.Time) Decision{(*Governor).Admit, (*Governor).Allow} {
		g := New(Config{MinLimit: 8, MaxLimit: 8})
		admitN(g, Bulk, 4, t0) // half the limit in flight
		if d := admit(g, Bulk, t0); !d.Admit || d.Downsample {
			t.Fatalf("bulk work at half the limit: %+v, want taken whole", d)
		}
		if cs := g.Status().Classes["bulk"]; cs.Admitted != 5 || cs.Downsampled != 0 || cs.Degraded {
			t.Errorf("counted %+v, want 5 taken whole and not degraded", cs)
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
	for range 10 { // the admission rate holds work back too, and grows
		now = now.Add(100 * time.Millisecond)
		g.ObserveQueue(9*time.Millisecond, now)
		fast(100)
	}
	if l := g.Status().Limit; l <= 4 {
		t.Errorf("limit %d: did not grow once the queue was under its target", l)
	}
}

// offer offers n pieces of work of each class in counts, evenly over d
// from *now (each admitted one ends at once), advances *now by d, and
// returns how many of each class were taken.
func offer(g *Governor, now *time.Time, d time.Duration, counts map[Class]int) map[Class]int {
	n := 0
	for _, c := range counts {
		n = max(n, c)
	}
	taken := map[Class]int{}
	start := *now
	for i := range n {
		at := start.Add(d * time.Duration(i) / time.Duration(n))
		for c, k := range counts {
			if i < k && g.Admit(c, at).Admit {
				taken[c]++
				g.Done(time.Millisecond, at)
			}
		}
	}
	*now = start.Add(d)
	return taken
}

// TestQueueSetsAnAdmissionRate: when the CPU queue stands over its
// target, the governor sets an admission rate for normal and bulk work
// below the rate it was taken at, in proportion to the excess, and cuts it
// each interval while the queue stands and the cuts shorten it; normal
// work gets the rate before
// bulk work, critical work is not paced; once the queue is gone the rate
// grows back and is lifted when work comes at less than half of it.
func TestQueueSetsAnAdmissionRate(t *testing.T) {
	const interval = 100 * time.Millisecond
	g := New(Config{MinLimit: 4, MaxLimit: 10000, QueueTarget: 10 * time.Millisecond, Interval: interval})
	now := t0
	burst := map[Class]int{Critical: 50, Normal: 3000, Bulk: 1000}
	g.ObserveQueue(0, now)
	if got := offer(g, &now, interval, burst); got[Normal] != 3000 || got[Bulk] != 1000 {
		t.Fatalf("before any queue: %v taken", got)
	}
	g.ObserveQueue(20*time.Millisecond, now) // the queue starts
	if got := offer(g, &now, interval, burst); got[Normal] != 3000 || got[Bulk] != 1000 {
		t.Fatalf("a queue not yet standing: %v taken", got)
	}
	// Standing: 40,000/s of normal and bulk work taken, the wait twice
	// the target: a rate of 20,000/s, 2,000 an interval.
	g.ObserveQueue(20*time.Millisecond, now)
	if r := g.Status().Rate; r != 20000 {
		t.Fatalf("rate %v once the queue stood, want 20000", r)
	}
	got := offer(g, &now, interval, burst)
	if got[Critical] != 50 || got[Normal] < 1900 || got[Normal] > 2000 || got[Bulk] > 10 {
		t.Errorf("at 20,000/s: %v taken; want all 50 critical, about 2,000 normal, hardly any bulk", got)
	}
	// Still standing, and shorter each time, 16ms then 12.5ms: cut by
	// 10/16 and by 10/12.5, from the rate work was taken at.
	for _, wait := range []time.Duration{16 * time.Millisecond, 12500 * time.Microsecond} {
		g.ObserveQueue(wait, now)
		got = offer(g, &now, interval, burst)
	}
	r := g.Status().Rate
	if r < 9400 || r > 10000 {
		t.Errorf("rate %v after two cuts, want about 20,000 × 0.625 × 0.8 = 10,000", r)
	}
	if got[Critical] != 50 || got[Bulk] != 0 || got[Normal] < 900 || got[Normal] > 1000 {
		t.Errorf("at %v/s: %v taken; want all 50 critical, about a tenth of that normal, no bulk", r, got)
	}
	st := g.Status()
	if !st.Classes["bulk"].Degraded || st.Classes["normal"].Refused[ReasonCPU] == 0 || st.Classes["bulk"].Refused[ReasonCPU] == 0 {
		t.Errorf("refusals not reported: %+v", st)
	}
	// A queue that stays as long is not cut for: what makes it is not
	// what the rate paces.
	for range 10 {
		g.ObserveQueue(12500*time.Microsecond, now)
		got = offer(g, &now, interval, burst)
	}
	checkRate(t, g, r, "after a second of a queue that the last cut did not shorten")
	// A queue that shortens, however slowly, is cut down to the floor,
	// MinLimit an interval, which normal work still gets.
	for i := range 30 {
		g.ObserveQueue(12400*time.Microsecond-time.Duration(i)*10*time.Microsecond, now)
		got = offer(g, &now, interval, burst)
	}
	checkRate(t, g, 40, "under a long queue that shortens")
	if got[Critical] != 50 || got[Normal] < 3 || got[Normal] > 5 || got[Bulk] != 0 {
		t.Errorf("at the floor: %v taken; want all 50 critical, 4 normal, no bulk", got)
	}
	// The queue is gone and work comes at 200/s: the rate grows by 5%
	// an interval while the wait is near the target, by a quarter once
	// it is under half of it, and is lifted once over twice the rate
	// work is taken at.
	steady := map[Class]int{Normal: 20}
	for range 10 {
		g.ObserveQueue(7*time.Millisecond, now)
		offer(g, &now, interval, steady)
	}
	if r, want := g.Status().Rate, 40*math.Pow(1.05, 10); math.Abs(r-want) > 0.01 {
		t.Errorf("rate %v after ten intervals near the target, want %v", r, want)
	}
	for i := range 20 {
		g.ObserveQueue(time.Millisecond, now)
		if g.Status().Rate == 0 {
			if i < 8 {
				t.Errorf("rate lifted after %d intervals, before it could grow from 65 to 320/s", i)
			}
			break
		}
		offer(g, &now, interval, steady)
	}
	if r := g.Status().Rate; r != 0 {
		t.Errorf("rate %v two seconds after the queue went, want none", r)
	}
	if got := offer(g, &now, interval, burst); got[Normal] != 3000 || got[Bulk] != 1000 {
		t.Errorf("after recovery: %v taken", got)
	}
}

// checkRate fails t unless g's admission rate is want (0: none).
func checkRate(t *testing.T, g *Governor, want float64, when string) {
	t.Helper()
	if r := g.Status().Rate; r != want {
		t.Errorf("rate %v %s, want %v", r, when, want)
	}
}

// queueGovernor returns a governor with a queue target of 10ms, an
// interval of 100ms and a floor of 4.
func queueGovernor() *Governor {
	return New(Config{MinLimit: 4, QueueTarget: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
}

// standingRate sets an admission rate on g: 1,000 normal requests an
// interval, under a queue of twice the target, which stands after two
// intervals. It returns the time after.
func standingRate(t *testing.T, g *Governor, now time.Time) time.Time {
	t.Helper()
	for range 3 {
		g.ObserveQueue(20*time.Millisecond, now)
		offer(g, &now, 100*time.Millisecond, map[Class]int{Normal: 1000})
	}
	if g.Status().Rate == 0 {
		t.Fatal("no rate set under a standing queue")
	}
	return now
}

// TestQueueComesBack: a rate held because the queue stopped shortening
// is cut again for a queue that comes back after the wait went under the
// target, however long that queue.
func TestQueueComesBack(t *testing.T) {
	g := queueGovernor()
	now := standingRate(t, g, t0)
	work := map[Class]int{Normal: 1000}
	for range 3 { // held: no shorter than the last cut's 20ms
		g.ObserveQueue(30*time.Millisecond, now)
		offer(g, &now, 100*time.Millisecond, work)
	}
	held := g.Status().Rate
	g.ObserveQueue(5*time.Millisecond, now) // under the target: grows
	offer(g, &now, 100*time.Millisecond, work)
	grown := g.Status().Rate
	for range 2 {
		g.ObserveQueue(30*time.Millisecond, now)
		offer(g, &now, 100*time.Millisecond, work)
	}
	if r := g.Status().Rate; r >= grown || grown <= held {
		t.Errorf("rate %v held, %v grown, %v under a queue that came back; want it cut", held, grown, r)
	}
}

// TestRateLiftsWithoutWork: a rate set under a burst goes once the burst
// has ended, even if the CPU queue stays over the target (background work
// on a busy core): refusing requests that do not come shortens nothing.
func TestRateLiftsWithoutWork(t *testing.T) {
	g := queueGovernor()
	now := standingRate(t, g, t0)
	now = now.Add(time.Second) // idle: the driver measures every second
	g.ObserveQueue(30*time.Millisecond, now)
	checkRate(t, g, 0, "after an idle second with the queue still over the target")
}

// TestIdleSampleDoesNotStand: a sample over an idle second, with a
// burst in its last 100ms, does not count as a standing queue: its
// average rate of work says little of the burst's. The count starts
// there, and the next sample, one interval of the burst, sets the rate
// from the burst's own rate.
func TestIdleSampleDoesNotStand(t *testing.T) {
	g := queueGovernor()
	now := t0
	g.ObserveQueue(20*time.Millisecond, now) // a blip while idle
	now = now.Add(900 * time.Millisecond)
	offer(g, &now, 100*time.Millisecond, map[Class]int{Normal: 500}) // 5,000/s
	g.ObserveQueue(20*time.Millisecond, now)
	checkRate(t, g, 0, "from a sample over an idle second")
	offer(g, &now, 100*time.Millisecond, map[Class]int{Normal: 500})
	g.ObserveQueue(20*time.Millisecond, now)
	checkRate(t, g, 2500, "after an interval of the burst at 5,000/s and twice the target")
}

// TestLateSamplesStand: a driver slowed by the queue it measures samples
// late (here every 200ms, not 100ms); its samples still count as a
// standing queue, and the rate is set.
func TestLateSamplesStand(t *testing.T) {
	g := queueGovernor()
	now := t0
	for range 3 {
		g.ObserveQueue(20*time.Millisecond, now)
		offer(g, &now, 200*time.Millisecond, map[Class]int{Normal: 1000}) // 5,000/s
	}
	if r := g.Status().Rate; r == 0 {
		t.Error("no rate after three late samples of a standing queue")
	}
}

// TestBulkOnlyKeepsItsRate: with only bulk work coming, which takes
// tokens only while half a burst is left, the rate is not lifted while
// the queue stands: what counts against it is the work that came, not
// the work it let in (about half the rate, at random arrivals sometimes
// less).
func TestBulkOnlyKeepsItsRate(t *testing.T) {
	g := queueGovernor()
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0
	for i := range 100 {
		g.ObserveQueue(20*time.Millisecond, now)
		if i >= 3 && g.Status().Rate == 0 {
			t.Fatalf("rate lifted after %d intervals of a standing queue with bulk work only", i)
		}
		// 500 bulk requests at random times in the interval.
		at := make([]time.Duration, 500)
		for k := range at {
			at[k] = time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
		}
		slices.Sort(at)
		for _, d := range at {
			if g.Admit(Bulk, now.Add(d)).Admit {
				g.Done(time.Millisecond, now.Add(d))
			}
		}
		now = now.Add(100 * time.Millisecond)
	}
}

// TestLateTimesDoNotLeak: callers read the clock before they take the
// governor's lock, so their times arrive out of order; the rate holds
// all the same.
func TestLateTimesDoNotLeak(t *testing.T) {
	g := queueGovernor()
	now := standingRate(t, g, t0)
	r := g.Status().Rate
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for ms := range 1000 { // one second: ten callers a millisecond, each up to 2ms late
		for range 10 {
			late := time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
			at := now.Add(time.Duration(ms)*time.Millisecond - late)
			if g.Admit(Normal, at).Admit {
				taken++
				g.Done(time.Millisecond, at)
			}
		}
	}
	if float64(taken) > r*1.1 {
		t.Errorf("%d taken in a second at a rate of %v/s with late callers", taken, r)
	}
}

// TestQueueWithLittleWorkSetsNoRate: a queue that background work makes
// while few requests come (fewer than MinLimit an interval) is not met
// by refusing them.
func TestQueueWithLittleWorkSetsNoRate(t *testing.T) {
	g := queueGovernor()
	now := t0
	for range 10 {
		g.ObserveQueue(time.Second, now)
		offer(g, &now, 100*time.Millisecond, map[Class]int{Normal: 3})
	}
	if st := g.Status(); st.Rate != 0 || st.Classes["normal"].Refused[ReasonCPU] != 0 {
		t.Errorf("a rate set for 30 requests/s: %+v", st)
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

// TestWakeOnWork: the channel receives once, at the next decision, an
// admission or a refusal, or at once when a decision came since the
// caller's last Activity; a new call replaces it.
func TestWakeOnWork(t *testing.T) {
	g := New(Config{})
	ready := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	old := g.WakeOnWork(0)
	wake := g.WakeOnWork(0)
	if ready(wake) {
		t.Fatal("woken before any decision")
	}
	g.Admit(Normal, t0)
	if !ready(wake) || ready(old) {
		t.Fatal("an admission did not wake the newest channel (only)")
	}
	g.Admit(Normal, t0)
	if ready(wake) {
		t.Fatal("woken twice")
	}
	n, _ := g.Activity()
	wake = g.WakeOnWork(n)
	g.Refuse(Critical, ReasonMemory, t0)
	if !ready(wake) {
		t.Fatal("a refusal did not wake the driver")
	}
	// A decision between the caller's Activity and its WakeOnWork.
	n, _ = g.Activity()
	g.Admit(Normal, t0)
	if !ready(g.WakeOnWork(n)) {
		t.Fatal("a decision since the caller's last Activity did not wake it at once")
	}
}
