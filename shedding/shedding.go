// Package shedding is edged's admission control: it decides, for each
// piece of incoming work and by its priority class, whether the node takes
// it, takes it degraded (bulk readings as summaries only), or refuses it
// with a signal to come back later, so that an overloaded node keeps
// answering within bounds, keeps its critical data and its memory.
//
// The Governor is pure: no goroutines, no clock, no I/O. Callers pass the
// time in; drivers feed it the node's signals (heap against GOMEMLIMIT,
// the store's size against its budget, backlogs) and the latency of the
// work it admitted. This is what makes its tests deterministic.
//
// Signals and actions:
//
//   - Latency, CoDel-style: when the smallest latency of admitted work
//     over an interval stays above the target, the node is queueing; the
//     concurrency limit is cut in proportion (target/latency, by a tenth
//     to a half, once an interval). While the latency stays under the
//     target, the limit grows by one per limit completions (additive
//     increase). Little's law: a bounded number in flight bounds the wait.
//   - CPU queue: when runnable work has waited longer than the queue
//     target for a CPU (the scheduler's latency, fed by the driver each
//     interval) for an interval, the node takes in more than its CPU
//     gets through, and requests wait before any handler runs, where no
//     limit on work in flight reaches them. Two remedies, once an
//     interval: with at least MinLimit in flight, the concurrency limit is
//     cut the same way; and with at least MinLimit pieces of work taken
//     in the interval, an admission rate is set (or cut) to the rate
//     work was taken at, in the same proportion; it is cut again only
//     while the last cut shortened the wait. Work refused early
//     costs the node far less than work done, so the queue drains. While
//     the wait stays under the target the rate grows, by 5% an interval
//     near it and by a quarter under half of it.
//   - The admission rate is a token bucket (golang.org/x/time/rate,
//     burst: an interval's worth) for normal and bulk work: normal work
//     takes a token if one is there, bulk work only while half the burst
//     is left, so normal work goes first. Critical work is not paced. A
//     sample that spans an idle spell (the driver measures less often
//     then) starts the count of a standing queue afresh; normal and bulk
//     work coming (taken or refused) at less than half the rate lifts
//     it, whatever the wait.
//   - In flight against the limit, by class: bulk work is taken while
//     under half the limit, and up to three quarters a write of readings
//     (AdmitReadings) is downsampled (summaries only), other bulk work
//     taken whole; normal work up to the limit. Critical work counts against
//     the limit of the others (it comes first) and the governor never
//     refuses it: a driver that must bound it delays it instead (the API
//     holds critical requests beyond MaxLimit in flight until one ends),
//     and reports with Refuse what it gave up waiting for.
//   - Memory: at 85% of the memory limit bulk work is refused, at 95%
//     normal work too. Critical work is never refused for memory.
//   - Disk: at 95% of the data budget bulk work is refused.
//
// A class that was refused stays degraded for Hold after its signal
// clears (hysteresis), so the node does not flap; every change of state
// is reported once, for a log line.
package shedding

