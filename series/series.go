// Package series stores sensor readings and answers time-series queries.
//
// A reading is an immutable fact: it joins its sensor's grow-only reading
// set (stored as facts, see store.Fact) and is never changed. Alongside,
// every ingest updates two kinds of ordinary CRDT keys, in the same
// operation, so they replicate to peers even where the readings do not:
//
//   - the sensor's latest reading (a last-writer-wins register that only
//     moves forward in reading time), under "_l/<sensor>";
//   - per-minute summaries (count, sum, min, max and last), one register
//     per window and per ingesting replica, under
//     "_s/<sensor>/<window>/<replica>". Only that replica writes it, so
//     it only grows; readers combine the replicas' summaries.
//
// Queries downsample into buckets aligned to multiples of the step since
// the Unix epoch. A step that is a whole number of minutes is answered from
// the summaries (a day at 1 Hz downsampled to minutes reads 1,440 records,
// not 86,400 readings); other steps, and raw queries, read the readings.
//
// Sensor IDs are a name followed by the sorted tags, as in InfluxDB's
// series keys: "cpu.usage_idle,cpu=cpu0,host=gw1". Key names escape the ID
// (url.PathEscape), so an ID may hold '/' (a disk's mount point).
package series

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/store"
)

// FactsNamespace is the first segment of the names holding raw readings,
// which replication scopes apart (readings.scope).
const FactsNamespace = "_r"

// Name prefixes of the key space that belong to this package. User
// namespaces cannot start with '_'.
const (
	factsPrefix   = FactsNamespace + "/"
	latestPrefix  = "_l/"
	summaryPrefix = "_s/"
)

// IsRawReadings reports whether name holds raw readings (not their
// summaries or latest values).
func IsRawReadings(name string) bool { return strings.HasPrefix(name, factsPrefix) }

// lastTime bounds the times a reading can have: Unix nanoseconds are an
// int64, and a query's end is exclusive. The first is the Unix epoch.
var lastTime = time.Unix(0, math.MaxInt64)

// unixNanos returns t in Unix nanoseconds, within the times a reading can
// have: a query's bound outside them is moved to the nearest.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(lastTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Window is the span of one summary.
const Window = time.Minute

// Limits on what Ingest and Query accept.
const (
	// MaxSensorBytes bounds a sensor ID, tags included.
	MaxSensorBytes = 512
	// MaxReadings bounds the readings of one Ingest call.
	MaxReadings = 100_000
	// MaxPoints bounds the points of one query answer.
	MaxPoints = 100_000
	// MaxFuture is how far ahead of a synchronised clock a reading's time
	// may be.
	MaxFuture = 24 * time.Hour
	// opsPerCommit bounds the operations of one atomic part of an
	// ingest or expiry. Each writes about two keys; a transaction of the
	// low-memory profile holds about 6,500 entries and 614 KiB, so a
	// part of sensors with long IDs is split further (doSplit).
	opsPerCommit = 1500
)

// Reading is one reading to ingest.
type Reading struct {
	// Sensor is the sensor's name; with Tags it makes the sensor ID.
	Sensor string
	// Tags qualify the sensor (host, location, ...); may be nil.
	Tags map[string]string
	// Value is the measurement; NaN and infinities are refused.
	Value float64
	// Unit is the unit of Value, such as "C"; may be empty.
	Unit string
	// Time is when the reading was taken; zero means now.
	Time time.Time
	// NodeClock says that Time was read from this node's clock (a local
	// sensor's poll), so it is flagged like a zero Time when the clock
	// is not synchronised.
	NodeClock bool
}

// Clock says whether the wall clock can be trusted (see clocksync).
type Clock interface{ Synced() bool }

// Series ingests and queries readings. It is safe for concurrent use.
type Series struct {
	db      *store.DB
	eng     *engine.Engine
	clock   Clock
	now     func() time.Time
	replica string
}

