package series

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/engine/enginetest"
	"github.com/edged-dev/edged/invalid"
)

type fixedClock bool

func (c fixedClock) Synced() bool { return bool(c) }

var t0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func newSeries(t testing.TB, clock Clock) *Series {
	t.Helper()
	db, eng := enginetest.Start(t, 7, engine.Config{})
	return New(db, eng, clock, func() time.Time { return t0.Add(48 * time.Hour) })
}

// naive aggregates readings the obvious way, for comparison.
func naive(rs []Reading, from, to time.Time, step time.Duration, agg Agg) map[int64]float64 {
	type acc struct {
		n                   int
		sum, min, max, last float64
		lastT               int64
	}
	accs := map[int64]*acc{}
	f := floorDiv(from.UnixNano(), int64(step))
	end := floorDiv(to.UnixNano()-1, int64(step)) + int64(step)
	for _, r := range rs {
		tm := r.Time.UnixNano()
		if tm < f || tm >= end {
			continue
		}
		b := floorDiv(tm, int64(step))
		a := accs[b]
		if a == nil {
			a = &acc{min: math.Inf(1), max: math.Inf(-1), lastT: math.MinInt64}
			accs[b] = a
		}
		a.n++
		a.sum += r.Value
		a.min = math.Min(a.min, r.Value)
		a.max = math.Max(a.max, r.Value)
		if tm > a.lastT || (tm == a.lastT && r.Value > a.last) {
			a.lastT, a.last = tm, r.Value
		}
	}
	out := map[int64]float64{}
	for b, a := range accs {
		out[b] = map[Agg]float64{Avg: a.sum / float64(a.n), Min: a.min, Max: a.max, Sum: a.sum, Count: float64(a.n), Last: a.last}[agg]
	}
	return out
}

