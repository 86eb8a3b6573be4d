// Package ingest turns the wire forms of sensor readings into
// series.Readings: JSON (the HTTP API's and MQTT's), InfluxDB line protocol
// (Telegraf's) and a bare number (MQTT's simplest payload). Every decoder
// has limits and returns *invalid.Error naming what is wrong.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
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

// envelope is a JSON body: {"readings":[...]} or the members of a single
// reading. Members are pointers, or nil-able, so that a single reading's
// member beside "readings" is seen even when empty (null counts as
// absent). R is jsonReading, or json.RawMessage when jsonError looks for
// the reading an error is in.
type envelope[R any] struct {
	Readings []R               `json:"readings"`
	Sensor   *string           `json:"sensor"`
	Value    *float64          `json:"value"`
	Unit     *string           `json:"unit"`
	TS       json.RawMessage   `json:"ts"`
	Tags     map[string]string `json:"tags"`
}

// member returns the name of a single reading's member that the envelope
// holds, or "" when it holds none.
func (e *envelope[R]) member() string {
	switch {
	case e.Sensor != nil:
		return "sensor"
	case e.Value != nil:
		return "value"
	case e.Unit != nil:
		return "unit"
	case len(e.TS) > 0 && string(e.TS) != "null":
		return "ts"
	case e.Tags != nil:
		return "tags"
	}
	return ""
}

// reading returns the single reading the envelope's members make.
func (e *envelope[R]) reading() jsonReading {
	jr := jsonReading{Value: e.Value, TS: e.TS, Tags: e.Tags}
	if e.Sensor != nil {
		jr.Sensor = *e.Sensor
	}
	if e.Unit != nil {
		jr.Unit = *e.Unit
	}
	return jr
}

// JSON decodes {"readings": [{"sensor", "value", "unit", "ts", "tags"}]},
// or a single reading object, but not both in one object. ts is an
// RFC 3339 time or a number of Unix seconds (fractions allowed); absent
// means now. sensor, when empty in a reading, is defaultSensor (MQTT takes
// it from the topic).
func JSON(b []byte, defaultSensor string) ([]series.Reading, error) {
	var env envelope[jsonReading]
	if err := decodeJSON(b, &env); err != nil {
		return nil, jsonError(b, err)
	}
	in, prefix := env.Readings, "readings"
	if env.Readings == nil {
		in, prefix = []jsonReading{env.reading()}, "reading"
	} else if m := env.member(); m != "" {
		// Taking either form alone would drop the other's readings.
		return nil, invalid.Errorf(m, `a single reading's member beside "readings": put it in a reading of "readings"`)
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

// errTrailing is what decodeJSON returns for data after the JSON value.
var errTrailing = errors.New("trailing data after the JSON value")

// decodeJSON decodes the one JSON value b holds into v. Unknown members
// are errors, so a misspelt "vaule" is not silently dropped.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Not dec.More, which takes a trailing "}" or "]" for the end.
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return errTrailing
	}
	return nil
}

// jsonError turns err, from decoding the JSON body b, into an
// *invalid.Error. encoding/json names a member by a path without indices
// ("readings.value") and a type by Go's name ("float64"); the API names
// "readings[1].value" and JSON's types. To find which reading is at
// fault, b is decoded again, reading by reading: only refused input pays
// for that.
func jsonError(b []byte, err error) error {
	if err == errTrailing {
		return invalid.Errorf("", "%v", err)
	}
	if _, ok := memberError("", err); !ok {
		return invalid.Errorf("", "malformed JSON: %v", err)
	}
	var env envelope[json.RawMessage]
	if err := decodeJSON(b, &env); err != nil {
		if e, ok := memberError("", err); ok {
			return e
		}
	}
	for i, raw := range env.Readings {
		var jr jsonReading
		if err := decodeJSON(raw, &jr); err != nil {
			if e, ok := memberError(fmt.Sprintf("readings[%d]", i), err); ok {
				return e
			}
		}
	}
	e, _ := memberError("", err) // not found again: named without the index
	return e
}

