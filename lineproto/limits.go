package lineproto

import "fmt"

// Limits bounds what one body may hold, so that a hostile or broken client
// costs a node no more than the bytes it sends. Exceeding a limit is a
// *SyntaxError wrapping ErrLimit that names the limit. The zero value of a
// field means its default.
type Limits struct {
	// MaxLineBytes bounds the bytes of one point line, leading blanks
	// included and the line end excluded; a point whose string values hold
	// newlines counts all its physical lines. Comment lines are not
	// counted. Default 64 KiB (InfluxDB's limit for one string value).
	MaxLineBytes int
	// MaxPoints bounds the points in one body. Default 100,000.
	MaxPoints int
	// MaxFields bounds the fields of one point, counting a key given
	// twice twice. Default 256.
	MaxFields int
	// MaxTags bounds the tags of one point. Default 64.
	MaxTags int
	// MaxKeyBytes bounds the bytes of a measurement, a tag key, a tag
	// value and a field key, after unescaping. Default 256.
	MaxKeyBytes int
}

// DefaultLimits returns the limits that a zero field stands for.
func DefaultLimits() Limits {
	return Limits{
		MaxLineBytes: 64 << 10,
		MaxPoints:    100_000,
		MaxFields:    256,
		MaxTags:      64,
		MaxKeyBytes:  256,
	}
}

// Validate returns an error naming the first negative field.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxLineBytes", l.MaxLineBytes},
		{"MaxPoints", l.MaxPoints},
		{"MaxFields", l.MaxFields},
		{"MaxTags", l.MaxTags},
		{"MaxKeyBytes", l.MaxKeyBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("lineproto: Limits.%s is %d, want 0 (the default) or more", f.name, f.v)
		}
	}
	return nil
}

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLineBytes == 0 {
		l.MaxLineBytes = d.MaxLineBytes
	}
	if l.MaxPoints == 0 {
		l.MaxPoints = d.MaxPoints
	}
	if l.MaxFields == 0 {
		l.MaxFields = d.MaxFields
	}
	if l.MaxTags == 0 {
		l.MaxTags = d.MaxTags
	}
	if l.MaxKeyBytes == 0 {
		l.MaxKeyBytes = d.MaxKeyBytes
	}
	return l
}