// New returns a Series over db, writing through eng. now may be nil
// (time.Now).
func New(db *store.DB, eng *engine.Engine, clock Clock, now func() time.Time) *Series {
	if now == nil {
		now = time.Now
	}
	return &Series{db: db, eng: eng, clock: clock, now: now, replica: eng.Replica().String()}
}

// SensorID returns the ID of the sensor name with tags, checking both.
func SensorID(name string, tags map[string]string) (string, error) {
	if err := checkText(name); err != nil {
		return "", invalid.Errorf("sensor", "%v", err)
	}
	if len(tags) == 0 {
		if len(name) > MaxSensorBytes {
			return "", invalid.Errorf("sensor", "%d bytes, limit %d", len(name), MaxSensorBytes)
		}
		return name, checkEscaped(name)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(escapeTag(name))
	for _, k := range keys {
		if err := checkText(k); err != nil {
			return "", invalid.Errorf("tags", "tag name %q: %v", k, err)
		}
		if err := checkText(tags[k]); err != nil {
			return "", invalid.Errorf("tags", "tag %q: %v", k, err)
		}
		b.WriteByte(',')
		b.WriteString(escapeTag(k))
		b.WriteByte('=')
		b.WriteString(escapeTag(tags[k]))
	}
	if b.Len() > MaxSensorBytes {
		return "", invalid.Errorf("sensor", "with its tags %d bytes, limit %d", b.Len(), MaxSensorBytes)
	}
	return b.String(), checkEscaped(b.String())
}

// maxEscapedBytes bounds an escaped sensor ID, so that the longest name
// made of it (a summary's) fits the store's name limit.
const maxEscapedBytes = store.MaxNameBytes - len(summaryPrefix) - 2*(1+16)

// checkEscaped refuses an ID whose escaped form is too long: characters
// outside ASCII take three bytes per byte.
func checkEscaped(id string) error {
	if n := len(escape(id)); n > maxEscapedBytes {
		return invalid.Errorf("sensor", "%d bytes once escaped for key names, limit %d: use a shorter name (non-ASCII characters take 3 bytes per byte)", n, maxEscapedBytes)
	}
	return nil
}

// escapeTag escapes the separators of a sensor ID as line protocol does.
var escapeTag = strings.NewReplacer(`,`, `\,`, `=`, `\=`, ` `, `\ `).Replace

func checkText(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("contains a control character")
	}
	return nil
}

// escape turns a sensor ID into a key-name segment.
func escape(id string) string { return url.PathEscape(id) }

// windowName formats a window start (Unix seconds) so that names sort by
// time: sixteen hex digits of the offset-binary value.
func windowName(t int64) string { return fmt.Sprintf("%016x", uint64(t)^(1<<63)) }

func parseWindow(s string) (int64, bool) {
	var u uint64
	if len(s) != 16 {
		return 0, false
	}
	if _, err := fmt.Sscanf(s, "%016x", &u); err != nil {
		return 0, false
	}
	return int64(u ^ (1 << 63)), true
}

// floorDiv returns the largest multiple of d not above t.
func floorDiv(t, d int64) int64 {
	q := t / d * d
	if t < 0 && q != t {
		q -= d
	}
	return q
}

// Ingest validates and stores readings. Each reading's errors name its
// index (readings[3].value); nothing is stored when one is refused.
// Storing takes an operation per sensor for its readings, one per minute
// window each sensor's readings touch, and one per sensor for its latest
// value; up to opsPerCommit (1,500) of them are stored atomically, and a
// larger write in parts of that size, in order. An error after the first
// part says how many readings were stored. It returns the number of
// readings stored.
func (s *Series) Ingest(ctx context.Context, rs []Reading) (int, error) {
	return s.ingest(ctx, rs, true)
}

// IngestSummaries is Ingest for a node shedding load: the readings go
// into their minute summaries and latest values, and are not kept one by
// one. It returns the number of readings summarised.
func (s *Series) IngestSummaries(ctx context.Context, rs []Reading) (int, error) {
	return s.ingest(ctx, rs, false)
}