// memberError returns err, from decoding the object at path (the body:
// ""), as an *invalid.Error in the API's terms, if err is about one
// member: a value of the wrong type or an unknown member.
func memberError(path string, err error) (*invalid.Error, bool) {
	if s, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if name, err := strconv.Unquote(s); err == nil {
			return invalid.Errorf(path, "unknown member %.64q", name), true
		}
	}
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return nil, false
	}
	field := te.Field
	if path != "" && field != "" {
		field = path + "." + field
	} else if path != "" {
		field = path
	}
	got, lit, _ := strings.Cut(te.Value, " ") // "number 1e400": a number out of range
	want := jsonType(te.Type)
	if te.Field == "readings" && te.Type.Kind() == reflect.Slice {
		want = "an array of readings"
	}
	switch {
	case got == "number" && lit != "" && want == "a number":
		return invalid.Errorf(field, "%s is beyond the range of a 64-bit float", clip(lit)), true
	case got == "bool":
		got = "boolean"
	}
	if te.Field == "tags" || strings.HasSuffix(te.Field, ".tags") {
		if te.Type.Kind() == reflect.String {
			return invalid.Errorf(field, "tag values must be strings, not a JSON %s", got), true
		}
		want = "an object of strings"
	}
	if te.Field == "" && path == "" {
		return invalid.Errorf("", "the body must be a JSON object (a reading or {\"readings\":[...]}), not a JSON %s", got), true
	}
	return invalid.Errorf(field, "must be %s, not a JSON %s", want, got), true
}

// jsonType names, the JSON way, the values that decode into t.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return "a number"
	}
}

// clip returns s, shortened for an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
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
// JSON (see JSON), or line protocol (with nanosecond times). A bare number
// is written as in JSON (RFC 8259): "21.5", "-3", "1e-3"; not "+1", ".5",
// "1.", "007", "1_000", "0x1p4", "Inf" or "NaN", which strconv.ParseFloat
// would take.
func Payload(sensor string, b []byte, now time.Time) ([]series.Reading, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, invalid.Errorf("", "empty payload")
	}
	if isJSONNumber(t) {
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil { // the syntax is ParseFloat's too: out of range
			return nil, invalid.Errorf("value", "%s is beyond the range of a 64-bit float", clip(string(t)))
		}
		return []series.Reading{{Sensor: sensor, Value: f}}, nil
	}
	if t[0] == '{' {
		return JSON(t, sensor)
	}
	if bytes.IndexByte(t, ' ') < 0 && (strings.IndexByte("+-.0123456789", t[0]) >= 0 || parsesAsFloat(t)) {
		// Not line protocol, which has a space: a number not written as
		// in JSON ("1_000", "0x1p4", "1e"), or what only Go's
		// strconv.ParseFloat takes for one ("Inf").
		return nil, invalid.Errorf("value", "%s is not a number as JSON writes it, such as 21.5, -3 or 1e-3", clip(string(t)))
	}
	rs, skipped, err := LineProtocol(t, lineproto.Nanosecond, now)
	if err == nil && len(rs) == 0 {
		return nil, invalid.Errorf("", "no readings in the payload (%d string fields skipped)", skipped)
	}
	return rs, err
}

// parsesAsFloat reports whether strconv.ParseFloat takes t for a number,
// if perhaps out of range.
func parsesAsFloat(t []byte) bool {
	_, err := strconv.ParseFloat(string(t), 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// isJSONNumber reports whether b is a number in JSON's grammar:
//
//	[ "-" ] ( "0" | digit1-9 { digit } ) [ "." digit { digit } ] [ ( "e" | "E" ) [ "+" | "-" ] digit { digit } ]
func isJSONNumber(b []byte) bool {
	i, n := 0, len(b)
	if i < n && b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case i < n && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < n && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == n
}

// digits returns the end of the run of decimal digits at b[i:].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
