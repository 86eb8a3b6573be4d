package api

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/ingest"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/lineproto"
	"github.com/edged-dev/edged/series"
)

// stored is the answer of POST /v1/readings.
type stored struct {
	Stored int `json:"stored"`
	// Downsampled: the node is shedding load, and kept the readings as
	// their minute summaries and latest values only.
	Downsampled bool `json:"downsampled,omitempty"`
}

// ingest stores readings, as summaries only when the request was admitted
// downsampled.
func (a *API) ingest(ctx context.Context, rs []series.Reading) (int, error) {
	if downsampled(ctx) {
		n, err := a.o.Series.IngestSummaries(ctx, rs)
		a.m.downsampled.Add(float64(n))
		return n, err
	}
	return a.o.Series.Ingest(ctx, rs)
}

func (a *API) readings(w http.ResponseWriter, r *http.Request) error {
	b, err := a.body(w, r, maxReadingsBody, "application/json")
	if err != nil {
		return err
	}
	rs, err := ingest.JSON(b, "")
	if err != nil {
		return err
	}
	n, err := a.ingest(r.Context(), rs)
	a.m.readings.WithLabelValues("json").Add(float64(n))
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, stored{Stored: n, Downsampled: downsampled(r.Context())})
	return nil
}

// write takes InfluxDB line protocol, as InfluxDB 1.x (/write, precision
// n, u, ms, s, m, h) and 2.x (/api/v2/write, precision ns, us, ms, s) do,
// and answers 204 like them, so Telegraf's outputs work unchanged. The
// database, org and bucket parameters are accepted and ignored.
func (a *API) write(w http.ResponseWriter, r *http.Request) error {
	prec, err := lineproto.ParsePrecision(r.URL.Query().Get("precision"))
	if err != nil {
		return invalid.Errorf("precision", "%v", err)
	}
	b, err := a.body(w, r, maxWriteBody, "text/plain", "application/octet-stream")
	if err != nil {
		return err
	}
	rs, skipped, err := ingest.LineProtocol(b, prec, a.o.Now())
	if err != nil {
		return err
	}
	n, err := a.ingest(r.Context(), rs)
	a.m.readings.WithLabelValues("line").Add(float64(n))
	a.m.skipped.Add(float64(skipped))
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sensorDoc is a sensor in GET /v1/sensors.
type sensorDoc struct {
	ID     string     `json:"sensor"`
	Latest readingDoc `json:"latest"`
	Unit   string     `json:"unit,omitempty"`
}

type readingDoc struct {
	TS    time.Time `json:"ts"`
	Value number    `json:"value"`
	// Unsynced marks a reading stamped while the node's clock was not
	// synchronised.
	Unsynced bool    `json:"clock_unsynced,omitempty"`
	Count    *uint64 `json:"count,omitempty"`
}

// number is a float that encodes as null when it is not finite (a sum
// that overflowed, and an average of it), which JSON cannot carry.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func (a *API) sensors(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 1000)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 10000 {
		return invalid.Errorf("limit", "must be 1 to 10000")
	}
	out := struct {
		Sensors []sensorDoc `json:"sensors"`
	}{Sensors: []sensorDoc{}}
	err = a.o.Series.Sensors(q.Get("after"), limit, func(s series.Sensor) error {
		out.Sensors = append(out.Sensors, sensorDoc{ID: s.ID, Unit: s.Latest.Unit, Latest: readingDoc{
			TS: time.Unix(0, s.Latest.Time).UTC(), Value: number(s.Latest.Value), Unsynced: s.Latest.Flags&crdt.FlagClockUnsynced != 0}})
		return nil
	})
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

// seriesDoc is the answer of GET /v1/series/{sensor}.
type seriesDoc struct {
	Sensor string       `json:"sensor"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Step   string       `json:"step,omitempty"`
	Agg    series.Agg   `json:"agg,omitempty"`
	Points []readingDoc `json:"points"`
}

func (a *API) series(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	now := a.o.Now()
	to, err := timeParam(q.Get("to"), "to", now, now)
	if err != nil {
		return err
	}
	from, err := timeParam(q.Get("from"), "from", to.Add(-time.Hour), now)
	if err != nil {
		return err
	}
	var step time.Duration
	if s := q.Get("step"); s != "" {
		if step, err = time.ParseDuration(s); err != nil || step <= 0 {
			return invalid.Errorf("step", "%q is not a positive duration such as 1m", s)
		}
	}
	agg, err := series.ParseAgg(q.Get("agg"))
	if err != nil {
		return err
	}
	var origin crdt.ReplicaID
	if n := q.Get("node"); n != "" {
		id, err := strconv.ParseUint(n, 16, 64)
		if err != nil || id == 0 || len(n) != 16 {
			return invalid.Errorf("node", "%q is not a replica ID (16 hex digits)", n)
		}
		origin = crdt.ReplicaID(id)
	}
	sensor := r.PathValue("sensor")
	pts, err := a.o.Series.Run(r.Context(), series.Query{Sensor: sensor, From: from, To: to, Step: step, Agg: agg, Origin: origin})
	if err != nil {
		return err
	}
	out := seriesDoc{Sensor: sensor, From: from.UTC(), To: to.UTC(), Points: make([]readingDoc, len(pts))}
	if step > 0 {
		out.Step, out.Agg = step.String(), agg
	}
	for i, p := range pts {
		d := readingDoc{TS: time.Unix(0, p.Time).UTC(), Value: number(p.Value), Unsynced: p.Flags&crdt.FlagClockUnsynced != 0}
		if step > 0 {
			d.Count = &pts[i].Count
		}
		out.Points[i] = d
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

// timeParam parses an RFC 3339 time, or a duration relative to now
// ("-24h"), or nothing (def).
func timeParam(s, name string, def, now time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s); err == nil {
			return now.Add(d), nil
		}
	}
	return time.Time{}, invalid.Errorf(name, "%q is neither an RFC 3339 time (2026-11-23T10:00:00Z) nor a duration before now (-24h)", s)
}
