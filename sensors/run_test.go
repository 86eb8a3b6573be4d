package sensors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-dev/edged/internal/poll"
)

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, cond)
}

// collector is a Sink that keeps the last reading of each sensor.
type collector struct {
	mu    sync.Mutex
	last  map[string]Reading
	calls int
}

func (c *collector) sink(_ context.Context, rs []Reading) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = make(map[string]Reading)
	}
	for _, r := range rs {
		c.last[r.Sensor] = r
	}
	c.calls++
	return nil
}

func (c *collector) get(name string) (Reading, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.last[name]
	return r, ok
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// logBuffer records a JSON log for tests, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records logged with message msg.
func (b *logBuffer) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// start runs run in a goroutine and returns a function that cancels it
// and checks that it returns nil, promptly.
func start(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestRun(t *testing.T) {
	cfg := Config{
		Thermal: []ThermalConfig{{Interval: 10 * time.Millisecond, Zones: []string{"cpu-thermal"}}},
		Hwmon:   []HwmonConfig{{Interval: 10 * time.Millisecond, Chips: []string{"sht3x"}}},
		OneWire: []OneWireConfig{{Interval: 10 * time.Millisecond}},
		Exec: []ExecConfig{
			{Name: "pairs", Command: script(t, "pairs.sh"), Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond},
			{Name: "bad", Command: script(t, "fail.sh"), Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond},
		},
		Simulated: []SimulatedConfig{{Name: "saw", Waveform: "sawtooth", Interval: 10 * time.Millisecond, Period: time.Minute, Amplitude: 10, Count: 2}},
	}
	var (
		sink  collector
		stats Stats
		logs  logBuffer
	)
	// Readings are timestamped by the injected clock: 15 s into a minute.
	now := time.Date(2026, 1, 1, 0, 0, 15, 0, time.UTC)
	opts := Options{
		Logger: logs.logger(),
		Now:    func() time.Time { return now },
		Root:   "testdata/sysfs",
		Rand:   rand.New(rand.NewPCG(1, 2)),
		Stats:  &stats,
	}
	stop := start(t, func(ctx context.Context) error { return Run(ctx, cfg, sink.sink, opts) })

	wants := map[string]want{
		"thermal.cpu-thermal":   {45.277, "C"},
		"hwmon.sht3x.temp1":     {21.456, "C"},
		"hwmon.sht3x.humidity1": {45.123, "%"},
		"w1.28-0316a2795eff":    {23.125, "C"},
		"w1.28-0416b3a1c2ff":    {-10.5, "C"},
		"exec.pairs.pressure":   {1013.25, ""},
		"sim.saw.0":             {-5, ""}, // a quarter into the period
		"sim.saw.1":             {5, ""},  // and half a period later
	}
	for name, w := range wants {
		eventually(t, "a reading of "+name, func() bool { _, ok := sink.get(name); return ok })
		r, _ := sink.get(name)
		if r.Value != w.value || r.Unit != w.unit || !r.Time.Equal(now) {
			t.Errorf("%s = %v %q at %v, want %v %q at %v", name, r.Value, r.Unit, r.Time, w.value, w.unit, now)
		}
	}
	// Adapters keep polling, and the failing one keeps failing without
	// stopping the others.
	calls := sink.count()
	eventually(t, "more polls", func() bool { return sink.count() >= calls+10 })
	eventually(t, "the failing command to be logged", func() bool { return len(logs.records(t, "sensor poll failed")) > 0 })
	stop()

	if _, ok := sink.get("exec.bad.partial"); ok {
		t.Error("readings of a failed command reached the sink")
	}
	failed := logs.records(t, "sensor poll failed")[0]
	if failed["adapter"] != "exec[1]" || !strings.Contains(failed["err"].(string), "exit status 3") {
		t.Errorf("failure logged as %v", failed)
	}
	if stats.Polls.Load() == 0 || stats.PollErrors.Load() == 0 || stats.Readings.Load() < uint64(len(wants)) {
		t.Errorf("stats: %d polls, %d failed, %d readings", stats.Polls.Load(), stats.PollErrors.Load(), stats.Readings.Load())
	}
	if n := stats.Panics.Load() + stats.SinkErrors.Load() + stats.Rejected.Load(); n != 0 {
		t.Errorf("%d panics, sink errors or rejected values", n)
	}
}

func TestRunNothing(t *testing.T) {
	stop := start(t, func(ctx context.Context) error { return Run(ctx, DefaultConfig(), (&collector{}).sink, Options{}) })
	stop()
}

func TestRunInvalid(t *testing.T) {
	ctx := context.Background()
	err := Run(ctx, Config{Exec: []ExecConfig{{Name: "x"}}}, (&collector{}).sink, Options{})
	if err == nil || !strings.Contains(err.Error(), "exec[0].command: must not be empty") {
		t.Errorf("Run with an invalid configuration = %v", err)
	}
	if err := Run(ctx, DefaultConfig(), nil, Options{}); err == nil {
		t.Error("Run with a nil sink succeeded")
	}
}

// fakeJob returns a job that polls with poll every 10 ms, and a counter of
// its polls.
func fakeJob(path string, poll func(n int64) ([]Reading, error)) (job, *atomic.Int64) {
	var polls atomic.Int64
	return job{path: path, interval: 10 * time.Millisecond, poll: func(context.Context, func() time.Time) ([]Reading, error) {
		return poll(polls.Add(1))
	}}, &polls
}

func TestRunSurvivesPanics(t *testing.T) {
	panicky, panics := fakeJob("thermal[0]", func(int64) ([]Reading, error) { panic("index out of range") })
	good, goods := fakeJob("thermal[1]", func(int64) ([]Reading, error) { return []Reading{{Sensor: "ok", Value: 1}}, nil })
	sinkPanics, _ := fakeJob("thermal[2]", func(int64) ([]Reading, error) { return []Reading{{Sensor: "boom", Value: 1}}, nil })
	var (
		stats Stats
		logs  logBuffer
		sink  collector
	)
	sinkFn := func(ctx context.Context, rs []Reading) error {
		if rs[0].Sensor == "boom" {
			panic("sink bug")
		}
		return sink.sink(ctx, rs)
	}
	stop := start(t, func(ctx context.Context) error {
		return runJobs(ctx, []job{panicky, good, sinkPanics}, sinkFn, Options{Logger: logs.logger(), Stats: &stats})
	})
	eventually(t, "repeated panics", func() bool { return panics.Load() >= 2 && stats.SinkErrors.Load() >= 2 })
	eventually(t, "good polls", func() bool { return goods.Load() >= 10 && sink.count() >= 10 })
	stop()

	recs := logs.records(t, "sensor adapter panicked")
	var inPoll, inSink bool
	for _, r := range recs {
		inPoll = inPoll || r["adapter"] == "thermal[0]" && r["in"] == "poll" && r["panic"] == "index out of range" && strings.Contains(r["stack"].(string), "sensors.")
		inSink = inSink || r["adapter"] == "thermal[2]" && r["in"] == "sink" && r["panic"] == "sink bug"
	}
	if !inPoll || !inSink {
		t.Errorf("panics logged as %v", recs)
	}
	if stats.Panics.Load() < 4 {
		t.Errorf("%d panics counted", stats.Panics.Load())
	}
}

func TestRunRejectsNonFinite(t *testing.T) {
	values := []float64{math.NaN(), 1.5, math.Inf(1), math.Inf(-1), math.NaN(), 2.5}
	j, _ := fakeJob("exec[0]", func(int64) ([]Reading, error) {
		rs := make([]Reading, len(values))
		for i, v := range values {
			rs[i] = Reading{Sensor: "s" + string(rune('a'+i)), Value: v}
		}
		return rs, nil
	})
	var (
		stats Stats
		logs  logBuffer
		got   = make(chan []Reading, 100)
	)
	sink := func(_ context.Context, rs []Reading) error {
		select {
		case got <- rs:
		default:
		}
		return nil
	}
	stop := start(t, func(ctx context.Context) error {
		return runJobs(ctx, []job{j}, sink, Options{Logger: logs.logger(), Stats: &stats})
	})
	var rs []Reading
	select {
	case rs = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no readings")
	}
	eventually(t, "the rejection to be logged", func() bool { return len(logs.records(t, "sensor poll failed")) > 0 })
	stop()

	if len(rs) != 2 || rs[0].Sensor != "sb" || rs[1].Sensor != "sf" {
		t.Errorf("sink got %v, want sb and sf only", rs)
	}
	if n := stats.Rejected.Load(); n < 4 || n%4 != 0 {
		t.Errorf("%d values rejected, want a multiple of 4", n)
	}
	msg := logs.records(t, "sensor poll failed")[0]["err"].(string)
	for _, s := range []string{"sa: sensors: value not finite (NaN)", "sc: sensors: value not finite (+Inf)", "sd:", "and 1 more"} {
		if !strings.Contains(msg, s) {
			t.Errorf("logged error %q does not mention %q", msg, s)
		}
	}
}

func TestRunFailuresAndRecovery(t *testing.T) {
	// Fails in whole 4 times, then in part twice, then recovers; its sink
	// fails once.
	j, polls := fakeJob("hwmon[0]", func(n int64) ([]Reading, error) {
		switch {
		case n <= 4:
			return nil, errors.New("no chip")
		case n <= 6:
			return []Reading{{Sensor: "x", Value: float64(n)}}, errors.New("one channel")
		}
		return []Reading{{Sensor: "x", Value: float64(n)}}, nil
	})
	var (
		stats     Stats
		logs      logBuffer
		sinkCalls atomic.Int64
	)
	sink := func(context.Context, []Reading) error {
		if sinkCalls.Add(1) == 1 {
			return errors.New("store full")
		}
		return nil
	}
	stop := start(t, func(ctx context.Context) error {
		return runJobs(ctx, []job{j}, sink, Options{Logger: logs.logger(), Stats: &stats})
	})
	eventually(t, "recovery", func() bool { return polls.Load() >= 8 })
	stop()

	var logged []float64
	for _, r := range logs.records(t, "sensor poll failed") {
		logged = append(logged, r["failures"].(float64))
	}
	if want := []float64{1, 2, 4}; !slices.Equal(logged, want) {
		t.Errorf("failures logged at counts %v, want %v", logged, want)
	}
	if rec := logs.records(t, "sensor poll recovered"); len(rec) != 1 || rec[0]["failures"] != 6.0 {
		t.Errorf("recovery logged as %v", rec)
	}
	if rec := logs.records(t, "sensor sink failed"); len(rec) != 1 || !strings.Contains(rec[0]["err"].(string), "store full") {
		t.Errorf("sink failure logged as %v", rec)
	}
	if rec := logs.records(t, "sensor sink recovered"); len(rec) != 1 {
		t.Errorf("sink recovery logged as %v", rec)
	}
	if n := stats.PollErrors.Load(); n != 6 {
		t.Errorf("%d poll errors counted, want 6", n)
	}
	if n := stats.SinkErrors.Load(); n != 1 {
		t.Errorf("%d sink errors counted, want 1", n)
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		down     int
		want     time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second},
		{10 * time.Second, 1, 20 * time.Second},
		{10 * time.Second, 4, 160 * time.Second},
		{10 * time.Second, 5, 5 * time.Minute}, // capped by maxBackoff
		{10 * time.Second, 1000, 5 * time.Minute},
		{10 * time.Millisecond, 5, 320 * time.Millisecond}, // capped at 32 intervals
		{10 * time.Millisecond, 50, 320 * time.Millisecond},
		{time.Hour, 3, time.Hour}, // never below the interval
		{MaxInterval, 1 << 30, MaxInterval},
	} {
		if got := backoff(tc.interval, tc.down); got != tc.want {
			t.Errorf("backoff(%s, %d) = %s, want %s", tc.interval, tc.down, got, tc.want)
		}
	}
}

func TestJitter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 10000 {
		d := jitter(r, time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 900*time.Millisecond || hi > 1100*time.Millisecond || lo > 910*time.Millisecond || hi < 1090*time.Millisecond {
		t.Errorf("jitter of 1s from %s to %s, want about 900ms to 1.1s", lo, hi)
	}
}
