// Package ingest turns the wire forms of sensor readings into
// series.Readings: JSON (the HTTP API's and MQTT's), InfluxDB line protocol
// (Telegraf's) and a bare number (MQTT's simplest payload). Every decoder
// has limits and returns *invalid.Error naming what is wrong.
package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/lineproto"
	"github.com/edged-dev/edged/series"
)

// jsonReading is one reading in JSON.
type jsonReading struct {
	Sensor string            `json:"sensor"`
	Value  *float64          `json:"value"`
	Unit   string            `json:"unit"`
	TS     json.RawMessage   `json:"ts"`
	Tags   map[string]string `json:"tags"`
}

// JSON decodes {"readings": [{"sensor", "value", "unit", "ts", "tags"}]},
// or a single reading object. ts is an RFC 3339 time or a number of Unix
// seconds (fractions allowed); absent means now. sensor, when empty in a
// reading, is defaultSensor (MQTT takes it from the topic).
func JSON(b []byte, defaultSensor string) ([]series.Reading, error) {
	// Either form decodes into the one envelope; unknown members are
	// errors, so a misspelt "vaule" is not silently dropped.
	var env struct {
		Readings []jsonReading `json:"readings"`
		jsonReading
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, jsonError(err)
	}
	if dec.More() {
		return nil, invalid.Errorf("", "trailing data after the JSON value")
	}
	in, prefix := env.Readings, "readings"
	if env.Readings == nil {
		in, prefix = []jsonReading{env.jsonReading}, "reading"
	} else if len(in) == 0 {
		return nil, invalid.Errorf("readings", "must hold at least one reading")
	}
	if len(in) > series.MaxReadings {
		return nil, invalid.Errorf("readings", "%d readings, limit %d per write", len(in), series.MaxReadings)
	}
	out := make([]series.Reading, len(in))
	for i, jr := range in {
		field := func(f string) string {
			if prefix == "reading" {
				return f
			}
			return fmt.Sprintf("readings[%d].%s", i, f)
		}
		r := series.Reading{Sensor: jr.Sensor, Unit: jr.Unit, Tags: jr.Tags}
		if r.Sensor == "" {
			r.Sensor = defaultSensor
		}
		if jr.Value == nil {
			return nil, invalid.Errorf(field("value"), "missing")
		}
		r.Value = *jr.Value
		t, err := parseTS(jr.TS)
		if err != nil {
			return nil, invalid.Errorf(field("ts"), "%v", err)
		}
		r.Time = t
		out[i] = r
	}
	return out, nil
}

// parseTS parses a JSON time: absent or null (zero: now), an RFC 3339
// string, or Unix seconds.
func parseTS(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time such as 2026-11-23T10:00:00Z", s)
		}
		return t, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 9e9 {
		return time.Time{}, fmt.Errorf("%s is neither an RFC 3339 string nor Unix seconds", raw)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func jsonError(err error) error {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return invalid.Errorf(te.Field, "must be a %s, not a JSON %s", te.Type, te.Value)
	}
	return invalid.Errorf("", "malformed JSON: %v", err)
}

// LineProtocol decodes InfluxDB line protocol: each numeric field of a
// point is a reading of sensor "<measurement>.<field>" with the point's
// tags (booleans are 1 and 0). String fields are not readings: they are
// skipped and counted. Points without a time get now.
func LineProtocol(b []byte, prec lineproto.Precision, now time.Time) (rs []series.Reading, skipped int, err error) {
	var name []byte
	err = lineproto.Parse(b, prec, now.UnixNano(), lineproto.DefaultLimits(), func(p *lineproto.Point) error {
		var tags map[string]string
		if len(p.Tags) > 0 {
			tags = make(map[string]string, len(p.Tags))
			for _, t := range p.Tags {
				tags[t.Key] = t.Value
			}
		}
		t := time.Unix(0, p.Time)
		for _, f := range p.Fields {
			v, ok := f.Number()
			if f.Kind == lineproto.KindBool {
				v, ok = 0, true
				if f.Bool {
					v = 1
				}
			}
			if !ok {
				skipped++
				continue
			}
			if len(rs) == series.MaxReadings {
				return invalid.Errorf("", "more than %d readings in one write", series.MaxReadings)
			}
			name = append(append(append(name[:0], p.Measurement...), '.'), f.Key...)
			// A point without a time was stamped with the node's clock.
			rs = append(rs, series.Reading{Sensor: string(name), Tags: tags, Value: v, Time: t, NodeClock: !p.HasTime})
		}
		return nil
	})
	if err != nil {
		if _, ok := invalid.FieldOf(err); !ok {
			err = invalid.Wrap("", fmt.Errorf("line protocol: %w", err))
		}
		return nil, 0, err
	}
	return rs, skipped, nil
}

// Payload decodes an MQTT readings payload for sensor: a bare number,
// JSON (see JSON), or line protocol (with nanosecond times).
func Payload(sensor string, b []byte, now time.Time) ([]series.Reading, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, invalid.Errorf("", "empty payload")
	}
	if f, err := strconv.ParseFloat(string(t), 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, invalid.Errorf("value", "%s is not a finite number", t)
		}
		return []series.Reading{{Sensor: sensor, Value: f}}, nil
	}
	if t[0] == '{' {
		return JSON(t, sensor)
	}
	rs, skipped, err := LineProtocol(t, lineproto.Nanosecond, now)
	if err == nil && len(rs) == 0 {
		return nil, invalid.Errorf("", "no readings in the payload (%d string fields skipped)", skipped)
	}
	return rs, err
}