func (s *Series) ingest(ctx context.Context, rs []Reading, raw bool) (int, error) {
	if len(rs) > MaxReadings {
		return 0, invalid.Errorf("readings", "%d readings, limit %d per write", len(rs), MaxReadings)
	}
	now := s.now()
	var flags crdt.ReadingFlags
	synced := s.clock == nil || s.clock.Synced()
	if !synced {
		flags = crdt.FlagClockUnsynced
	}
	type sensor struct {
		id, unit string
		rs       []crdt.Reading
	}
	bySensor := map[string]*sensor{}
	var order []*sensor
	for i, r := range rs {
		id, err := SensorID(r.Sensor, r.Tags)
		if err != nil {
			e := err.(*invalid.Error)
			return 0, invalid.Errorf(fmt.Sprintf("readings[%d].%s", i, e.Field), "%s", e.Msg)
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			return 0, invalid.Errorf(fmt.Sprintf("readings[%d].value", i), "%v is not a finite number", r.Value)
		}
		if len(r.Unit) > 32 || !utf8.ValidString(r.Unit) {
			return 0, invalid.Errorf(fmt.Sprintf("readings[%d].unit", i), "must be UTF-8 of at most 32 bytes")
		}
		cr := crdt.Reading{Value: r.Value}
		if r.Time.IsZero() {
			cr.Time, cr.Flags = now.UnixNano(), flags
		} else {
			if r.Time.Before(time.Unix(0, 0)) || !r.Time.Before(lastTime) {
				return 0, invalid.Errorf(fmt.Sprintf("readings[%d].ts", i), "%s is out of range (1970 to %s)", r.Time.Format(time.RFC3339), lastTime.Format(time.DateOnly))
			}
			if synced && !r.NodeClock && r.Time.After(now.Add(MaxFuture)) {
				return 0, invalid.Errorf(fmt.Sprintf("readings[%d].ts", i), "%s is more than %s ahead of this node's clock", r.Time.Format(time.RFC3339), MaxFuture)
			}
			cr.Time = r.Time.UnixNano()
			if r.NodeClock {
				cr.Flags = flags
			}
		}
		sn := bySensor[id]
		if sn == nil {
			sn = &sensor{id: id}
			bySensor[id] = sn
			order = append(order, sn)
		}
		if r.Unit != "" {
			sn.unit = r.Unit
		}
		sn.rs = append(sn.rs, cr)
	}

	// Each part is atomic. A sensor's operations (facts, then its
	// windows' summaries, then its latest) may span parts, in order.
	type part struct {
		op       engine.Op
		readings int // readings stored by op: its facts
	}
	var parts []part
	for _, sn := range order {
		facts, rest := s.ops(sn.id, sn.unit, sn.rs)
		if raw {
			for i, op := range facts {
				parts = append(parts, part{op: op, readings: min(readingsPerOp, len(sn.rs)-i*readingsPerOp)})
			}
		}
		for i, op := range rest {
			p := part{op: op}
			if i == 0 && !raw {
				p.readings = len(sn.rs) // no facts: the summaries store them
			}
			parts = append(parts, p)
		}
	}
	stored := 0
	ops := make([]engine.Op, 0, min(len(parts), opsPerCommit))
	for start := 0; start < len(parts); start += opsPerCommit {
		chunk := parts[start:min(start+opsPerCommit, len(parts))]
		ops = ops[:0]
		for _, p := range chunk {
			ops = append(ops, p.op)
		}
		applied, err := s.doSplit(ctx, ops)
		for _, p := range chunk[:applied] {
			stored += p.readings
		}
		if err != nil {
			if stored > 0 {
				return stored, fmt.Errorf("stored %d of %d readings, then: %w", stored, len(rs), err)
			}
			return 0, err
		}
	}
	return stored, nil
}

// doSplit applies ops through the engine in one atomic commit or, when
// they are more writes than one transaction holds (long sensor IDs), in
// halves, each atomic, and returns how many of ops it applied.
func (s *Series) doSplit(ctx context.Context, ops []engine.Op) (int, error) {
	_, err := s.eng.DoAll(ctx, ops...)
	switch {
	case errors.Is(err, store.ErrTxnTooBig) && len(ops) > 1:
		half := len(ops) / 2
		a, err := s.doSplit(ctx, ops[:half])
		if err != nil {
			return a, err
		}
		b, err := s.doSplit(ctx, ops[half:])
		return a + b, err
	case err != nil:
		return 0, err
	}
	return len(ops), nil
}

// readingsPerOp bounds the readings of one operation on a sensor's facts,
// so that no single operation is too large for a transaction however
// many readings of one sensor a write holds: at worst each reading is in
// an hour of its own, a fragment key of up to about 600 bytes each, and a
// transaction of the low-memory profile holds about 6,500 entries and
// 614 KiB.
const readingsPerOp = 512

// ops returns the operations that store readings rs of sensor id: the
// facts, in operations of readingsPerOp readings at most, then the rest:
// the summary of each window they touch, and the latest reading.
func (s *Series) ops(id, unit string, rs []crdt.Reading) (facts, rest []engine.Op) {
	esc := escape(id)
	for start := 0; start < len(rs); start += readingsPerOp {
		facts = append(facts, engine.AddReadings(factsPrefix+esc, rs[start:min(start+readingsPerOp, len(rs))]...))
	}
	var ops []engine.Op
	byWindow := map[int64]summary{}
	var windows []int64
	newest := rs[0]
	for _, r := range rs {
		w := floorDiv(r.Time, int64(Window)) / 1e9
		sm, ok := byWindow[w]
		if !ok {
			windows = append(windows, w)
		}
		sm.add(r)
		byWindow[w] = sm
		if r.Time > newest.Time {
			newest = r
		}
	}
	slices.Sort(windows)
	for _, w := range windows {
		add := byWindow[w]
		name := summaryPrefix + esc + "/" + windowName(w) + "/" + s.replica
		ops = append(ops, engine.Op{Name: name, Type: crdt.TypeLWWRegister, Mutate: func(v crdt.Value, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error) {
			reg := v.(*crdt.LWWRegister)
			sm, err := decodeSummary(reg)
			if err != nil {
				return crdt.Causal{}, fmt.Errorf("summary %s: %w", name, err)
			}
			sm.merge(add)
			return reg.Set(g, now, sm.encode()), nil
		}})
	}
	latest := Latest{Time: newest.Time, Value: newest.Value, Flags: newest.Flags, Unit: unit}
	ops = append(ops, engine.Op{Name: latestPrefix + esc, Type: crdt.TypeLWWRegister, Mutate: func(v crdt.Value, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error) {
		reg := v.(*crdt.LWWRegister)
		cur, ok, err := decodeLatest(reg)
		if err != nil {
			return crdt.Causal{}, err
		}
		if ok && cur.Time > latest.Time {
			return crdt.Causal{Value: new(crdt.LWWRegister)}, nil // an older reading: no change
		}
		l := latest
		if l.Unit == "" && ok {
			l.Unit = cur.Unit
		}
		return reg.Set(g, now, l.encode()), nil
	}})
	return facts, ops
}

// Sensor is a sensor that has readings, with its latest one.
type Sensor struct {
	ID     string
	Latest Latest
}

// Sensors calls fn for each known sensor in ID order, after the sensor ID
// after (empty: from the first), at most limit of them (0: all).
func (s *Series) Sensors(after string, limit int, fn func(Sensor) error) error {
	start := ""
	if after != "" {
		start = latestPrefix + escape(after)
	}
	return s.db.Scan(latestPrefix, start, limit, func(name string, vs map[crdt.Type]crdt.Value) error {
		reg, _ := vs[crdt.TypeLWWRegister].(*crdt.LWWRegister)
		if reg == nil {
			return nil
		}
		l, ok, err := decodeLatest(reg)
		if err != nil || !ok {
			return err
		}
		id, err := url.PathUnescape(strings.TrimPrefix(name, latestPrefix))
		if err != nil {
			return fmt.Errorf("%w: sensor key %q", store.ErrCorrupt, name)
		}
		return fn(Sensor{ID: id, Latest: l})
	})
}

