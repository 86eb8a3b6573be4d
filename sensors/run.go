package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Scheduling of polls.
const (
	// jitterFraction spreads each delay by ± this fraction, so adapters
	// and nodes started together drift apart instead of polling (and
	// writing) in lockstep.
	jitterFraction = 0.1
	// maxBackoffIntervals and maxBackoff cap the delay after consecutive
	// failures: a failing adapter comes back within minutes of its
	// sensor, and slow adapters are not delayed by hours.
	maxBackoffIntervals = 32
	maxBackoff          = 5 * time.Minute
	// maxListedRejects bounds how many non-finite values one poll's error
	// names, so a broken simulated entry of 100 000 sensors does not
	// write a megabyte of log.
	maxListedRejects = 3
)

// pollFunc reads an adapter's sensors once. It returns what it could read
// and, if anything failed, an error: with readings, the poll failed in
// part; without, in whole. now timestamps the readings.
type pollFunc func(ctx context.Context, now func() time.Time) ([]Reading, error)

// job is one configured adapter, ready to run.
type job struct {
	path     string // YAML path of its entry, such as "exec[1]"
	interval time.Duration
	poll     pollFunc
}

// runJobs runs each job on its own goroutine until ctx is cancelled.
func runJobs(ctx context.Context, jobs []job, sink Sink, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	stats := opts.Stats
	if stats == nil {
		stats = new(Stats)
	}
	seeds := opts.Rand
	if seeds == nil {
		seeds = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}

	workers := make([]*worker, len(jobs))
	for i, j := range jobs {
		workers[i] = &worker{
			job:   j,
			sink:  sink,
			log:   log.With("adapter", j.path),
			now:   now,
			stats: stats,
			// Each worker gets its own source: a *rand.Rand is not safe
			// for concurrent use.
			rand: rand.New(rand.NewPCG(seeds.Uint64(), seeds.Uint64())),
		}
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// worker polls one adapter. Its fields are owned by its goroutine.
type worker struct {
	job
	sink  Sink
	log   *slog.Logger
	now   func() time.Time
	stats *Stats
	rand  *rand.Rand

	failures     int // consecutive polls that failed, in whole or in part
	down         int // consecutive polls that failed in whole
	sinkFailures int // consecutive sink calls that failed
}

func (w *worker) run(ctx context.Context) {
	w.log.Debug("sensor adapter started", "interval", w.interval)
	timer := time.NewTimer(time.Duration(w.rand.Int64N(int64(w.interval))))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		delay, ok := w.step(ctx)
		if !ok {
			return
		}
		timer.Reset(delay)
	}
}

// step polls once, hands the readings to the sink and returns the delay
// until the next poll; ok is false if ctx was cancelled meanwhile, in which
// case errors are the cancellation's and go unreported.
func (w *worker) step(ctx context.Context) (delay time.Duration, ok bool) {
	w.stats.Polls.Add(1)
	var rs []Reading
	err := w.protect(ctx, "poll", func() error {
		var err error
		rs, err = w.poll(ctx, w.now)
		return err
	})
	if ctx.Err() != nil {
		return 0, false
	}
	rs, rejected := w.finite(rs)
	err = errors.Join(err, rejected)
	if len(rs) > 0 {
		w.deliver(ctx, rs)
		if ctx.Err() != nil {
			return 0, false
		}
	}

	if err == nil {
		if w.failures > 0 {
			w.log.Info("sensor poll recovered", "failures", w.failures)
		}
		w.failures, w.down = 0, 0
		return jitter(w.rand, w.interval), true
	}
	w.stats.PollErrors.Add(1)
	w.failures++
	if isPowerOfTwo(w.failures) {
		w.log.Warn("sensor poll failed", "failures", w.failures, "readings", len(rs), "err", err)
	}
	if len(rs) > 0 {
		// A partial failure (one bad sensor of several) does not slow
		// down the good ones.
		w.down = 0
		return jitter(w.rand, w.interval), true
	}
	w.down++
	return jitter(w.rand, backoff(w.interval, w.down)), true
}

// deliver hands rs to the sink and accounts for the outcome.
func (w *worker) deliver(ctx context.Context, rs []Reading) {
	n := len(rs)
	err := w.protect(ctx, "sink", func() error { return w.sink(ctx, rs) })
	switch {
	case err == nil:
		w.stats.Readings.Add(uint64(n))
		if w.sinkFailures > 0 {
			w.log.Info("sensor sink recovered", "failures", w.sinkFailures)
		}
		w.sinkFailures = 0
	case ctx.Err() != nil:
		// Stopping: the sink gave up because we asked it to.
	default:
		w.stats.SinkErrors.Add(1)
		w.sinkFailures++
		if isPowerOfTwo(w.sinkFailures) {
			w.log.Warn("sensor sink failed", "failures", w.sinkFailures, "readings", n, "err", err)
		}
	}
}

// protect calls f and turns a panic in it into an error, logged with its
// stack, so that a bug in one adapter (or in the sink) does not take the
// node down.
func (w *worker) protect(ctx context.Context, what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.stats.Panics.Add(1)
			w.log.ErrorContext(ctx, "sensor adapter panicked", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w in %s: %v", errPanic, what, p)
		}
	}()
	return f()
}

// finite returns rs without its NaN and infinite values, reusing its array,
// and an error naming the values it dropped.
func (w *worker) finite(rs []Reading) ([]Reading, error) {
	kept := rs[:0]
	var errs []error
	dropped := 0
	for _, r := range rs {
		if !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0) {
			kept = append(kept, r)
			continue
		}
		dropped++
		if dropped <= maxListedRejects {
			errs = append(errs, fmt.Errorf("%s: %w (%v)", r.Sensor, errNotFinite, r.Value))
		}
	}
	if dropped == 0 {
		return rs, nil
	}
	w.stats.Rejected.Add(uint64(dropped))
	if dropped > maxListedRejects {
		errs = append(errs, fmt.Errorf("%w: and %d more", errNotFinite, dropped-maxListedRejects))
	}
	clear(rs[len(kept):])
	return kept, errors.Join(errs...)
}

// jitter returns d spread uniformly by ±jitterFraction.
func jitter(r *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*r.Float64()))
}

// backoff returns the delay before the next poll after down consecutive
// failed polls: interval doubled per failure, capped at
// maxBackoffIntervals intervals or maxBackoff, whichever is shorter, but
// never less than the interval.
func backoff(interval time.Duration, down int) time.Duration {
	limit := min(maxBackoffIntervals*interval, max(interval, maxBackoff))
	d := interval
	for range min(down, 32) {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

func isPowerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }
