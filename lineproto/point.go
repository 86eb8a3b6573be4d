package lineproto

import (
	"fmt"
	"time"
)

// Kind is the type of a field value.
type Kind uint8

// The kinds of field values. The zero Kind is no value: AppendPoint rejects
// it and Parse never returns it.
const (
	KindFloat  Kind = iota + 1 // 1.5, -1e3, 1
	KindInt                    // 1i
	KindUint                   // 1u
	KindBool                   // t, true, F, FALSE, ...
	KindString                 // "text"
)

var kindNames = [...]string{"invalid", "float", "integer", "unsigned", "boolean", "string"}

// String returns "float", "integer", "unsigned", "boolean" or "string".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Field is one field of a point: a key and a value of one Kind, held in the
// member of that kind (the others are zero).
type Field struct {
	// Key is the field key, unescaped.
	Key string
	// Str is the value of a KindString field, unescaped.
	Str string
	// Float is the value of a KindFloat field; never NaN or infinite.
	Float float64
	// Int is the value of a KindInt field.
	Int int64
	// Uint is the value of a KindUint field.
	Uint uint64
	// Kind says which member holds the value.
	Kind Kind
	// Bool is the value of a KindBool field.
	Bool bool
}

// FloatField returns a float field.
func FloatField(key string, v float64) Field { return Field{Key: key, Kind: KindFloat, Float: v} }

// IntField returns an integer field.
func IntField(key string, v int64) Field { return Field{Key: key, Kind: KindInt, Int: v} }

// UintField returns an unsigned integer field.
func UintField(key string, v uint64) Field { return Field{Key: key, Kind: KindUint, Uint: v} }

// BoolField returns a boolean field.
func BoolField(key string, v bool) Field { return Field{Key: key, Kind: KindBool, Bool: v} }

// StringField returns a string field.
func StringField(key, v string) Field { return Field{Key: key, Kind: KindString, Str: v} }

// Number returns the value of a float, integer or unsigned field as a
// float64 (large integers round to the nearest float64), and false for
// boolean and string fields.
func (f Field) Number() (float64, bool) {
	switch f.Kind {
	case KindFloat:
		return f.Float, true
	case KindInt:
		return float64(f.Int), true
	case KindUint:
		return float64(f.Uint), true
	}
	return 0, false
}

// Tag is one tag of a point, unescaped.
type Tag struct{ Key, Value string }

// Point is one parsed line.
type Point struct {
	// Measurement is the measurement name, unescaped.
	Measurement string
	// Tags are sorted by key (byte-wise, as InfluxDB sorts them), with no
	// key twice.
	Tags []Tag
	// Fields are in the order of the line, at least one, with no key twice
	// (the last value given for a key wins).
	Fields []Field
	// Time is the point's time in Unix nanoseconds: its timestamp, or when
	// it has none the time the caller passed to Parse, truncated to the
	// precision.
	Time int64
	// HasTime says the line had a timestamp.
	HasTime bool
}

// Clone returns a copy of p that shares nothing mutable with p: what a
// Parse callback must keep instead of the *Point it is given.
func (p *Point) Clone() Point {
	c := *p
	c.Tags = append([]Tag(nil), p.Tags...)
	c.Fields = append([]Field(nil), p.Fields...)
	return c
}

// Precision is the unit of the timestamps in a body. The zero Precision is
// Nanosecond, the default of both InfluxDB APIs.
type Precision uint8

// The precisions of InfluxDB's write APIs: v2 accepts ns, us, ms and s; v1
// also m and h.
const (
	Nanosecond Precision = iota
	Microsecond
	Millisecond
	Second
	Minute
	Hour
)

var (
	precNames = [...]string{"ns", "us", "ms", "s", "m", "h"}
	precUnits = [...]int64{1, 1e3, 1e6, 1e9, 60e9, 3600e9}
)

// ParsePrecision returns the precision named s, as the "precision" query
// parameter of InfluxDB's write APIs gives it: "ns", "us", "ms" or "s" (v2),
// "n", "u", "ms", "s", "m" or "h" (v1). The empty string is Nanosecond. The
// error wraps ErrPrecision and names s.
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "", "ns", "n":
		return Nanosecond, nil
	case "us", "u":
		return Microsecond, nil
	case "ms":
		return Millisecond, nil
	case "s":
		return Second, nil
	case "m":
		return Minute, nil
	case "h":
		return Hour, nil
	}
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return 0, fmt.Errorf("%w %q (want ns, us, ms, s, m or h)", ErrPrecision, s)
}

// String returns the v2 name of p ("ns", "us", "ms", "s") or the v1 name
// ("m", "h").
func (p Precision) String() string {
	if int(p) < len(precNames) {
		return precNames[p]
	}
	return fmt.Sprintf("Precision(%d)", p)
}

// Duration returns the length of one unit of p, or 0 for an unknown p.
func (p Precision) Duration() time.Duration {
	u, _ := p.unit()
	return time.Duration(u)
}

// unit returns the nanoseconds in one unit of p.
func (p Precision) unit() (int64, bool) {
	if int(p) < len(precUnits) {
		return precUnits[p], true
	}
	return 0, false
}

func (p Precision) check() error {
	if _, ok := p.unit(); !ok {
		return fmt.Errorf("%w: %v", ErrPrecision, p)
	}
	return nil
}

// The range of times InfluxDB accepts. The three int64 values outside it
// are left to storage engines as sentinels.
const (
	minTime = -1<<63 + 2
	maxTime = 1<<63 - 2
)