import (
	"fmt"
	"maps"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Class is a priority class.
type Class uint8

// The classes, from most to least important.
const (
	Critical Class = iota
	Normal
	Bulk
	classes
)

var classNames = [classes]string{"critical", "normal", "bulk"}

func (c Class) String() string {
	if c < classes {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass parses "critical", "normal" or "bulk".
func ParseClass(s string) (Class, bool) {
	for i, n := range classNames {
		if n == s {
			return Class(i), true
		}
	}
	return 0, false
}

// Reason says why work was refused or degraded.
type Reason string

// The reasons.
const (
	ReasonConcurrency Reason = "concurrency"
	ReasonCPU         Reason = "cpu" // the admission rate
	ReasonMemory      Reason = "memory"
	ReasonDisk        Reason = "disk"
)

// classReasons are the reasons each class can be refused for (see decide).
var classReasons = [classes][]Reason{
	Critical: {ReasonConcurrency}, // by a driver's bound (Refuse)
	Normal:   {ReasonConcurrency, ReasonCPU, ReasonMemory},
	Bulk:     {ReasonConcurrency, ReasonCPU, ReasonMemory, ReasonDisk},
}

// Config tunes the governor.
type Config struct {
	// LatencyTarget is the latency of admitted work above which the node
	// is taken to be queueing. Zero means 50ms.
	LatencyTarget time.Duration
	// QueueTarget is the wait of runnable work for a CPU (see
	// ObserveQueue) above which the node is taken to be queueing. Zero
	// means 2ms.
	QueueTarget time.Duration
	// Interval is the CoDel interval. Zero means 100ms.
	Interval time.Duration
	// MinLimit and MaxLimit bound the concurrency limit. Zero means 4
	// and 256; the limit starts at 32 (within them).
	MinLimit, MaxLimit int
	// Hold is how long a class stays degraded after its signal cleared.
	// Zero means 1s.
	Hold time.Duration
	// RetryAfter is the wait a refusal advises. Zero means 1s.
	RetryAfter time.Duration
}

func (c Config) withDefaults() Config {
	if c.LatencyTarget <= 0 {
		c.LatencyTarget = 50 * time.Millisecond
	}
	if c.QueueTarget <= 0 {
		c.QueueTarget = 2 * time.Millisecond
	}
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.MinLimit <= 0 {
		c.MinLimit = 4
	}
	if c.MaxLimit <= 0 {
		c.MaxLimit = 256
	}
	c.MaxLimit = max(c.MaxLimit, c.MinLimit)
	if c.Hold <= 0 {
		c.Hold = time.Second
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	return c
}

// startLimit is where the concurrency limit starts: low enough that a
// burst at start is met, and it grows fast while latency is low.
const startLimit = 32

// Memory and disk levels, as fractions of their limits: entering and
// leaving (the lower one: hysteresis).
const (
	memBulkOn, memBulkOff     = 0.85, 0.75
	memNormalOn, memNormalOff = 0.95, 0.85
	diskBulkOn, diskBulkOff   = 0.95, 0.90
)

// Decision is the governor's answer for one piece of work.
type Decision struct {
	// Admit: take the work. When false, refuse it with RetryAfter.
	Admit bool
	// Downsample: take bulk readings as summaries only.
	Downsample bool
	Reason     Reason
	RetryAfter time.Duration
}

// Change is a change of a class's state, for a log line.
type Change struct {
	Class    Class
	Degraded bool
	Reason   Reason
}

// classState is what the governor knows of one class.
type classState struct {
	degraded              bool
	reason                Reason
	until                 time.Time // stays degraded until then, at least
	admitted, downsampled uint64
	delayed               uint64 // held back by a driver until taken
	refused               map[Reason]uint64
}

// Governor decides admissions. It is safe for concurrent use.
type Governor struct {
	cfg Config

	mu       sync.Mutex
	limit    float64
	inflight int
	// CoDel: the smallest latency seen in the current interval, and
	// when the latency first stayed above the target.
	intervalStart time.Time
	minLatency    time.Duration
	lastCut       time.Time
	queueWait     time.Duration
	queueSince    time.Time // when the queue wait went above its target
	// The admission rate: nil while there is none. taken counts the
	// normal and bulk work admitted since takenSince, the last queue
	// observation; offered counts that work and what the rate refused.
	// clock is the latest time seen (see monotonic).
	clock      time.Time
	rate       *rate.Limiter
	lastSlow   time.Time
	slowWait   time.Duration // the wait the rate was last cut for
	taken      int
	offered    int
	takenSince time.Time
	memRatio   float64
	memBulk    bool
	memNormal  bool
	diskRatio  float64
	diskBulk   bool
	class      [classes]classState
	changes    []Change
	decisions  uint64 // made so far, for Activity
	// wake, from WakeOnWork, receives at the next decision.
	wake chan struct{}
}

// New returns a governor.
func New(cfg Config) *Governor {
	cfg = cfg.withDefaults()
	g := &Governor{cfg: cfg, limit: float64(min(cfg.MaxLimit, max(cfg.MinLimit, startLimit))), minLatency: math.MaxInt64}
	for c, reasons := range classReasons {
		// Every counter exists from the start, at zero: a Prometheus
		// series that first appears above zero shows no increase.
		g.class[c].refused = map[Reason]uint64{}
		for _, r := range reasons {
			g.class[c].refused[r] = 0
		}
	}
	return g
}

// Admit decides whether to take one piece of work of class c at now. An
// admitted piece must be reported with Done when it ends.
func (g *Governor) Admit(c Class, now time.Time) Decision { return g.admit(c, now, tracked|counted) }

// AdmitReadings decides like Admit for a write of readings: bulk work may
// be taken degraded (Downsample), as minute summaries only. Other work,
// which cannot be degraded, is taken whole or refused.
func (g *Governor) AdmitReadings(c Class, now time.Time) Decision {
	return g.admit(c, now, tracked|counted|degradable)
}

// Allow decides like Admit for work the governor does not track in flight
// (inputs queued for workers, which have bounds of their own): it counts
// the decision, and no Done follows.
func (g *Governor) Allow(c Class, now time.Time) Decision { return g.admit(c, now, counted) }

// Hold decides like Allow for work its driver holds back while it is
// refused and offers again (an MQTT QoS 1 input, whose acknowledgement
// waits): a refusal is not counted, as the work is not given up. The
// driver counts the hold once, with Delayed.
func (g *Governor) Hold(c Class, now time.Time) Decision { return g.admit(c, now, 0) }

// admitMode says how a decision is taken and counted.
type admitMode uint8

const (
	tracked    admitMode = 1 << iota // in flight until Done
	counted                          // a refusal is counted
	degradable                       // bulk work may be downsampled
)

func (g *Governor) admit(c Class, now time.Time, mode admitMode) Decision {
	if c >= classes {
		c = Normal
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	d := g.decide(c, mode&degradable != 0)
	if d.Admit {
		d = g.paced(c, d, now)
	}
	g.decided()
	cs := &g.class[c]
	switch {
	case !d.Admit:
		if mode&counted != 0 {
			cs.refused[d.Reason]++
		}
		d.RetryAfter = g.cfg.RetryAfter
	case d.Downsample:
		cs.downsampled++
	default:
		cs.admitted++
	}
	if d.Admit && mode&tracked != 0 {
		g.inflight++
	}
	g.mark(c, !d.Admit || d.Downsample, d.Reason, now)
	return d
}

// decide is the rule, for work that may be downsampled if degradable;
// called with g.mu held.
func (g *Governor) decide(c Class, degradable bool) Decision {
	in := float64(g.inflight)
	switch c {
	case Normal:
		if g.memNormal {
			return Decision{Reason: ReasonMemory}
		}
		if in >= g.limit {
			return Decision{Reason: ReasonConcurrency}
		}
	case Bulk:
		switch {
		case g.memBulk:
			return Decision{Reason: ReasonMemory}
		case g.diskBulk:
			return Decision{Reason: ReasonDisk}
		case in >= g.limit*3/4:
			return Decision{Reason: ReasonConcurrency}
		case in >= g.limit/2 && degradable:
			return Decision{Admit: true, Downsample: true, Reason: ReasonConcurrency}
		}
	}
	return Decision{Admit: true}
}

// paced applies the admission rate to normal and bulk work decide took;
// called with g.mu held. Normal work takes a token if one is there, bulk
// work only while half the burst is left.
func (g *Governor) paced(c Class, d Decision, now time.Time) Decision {
	if c == Critical {
		return d
	}
	g.offered++
	if g.rate != nil {
		if (c == Bulk && g.rate.TokensAt(now) < float64(g.rate.Burst())/2) || !g.rate.AllowN(now, 1) {
			return Decision{Reason: ReasonCPU}
		}
	}
	g.taken++
	return d
}

// monotonic returns now, or the latest time the governor was given if
// now is earlier; called with g.mu held, by every method given a time.
// Callers read the clock before they take the lock, so under load their
// times arrive out of order by up to a few milliseconds, and the token
// bucket would credit the same time twice. A time from the future holds
// the governor's clock there until the real one catches up.
func (g *Governor) monotonic(now time.Time) time.Time {
	if now.Before(g.clock) {
		return g.clock
	}
	g.clock = now
	return now
}

// mark records that class c was (or was not) refused or degraded at now,
// with hysteresis; called with g.mu held.
func (g *Governor) mark(c Class, shed bool, reason Reason, now time.Time) {
	cs := &g.class[c]
	if shed {
		cs.until = now.Add(g.cfg.Hold)
		if !cs.degraded {
			cs.degraded, cs.reason = true, reason
			g.changes = append(g.changes, Change{Class: c, Degraded: true, Reason: reason})
		}
		return
	}
	if cs.degraded && !now.Before(cs.until) {
		cs.degraded = false
		g.changes = append(g.changes, Change{Class: c, Degraded: false, Reason: cs.reason})
	}
}

// Done reports that a piece of admitted work ended at now, after latency:
// the signal of the concurrency limit.
func (g *Governor) Done(latency time.Duration, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.inflight = max(g.inflight-1, 0)
	if g.intervalStart.IsZero() {
		g.intervalStart = now
	}
	g.minLatency = min(g.minLatency, latency)
	if now.Sub(g.intervalStart) >= g.cfg.Interval {
		// The interval is over: was even its fastest work slow?
		if g.minLatency > g.cfg.LatencyTarget {
			g.cut(g.cfg.LatencyTarget, g.minLatency, now)
		}
		g.intervalStart, g.minLatency = now, math.MaxInt64
	}
	if latency <= g.cfg.LatencyTarget && g.queueWait <= g.cfg.QueueTarget {
		g.limit = min(float64(g.cfg.MaxLimit), g.limit+1/g.limit)
	}
}

// ObserveQueue takes how long runnable work waited for a CPU over the
// last interval: a high quantile of the Go scheduler's latency. This is
// the queue before any handler runs (requests read and parsed late when
// the CPU is saturated), which the latency of admitted work does not
// show. Once the wait has stayed above the queue target for an interval,
// the concurrency limit (with at least MinLimit pieces of work in flight)
// and the admission rate (with at least MinLimit normal and bulk pieces
// taken since the last observation) are cut in proportion, once an
// interval; neither grows until the wait is back under.
func (g *Governor) ObserveQueue(wait time.Duration, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.queueWait = wait
	taken, offered, since := g.taken, g.offered, now.Sub(g.takenSince)
	g.taken, g.offered, g.takenSince = 0, 0, now
	var takenRate, offeredRate float64 // per second
	if since > 0 && since < time.Hour {
		takenRate = float64(taken) / since.Seconds()
		offeredRate = float64(offered) / since.Seconds()
	}
	if g.rate != nil && float64(g.rate.Limit()) > 2*offeredRate {
		g.rate = nil // work comes at less than half of it: it holds nothing back
	}
	if wait <= g.cfg.QueueTarget {
		g.queueSince = time.Time{}
		g.slowWait = math.MaxInt64 // a queue that comes back is a new one
		g.relax(offeredRate, wait, now)
		return
	}
	// A sample over an idle spell (the driver measures every second
	// then, ten intervals, and at the first work after it) tells neither
	// whether the queue stood through
	// it nor the rate work comes at now: the count of a standing queue
	// starts here. A sample merely late (the driver is slowed by the
	// queue it measures) counts.
	if g.queueSince.IsZero() || since > idleSpan*g.cfg.Interval {
		g.queueSince = now
	}
	// Standing, not a blip (a collection, a burst of wakeups): above the
	// target for an interval. And with work coming: a queue that
	// background work (compactions, the collector, sync) makes on a
	// single core is not cut down by refusing requests.
	if now.Sub(g.queueSince) < g.cfg.Interval {
		return
	}
	if g.inflight >= g.cfg.MinLimit {
		g.cut(g.cfg.QueueTarget, wait, now)
	}
	if taken >= g.cfg.MinLimit {
		g.slow(takenRate, wait, now)
	}
}

// idleSpan is the gap between queue observations, in intervals, beyond
// which the driver is taken to have been idle.
const idleSpan = 5

// cut lowers the limit because a signal seen is over its target, by
// factor; once an interval at most, whichever signal asks. Called with
// g.mu held.
func (g *Governor) cut(target, seen time.Duration, now time.Time) {
	if now.Sub(g.lastCut) < g.cfg.Interval {
		return
	}
	g.limit = max(float64(g.cfg.MinLimit), g.limit*factor(target, seen))
	g.lastCut = now
}

// factor is how much a controller cuts when a signal is seen over its
// target: in proportion to the excess (a gradient), by a tenth at least
// and by half at most, so a sudden burst is met within a few intervals.
func factor(target, seen time.Duration) float64 {
	return max(0.5, min(0.9, float64(target)/float64(seen)))
}

// slow sets or cuts the admission rate, from the rate work was taken at
// (or the rate's own limit, if lower) by factor, to MinLimit per
// interval at least; once an interval at most. A cut is repeated only
// while the last one shortened the wait: a queue that stays as long is
// the work of what the rate does not pace (critical work, refusals,
// other processes on the CPU), and refusing more normal work would lose
// it for nothing. Called with g.mu held.
func (g *Governor) slow(takenRate float64, wait time.Duration, now time.Time) {
	if now.Sub(g.lastSlow) < g.cfg.Interval || (g.rate != nil && wait >= g.slowWait) {
		return
	}
	g.lastSlow, g.slowWait = now, wait
	r := takenRate
	if g.rate != nil {
		r = min(r, float64(g.rate.Limit()))
	}
	g.setRate(r*factor(g.cfg.QueueTarget, wait), now)
}

// relax lets the admission rate grow while the CPU queue is under its
// target: by a quarter an interval while the wait is under half the
// target (the node has room), by 5% above that (it is near its
// capacity); and lifts it once it is more than twice the rate normal and
// bulk work came at (taken or refused by it): then it holds nothing
// back. Called with g.mu held.
func (g *Governor) relax(offeredRate float64, wait time.Duration, now time.Time) {
	if g.rate == nil {
		return
	}
	grow := 1.05
	if wait <= g.cfg.QueueTarget/2 {
		grow = 1.25
	}
	r := float64(g.rate.Limit()) * grow
	if r > 2*offeredRate {
		g.rate = nil
		return
	}
	g.setRate(r, now)
}

// setRate sets the admission rate to r per second, MinLimit per interval
// at least, with an interval's worth of burst. A new bucket starts empty:
// the queue it is set against stands already. Called with g.mu held.
func (g *Governor) setRate(r float64, now time.Time) {
	r = max(r, float64(g.cfg.MinLimit)/g.cfg.Interval.Seconds())
	burst := max(1, int(r*g.cfg.Interval.Seconds()))
	if g.rate == nil {
		g.rate = rate.NewLimiter(rate.Limit(r), burst)
		g.rate.ReserveN(now, burst)
		return
	}
	g.rate.SetLimitAt(now, rate.Limit(r))
	g.rate.SetBurstAt(now, burst)
}

// ObserveMemory takes the heap in use against the memory limit.
func (g *Governor) ObserveMemory(heap, limit uint64, now time.Time) {
	if limit == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.memRatio = float64(heap) / float64(limit)
	g.memBulk = level(g.memBulk, g.memRatio, memBulkOn, memBulkOff)
	g.memNormal = level(g.memNormal, g.memRatio, memNormalOn, memNormalOff)
	g.settle(now)
}

// ObserveDisk takes the data directory's size against its budget.
func (g *Governor) ObserveDisk(used, budget int64, now time.Time) {
	if budget <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.diskRatio = float64(used) / float64(budget)
	g.diskBulk = level(g.diskBulk, g.diskRatio, diskBulkOn, diskBulkOff)
	g.settle(now)
}

// settle ends the degraded state of classes whose hold is over and that
// would be admitted now, and degrades those a memory or disk level
// refuses; called with g.mu held. Concurrency degrades a class only when
// work of it is refused or downsampled: the work in flight at a tick says
// what a newcomer would meet, not that anything was shed.
func (g *Governor) settle(now time.Time) {
	for c := range classes {
		d := g.decide(c, true)
		if shed := !d.Admit || d.Downsample; !shed || d.Reason != ReasonConcurrency {
			g.mark(c, shed, d.Reason, now)
		}
	}
}

// Tick lets degraded classes recover when no work arrives to tell.
func (g *Governor) Tick(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.settle(now)
}

// level applies hysteresis: on at or above on, off below off.
func level(was bool, ratio, on, off float64) bool {
	if was {
		return ratio >= off
	}
	return ratio >= on
}

// Busy reports whether the node should throttle background work
// (replication rounds, uplink batches): normal work is degraded.
func (g *Governor) Busy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.class[Normal].degraded || g.class[Bulk].degraded && g.class[Bulk].reason == ReasonMemory
}

// Activity returns how many decisions the governor has made so far and
// whether a class is degraded: a driver may measure the load less often
// while neither moves.
func (g *Governor) Activity() (decisions uint64, degraded bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cs := range g.class {
		degraded = degraded || cs.degraded
	}
	return g.decisions, degraded
}

// WakeOnWork returns a channel that receives once, at the governor's next
// decision, or at once if it has made more than seen (what Activity last
// told the caller). A driver that measures the load less often while
// nothing moves waits on it too, so that a burst is measured from its
// start, not up to an idle interval later.
func (g *Governor) WakeOnWork(seen uint64) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{}, 1)
	if g.decisions != seen {
		ch <- struct{}{}
		g.wake = nil
	} else {
		g.wake = ch
	}
	return ch
}

// decided counts a decision and wakes a driver waiting on WakeOnWork;
// called with g.mu held.
func (g *Governor) decided() {
	g.decisions++
	if g.wake != nil {
		g.wake <- struct{}{}
		g.wake = nil
	}
}

// Refuse records that a driver refused a piece of work of class c for
// reason at now (as the API does with a critical request that waited
// too long for a slot), and returns the decision to answer it with.
func (g *Governor) Refuse(c Class, reason Reason, now time.Time) Decision {
	if c >= classes {
		c = Normal
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now = g.monotonic(now)
	g.decided()
	g.class[c].refused[reason]++
	g.mark(c, true, reason, now)
	return Decision{Reason: reason, RetryAfter: g.cfg.RetryAfter}
}

// Delayed counts a piece of work of class c that a driver held back
// until it could be taken: the API's bound on critical requests in
// flight, which delays critical work instead of refusing it, and MQTT
// inputs held with Hold.
func (g *Governor) Delayed(c Class) {
	if c >= classes {
		c = Normal
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.class[c].delayed++
}

// Changes returns the state changes since the last call.
func (g *Governor) Changes() []Change {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.changes
	g.changes = nil
	return out
}

// ClassStatus is one class's state and counters.
type ClassStatus struct {
	Degraded    bool              `json:"degraded"`
	Reason      Reason            `json:"reason,omitempty"`
	Admitted    uint64            `json:"admitted"`
	Downsampled uint64            `json:"downsampled"`
	Delayed     uint64            `json:"delayed"`
	Refused     map[Reason]uint64 `json:"refused"`
}

// Status is the governor's state, for /v1/status and metrics.
type Status struct {
	State    string `json:"state"` // "normal" or "degraded"
	Limit    int    `json:"limit"`
	InFlight int    `json:"in_flight"`
	// QueueWaitMS is the last CPU queue wait observed, in milliseconds.
	QueueWaitMS float64 `json:"queue_wait_ms"`
	// Rate is the admission rate, per second; 0 when there is none.
	Rate        float64                `json:"rate"`
	MemoryRatio float64                `json:"memory_ratio"`
	DiskRatio   float64                `json:"disk_ratio"`
	Classes     map[string]ClassStatus `json:"classes"`
}

// Status returns the governor's state and counters.
func (g *Governor) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Status{State: "normal", Limit: int(g.limit), InFlight: g.inflight,
		QueueWaitMS: float64(g.queueWait) / float64(time.Millisecond), MemoryRatio: g.memRatio, DiskRatio: g.diskRatio,
		Classes: map[string]ClassStatus{}}
	if g.rate != nil {
		s.Rate = float64(g.rate.Limit())
	}
	for c, cs := range g.class {
		st := ClassStatus{Degraded: cs.degraded, Admitted: cs.admitted, Downsampled: cs.downsampled, Delayed: cs.delayed, Refused: maps.Clone(cs.refused)}
		if cs.degraded {
			st.Reason, s.State = cs.reason, "degraded"
		}
		s.Classes[Class(c).String()] = st
	}
	return s
}