func TestQueriesMatchANaiveAggregation(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var rs []Reading
	for i := range 3000 {
		rs = append(rs, Reading{Sensor: "temp", Tags: map[string]string{"room": "a/b"}, Value: float64(rng.IntN(1000)) / 8,
			Time: t0.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))), Unit: "C"})
		if i%500 == 499 { // several ingests, so windows are summarised in parts
			if _, err := s.Ingest(ctx, rs[len(rs)-500:]); err != nil {
				t.Fatal(err)
			}
		}
	}
	id, _ := SensorID("temp", map[string]string{"room": "a/b"})
	from, to := t0.Add(17*time.Minute+3*time.Second), t0.Add(2*time.Hour+time.Second)
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute, 90 * time.Second, 7 * time.Second} {
		for _, agg := range []Agg{Avg, Min, Max, Sum, Count, Last} {
			pts, err := s.Run(ctx, Query{Sensor: id, From: from, To: to, Step: step, Agg: agg})
			if err != nil {
				t.Fatal(err)
			}
			want := naive(rs, from, to, step, agg)
			if len(pts) != len(want) {
				t.Fatalf("step %s %s: %d points, want %d", step, agg, len(pts), len(want))
			}
			for _, p := range pts {
				if w := want[p.Time]; math.Abs(p.Value-w) > 1e-9*math.Max(1, math.Abs(w)) {
					t.Fatalf("step %s %s at %d: %v, want %v", step, agg, p.Time, p.Value, w)
				}
			}
		}
	}
	raw, err := s.Run(ctx, Query{Sensor: id, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rs {
		if !r.Time.Before(from) && r.Time.Before(to) {
			n++
		}
	}
	if len(raw) != n {
		t.Fatalf("raw query: %d readings, want %d", len(raw), n)
	}
	for i := 1; i < len(raw); i++ {
		if raw[i].Time < raw[i-1].Time {
			t.Fatal("raw readings not in time order")
		}
	}
}

func TestLatestOnlyMovesForward(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	ingest := func(v float64, at time.Time, unit string) {
		t.Helper()
		if _, err := s.Ingest(ctx, []Reading{{Sensor: "x", Value: v, Time: at, Unit: unit}}); err != nil {
			t.Fatal(err)
		}
	}
	ingest(1, t0.Add(time.Hour), "V")
	ingest(2, t0, "") // older: stored, but not the latest
	l, ok, err := s.LatestOf("x")
	if err != nil || !ok || l.Value != 1 || l.Unit != "V" {
		t.Fatalf("latest = %+v %v %v, want value 1 in V", l, ok, err)
	}
	ingest(3, t0.Add(2*time.Hour), "")
	var got []Sensor
	s.Sensors("", 0, func(sn Sensor) error { got = append(got, sn); return nil })
	if len(got) != 1 || got[0].ID != "x" || got[0].Latest.Value != 3 || got[0].Latest.Unit != "V" {
		t.Fatalf("sensors = %+v, want x at 3 V", got)
	}
}

func TestUnsyncedClockFlagsReadingsItStamps(t *testing.T) {
	s := newSeries(t, fixedClock(false))
	ctx := context.Background()
	if _, err := s.Ingest(ctx, []Reading{{Sensor: "x", Value: 1}, {Sensor: "x", Value: 2, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	pts, err := s.Run(ctx, Query{Sensor: "x", From: t0.Add(-time.Hour), To: t0.Add(72 * time.Hour)})
	if err != nil || len(pts) != 2 {
		t.Fatalf("%v %v", pts, err)
	}
	if pts[0].Flags != 0 || pts[1].Flags != crdt.FlagClockUnsynced {
		t.Errorf("flags %v %v: want the given time unflagged, the node's stamp flagged", pts[0].Flags, pts[1].Flags)
	}
}

func TestIngestRefusesBadReadings(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	for _, c := range []struct {
		r     Reading
		field string
	}{
		{Reading{Sensor: "", Value: 1}, "readings[1].sensor"},
		{Reading{Sensor: "x", Value: math.NaN()}, "readings[1].value"},
		{Reading{Sensor: "x", Value: math.Inf(1)}, "readings[1].value"},
		{Reading{Sensor: "x", Value: 1, Time: t0.Add(1000 * time.Hour)}, "readings[1].ts"},
		{Reading{Sensor: "x", Value: 1, Time: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "readings[1].ts"},
		{Reading{Sensor: "x\x01", Value: 1}, "readings[1].sensor"},
		{Reading{Sensor: "x", Tags: map[string]string{"k": ""}, Value: 1}, "readings[1].tags"},
	} {
		_, err := s.Ingest(ctx, []Reading{{Sensor: "ok", Value: 1}, c.r})
		if f, ok := invalid.FieldOf(err); !ok || f != c.field {
			t.Errorf("Ingest(%+v) = %v, want an error about %s", c.r, err, c.field)
		}
	}
	// Nothing of a refused write was stored.
	if _, ok, _ := s.LatestOf("ok"); ok {
		t.Error("a refused write stored its good readings")
	}
	if _, err := s.Run(ctx, Query{Sensor: "x", From: t0, To: t0}); !errors.As(err, new(*invalid.Error)) {
		t.Errorf("empty range: %v", err)
	}
	for _, id := range []string{"", "x\x01", strings.Repeat("x", MaxSensorBytes+1)} {
		_, err := s.Run(ctx, Query{Sensor: id, From: t0, To: t0.Add(time.Hour)})
		if f, _ := invalid.FieldOf(err); f != "sensor" {
			t.Errorf("query of sensor %q: %v, want an error about the sensor", id, err)
		}
	}
}

// TestTimesBeyondUnixNanoseconds: a reading after 2262-04-11 is refused
// (its Unix nanoseconds would wrap to 1677), and queries over any range,
// however wide, are bounded by MaxPoints or answered, never wrapped.
func TestTimesBeyondUnixNanoseconds(t *testing.T) {
	s := newSeries(t, fixedClock(false)) // no future limit on an unsynced clock
	ctx := context.Background()
	late := time.Date(2262, 6, 1, 0, 0, 0, 0, time.UTC)
	_, err := s.Ingest(ctx, []Reading{{Sensor: "x", Value: 1, Time: late}})
	if f, _ := invalid.FieldOf(err); f != "readings[0].ts" {
		t.Errorf("a reading at %s: %v, want it refused", late, err)
	}
	if _, err := s.Ingest(ctx, []Reading{{Sensor: "x", Value: 1, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	first, last := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	// Too many buckets, and a last bucket that would end after 2262.
	for _, step := range []time.Duration{time.Millisecond, time.Hour, 100 * 365 * 24 * time.Hour} {
		_, err := s.Run(ctx, Query{Sensor: "x", From: first, To: last, Step: step})
		if f, _ := invalid.FieldOf(err); f != "step" {
			t.Errorf("step %s over years 1 to 9999: %v, want an error about the step", step, err)
		}
	}
	pts, err := s.Run(ctx, Query{Sensor: "x", From: first, To: last})
	if err != nil || len(pts) != 1 || pts[0].Value != 1 {
		t.Errorf("raw over years 1 to 9999: %v, %v; want the one reading", pts, err)
	}
	// Wholly before 1970: no reading can be there.
	pts, err = s.Run(ctx, Query{Sensor: "x", From: first, To: first.Add(time.Hour), Step: time.Minute})
	if err != nil || len(pts) != 0 {
		t.Errorf("an hour of year 1: %v, %v; want nothing", pts, err)
	}
	// The last time a query can reach is not a reading's.
	_, err = s.Ingest(ctx, []Reading{{Sensor: "x", Value: 1, Time: lastTime}})
	if f, _ := invalid.FieldOf(err); f != "readings[0].ts" {
		t.Errorf("a reading at %s: %v, want it refused", lastTime, err)
	}
}

func TestSensorID(t *testing.T) {
	id, err := SensorID("disk.used", map[string]string{"path": "/var lib", "host": "a,b"})
	if err != nil || id != `disk.used,host=a\,b,path=/var\ lib` {
		t.Errorf("SensorID = %q, %v", id, err)
	}
}

func TestManySensorsIngestInParts(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	var rs []Reading
	for i := range 2500 {
		rs = append(rs, Reading{Sensor: "s" + string(rune('a'+i%26)) + time.Duration(i).String(), Value: 1, Time: t0})
	}
	n, err := s.Ingest(context.Background(), rs)
	if err != nil || n != len(rs) {
		t.Fatalf("Ingest = %d, %v", n, err)
	}
	count := 0
	s.Sensors("", 0, func(Sensor) error { count++; return nil })
	if count != 2500 {
		t.Fatalf("%d sensors, want 2500", count)
	}
}

// TestLongSensorIDsIngestInParts: 1,500 sensors with IDs near
// MaxSensorBytes are more writes than one transaction of the low-memory
// profile holds; the ingest stores them in smaller atomic parts, and so
// does their expiry.
func TestLongSensorIDsIngestInParts(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	var rs []Reading
	for i := range opsPerCommit {
		rs = append(rs, Reading{Sensor: fmt.Sprintf("%0500d", i), Value: 1, Time: t0})
	}
	if n, err := s.Ingest(ctx, rs); err != nil || n != len(rs) {
		t.Fatalf("Ingest = %d, %v", n, err)
	}
	count := 0
	s.Sensors("", 0, func(Sensor) error { count++; return nil })
	if count != len(rs) {
		t.Fatalf("%d sensors, want %d", count, len(rs))
	}
	if n, err := s.Expire(ctx, t0.Add(time.Hour)); err != nil || n != len(rs) {
		t.Fatalf("Expire = %d, %v; want %d windows", n, err, len(rs))
	}
}

// TestOneSensorsSparseBackfill: 10,000 readings of one sensor with a long
// ID, each in an hour of its own, are 10,000 fragment keys: more than one
// transaction holds, so a sensor's facts are stored in several
// operations, and the write is stored whole.
func TestOneSensorsSparseBackfill(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	id := strings.Repeat("x", 500)
	var rs []Reading
	for i := range 10000 {
		rs = append(rs, Reading{Sensor: id, Value: 1, Time: t0.Add(time.Duration(i-10000) * time.Hour)})
	}
	if n, err := s.Ingest(ctx, rs); err != nil || n != len(rs) {
		t.Fatalf("Ingest = %d, %v", n, err)
	}
	pts, err := s.Run(ctx, Query{Sensor: id, From: t0.Add(-10000 * time.Hour), To: t0})
	if err != nil || len(pts) != len(rs) {
		t.Fatalf("raw readings: %d, %v; want %d", len(pts), err, len(rs))
	}
}

func TestExpireRemovesOldSummaries(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	for _, id := range []string{"a", "a.b"} {
		for h := range 3 {
			if _, err := s.Ingest(ctx, []Reading{{Sensor: id, Value: 1, Time: t0.Add(time.Duration(h) * time.Hour)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := s.Expire(ctx, t0.Add(90*time.Minute))
	if err != nil || n != 4 {
		t.Fatalf("Expire = %d, %v; want 4 windows (two per sensor)", n, err)
	}
	for _, id := range []string{"a", "a.b"} {
		pts, err := s.Run(ctx, Query{Sensor: id, From: t0, To: t0.Add(3 * time.Hour), Step: time.Minute, Agg: Count})
		if err != nil || len(pts) != 1 || pts[0].Time != t0.Add(2*time.Hour).UnixNano() {
			t.Errorf("%s after expiry: %+v %v, want the last window only", id, pts, err)
		}
	}
	if n, _ := s.Expire(ctx, t0.Add(90*time.Minute)); n != 0 {
		t.Errorf("a second Expire removed %d", n)
	}
}

func TestLargeWritesAreStoredInParts(t *testing.T) {
	s := newSeries(t, fixedClock(true))
	ctx := context.Background()
	// A week of one sensor at one reading a minute: 10,080 windows, more
	// operations than one transaction holds.
	var rs []Reading
	for i := range 7 * 24 * 60 {
		rs = append(rs, Reading{Sensor: "backfill", Value: 1, Time: t0.Add(time.Duration(i-7*24*60) * time.Minute)})
	}
	if n, err := s.Ingest(ctx, rs); err != nil || n != len(rs) {
		t.Fatalf("Ingest = %d, %v", n, err)
	}
	pts, err := s.Run(ctx, Query{Sensor: "backfill", From: t0.Add(-7 * 24 * time.Hour), To: t0, Step: 24 * time.Hour, Agg: Count})
	if err != nil || len(pts) != 7 || pts[0].Value != 1440 {
		t.Fatalf("daily counts %+v %v", pts, err)
	}
	// A name that fits in bytes but not once escaped is refused up front.
	long := strings.Repeat("é", 200)
	_, err = s.Ingest(ctx, []Reading{{Sensor: "ok", Value: 1}, {Sensor: long, Value: 1}})
	if f, _ := invalid.FieldOf(err); f != "readings[1].sensor" {
		t.Errorf("long escaped name: %v", err)
	}
}

// TestIngestSummaries: a node shedding load keeps readings as their minute
// summaries and latest value only.
func TestIngestSummaries(t *testing.T) {
	s := newSeries(t, nil)
	ctx := context.Background()
	var rs []Reading
	for i := range 120 {
		rs = append(rs, Reading{Sensor: "boiler", Value: float64(i), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	n, err := s.IngestSummaries(ctx, rs)
	if err != nil || n != 120 {
		t.Fatalf("IngestSummaries = %d, %v", n, err)
	}
	raw, err := s.Run(ctx, Query{Sensor: "boiler", From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(raw) != 0 {
		t.Errorf("raw readings kept: %d, %v", len(raw), err)
	}
	pts, err := s.Run(ctx, Query{Sensor: "boiler", From: t0, To: t0.Add(time.Hour), Step: time.Minute, Agg: Count})
	if err != nil || len(pts) != 2 || pts[0].Value != 60 || pts[1].Value != 60 {
		t.Errorf("minute counts %+v, %v", pts, err)
	}
	if l, ok, err := s.LatestOf("boiler"); err != nil || !ok || l.Value != 119 {
		t.Errorf("latest %+v %v %v", l, ok, err)
	}
}