// LatestOf returns the latest reading of sensor id, and whether it has one.
func (s *Series) LatestOf(id string) (Latest, bool, error) {
	vs, err := s.db.Get(latestPrefix + escape(id))
	if err != nil {
		return Latest{}, false, err
	}
	reg, _ := vs[crdt.TypeLWWRegister].(*crdt.LWWRegister)
	if reg == nil {
		return Latest{}, false, nil
	}
	return decodeLatest(reg)
}

// Agg is how a query combines the readings of one bucket.
type Agg string

// The aggregations.
const (
	Avg   Agg = "avg"
	Min   Agg = "min"
	Max   Agg = "max"
	Sum   Agg = "sum"
	Count Agg = "count"
	Last  Agg = "last"
)

// ParseAgg parses an aggregation name; empty means Avg.
func ParseAgg(s string) (Agg, error) {
	switch a := Agg(s); a {
	case "":
		return Avg, nil
	case Avg, Min, Max, Sum, Count, Last:
		return a, nil
	}
	return "", invalid.Errorf("agg", "%q is not one of avg, min, max, sum, count, last", s)
}

// Query asks for the readings of one sensor.
type Query struct {
	Sensor   string
	From, To time.Time // [From, To)
	// Origin, when not zero, keeps the readings of that replica only (a
	// node's own sensors, on an aggregator): buckets are then computed
	// from its raw readings, as the minute summaries merge every origin.
	Origin crdt.ReplicaID
	// Step is the bucket width; zero asks for the raw readings.
	Step time.Duration
	Agg  Agg
}

// Point is one answer point: a raw reading, or a bucket's aggregate (Time
// is then the bucket's start).
type Point struct {
	Time  int64 // Unix nanoseconds
	Value float64
	// Count is the number of readings in the bucket (1 for a raw one).
	Count uint64
	// Flags of a raw reading.
	Flags crdt.ReadingFlags
}

// Run answers q. Buckets are aligned to multiples of Step since the Unix
// epoch, and the range is widened to whole buckets. Empty buckets are
// left out.
func (s *Series) Run(ctx context.Context, q Query) ([]Point, error) {
	// An ID no reading can have is an error, not an empty answer.
	if _, err := SensorID(q.Sensor, nil); err != nil {
		return nil, err
	}
	if !q.To.After(q.From) {
		return nil, invalid.Errorf("to", "must be after from")
	}
	if q.Step < 0 {
		return nil, invalid.Errorf("step", "must not be negative")
	}
	from, to := unixNanos(q.From), unixNanos(q.To)
	if to <= from {
		return nil, nil // wholly before 1970 or after lastTime: no reading is there
	}
	esc := escape(q.Sensor)
	if q.Step == 0 {
		return s.raw(factsPrefix+esc, from, to, q.Origin)
	}
	step := int64(q.Step)
	from, to = floorDiv(from, step), floorDiv(to-1, step)
	if to > math.MaxInt64-step {
		return nil, invalid.Errorf("step", "%s: the last bucket would end after %s", q.Step, lastTime.Format(time.DateOnly))
	}
	to += step
	// to−from may not fit an int64, but fits a uint64: from ≥ 0.
	if n := (uint64(to) - uint64(from)) / uint64(step); n > MaxPoints {
		return nil, invalid.Errorf("step", "%d buckets, limit %d: use a larger step or a shorter range", n, MaxPoints)
	}
	buckets := map[int64]*summary{}
	add := func(b int64, sm summary) {
		cur := buckets[b]
		if cur == nil {
			cur = &summary{}
			buckets[b] = cur
		}
		cur.merge(sm)
	}
	var err error
	if step%int64(Window) == 0 && q.Origin == 0 {
		err = s.summaries(ctx, esc, from, to, func(w int64, sm summary) { add(floorDiv(w, step), sm) })
	} else {
		err = s.db.Readings(factsPrefix+esc, from, to, func(o crdt.ReplicaID, _ crdt.Seq, r crdt.Reading) error {
			if q.Origin != 0 && o != q.Origin {
				return nil
			}
			var sm summary
			sm.add(r)
			add(floorDiv(r.Time, step), sm)
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	pts := make([]Point, 0, len(buckets))
	for b, sm := range buckets {
		pts = append(pts, Point{Time: b, Value: sm.value(q.Agg), Count: sm.Count})
	}
	slices.SortFunc(pts, func(a, b Point) int { return cmp.Compare(a.Time, b.Time) })
	return pts, nil
}

// raw returns the readings of facts name in [from, to), by time.
func (s *Series) raw(name string, from, to int64, origin crdt.ReplicaID) ([]Point, error) {
	var pts []Point
	err := s.db.Readings(name, from, to, func(o crdt.ReplicaID, _ crdt.Seq, r crdt.Reading) error {
		if origin != 0 && o != origin {
			return nil
		}
		if len(pts) == MaxPoints {
			return invalid.Errorf("step", "more than %d readings: give a step to downsample, or a shorter range", MaxPoints)
		}
		pts = append(pts, Point{Time: r.Time, Value: r.Value, Count: 1, Flags: r.Flags})
		return nil
	})
	slices.SortStableFunc(pts, func(a, b Point) int { return cmp.Compare(a.Time, b.Time) })
	return pts, err
}

// summaries calls fn with each replica's summary of each window of sensor
// esc that starts in [from, to).
func (s *Series) summaries(ctx context.Context, esc string, from, to int64, fn func(window int64, sm summary)) error {
	prefix := summaryPrefix + esc + "/"
	after := prefix + windowName(floorDiv(from, int64(Window))/1e9-1) + "/\xff"
	end := floorDiv(to-1, int64(Window)) / 1e9
	err := s.db.Scan(prefix, after, 0, func(name string, vs map[crdt.Type]crdt.Value) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rest := strings.TrimPrefix(name, prefix)
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return nil
		}
		w, ok := parseWindow(rest[:slash])
		if !ok {
			return nil
		}
		if w > end {
			return errStop
		}
		reg, _ := vs[crdt.TypeLWWRegister].(*crdt.LWWRegister)
		if reg == nil {
			return nil
		}
		sm, err := decodeSummary(reg)
		if err != nil {
			return fmt.Errorf("summary %s: %w", name, err)
		}
		fn(w*1e9, sm)
		return nil
	})
	if err == errStop {
		return nil
	}
	return err
}

var errStop = fmt.Errorf("series: stop")

// Expire removes the per-minute summaries of windows that start before
// before, for every sensor, and returns how many. The removal is an
// ordinary CRDT remove, so peers with the same retention converge on it;
// it goes through the engine in parts of opsPerCommit keys.
func (s *Series) Expire(ctx context.Context, before time.Time) (int, error) {
	cutoff := floorDiv(before.UnixNano(), int64(Window)) / 1e9
	var sensors []string
	err := s.db.Scan(latestPrefix, "", 0, func(name string, _ map[crdt.Type]crdt.Value) error {
		sensors = append(sensors, strings.TrimPrefix(name, latestPrefix))
		return nil
	})
	if err != nil {
		return 0, err
	}
	var ops []engine.Op
	removed := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		n, err := s.doSplit(ctx, ops)
		removed += n
		ops = ops[:0]
		return err
	}
	for _, esc := range sensors {
		prefix := summaryPrefix + esc + "/"
		err := s.db.Scan(prefix, "", 0, func(name string, _ map[crdt.Type]crdt.Value) error {
			rest := strings.TrimPrefix(name, prefix)
			w, ok := parseWindow(rest[:min(len(rest), 16)])
			if !ok || strings.Contains(rest[min(len(rest), 17):], "/") {
				return nil // another sensor's, whose escaped ID extends this one
			}
			if w >= cutoff {
				return errStop
			}
			ops = append(ops, engine.Remove(name))
			if len(ops) == opsPerCommit {
				return flush()
			}
			return nil
		})
		if err != nil && err != errStop {
			return removed, err
		}
	}
	return removed, flush()
}
