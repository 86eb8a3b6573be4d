package lineproto

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendPoint appends p to dst as one line of line protocol, ended by "\n",
// with its time in units of prec (no timestamp when p.HasTime is false).
//
// What AppendPoint writes, Parse reads back as p, with its tags sorted and
// a field key given twice reduced to its last value (given limits large
// enough). Floats are written in the shortest form that reads back exactly.
// It returns dst unchanged and an error wrapping ErrEncode for a point that
// has no line-protocol form: an empty name, invalid UTF-8, a control
// character or a trailing backslash in a name, a measurement starting with
// '#', a tag key given twice, no fields, a zero Kind, a NaN or infinite
// float, a time that is not a whole number of prec units or is outside
// InfluxDB's range. An unknown prec is an error wrapping ErrPrecision.
func AppendPoint(dst []byte, p *Point, prec Precision) ([]byte, error) {
	unit, ok := prec.unit()
	if !ok {
		return dst, prec.check()
	}
	if err := checkPoint(p, prec, unit); err != nil {
		return dst, err
	}
	dst = appendEscaped(dst, p.Measurement, &measClass)
	for _, t := range p.Tags {
		dst = append(dst, ',')
		dst = appendEscaped(dst, t.Key, &keyClass)
		dst = append(dst, '=')
		dst = appendEscaped(dst, t.Value, &keyClass)
	}
	for i, f := range p.Fields {
		if i == 0 {
			dst = append(dst, ' ')
		} else {
			dst = append(dst, ',')
		}
		dst = appendEscaped(dst, f.Key, &keyClass)
		dst = append(dst, '=')
		switch f.Kind {
		case KindFloat:
			dst = strconv.AppendFloat(dst, f.Float, 'g', -1, 64)
		case KindInt:
			dst = strconv.AppendInt(dst, f.Int, 10)
			dst = append(dst, 'i')
		case KindUint:
			dst = strconv.AppendUint(dst, f.Uint, 10)
			dst = append(dst, 'u')
		case KindBool:
			dst = strconv.AppendBool(dst, f.Bool)
		case KindString:
			dst = append(dst, '"')
			for i := 0; i < len(f.Str); i++ {
				if c := f.Str[i]; c == '"' || c == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, f.Str[i])
			}
			dst = append(dst, '"')
		}
	}
	if p.HasTime {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Time/unit, 10)
	}
	return append(dst, '\n'), nil
}

// appendEscaped appends s with a backslash before each separator of tbl.
func appendEscaped(dst []byte, s string, tbl *[256]uint8) []byte {
	for i := 0; i < len(s); i++ {
		if tbl[s[i]] == clsSep {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}

// checkPoint returns why p has no line-protocol form, or nil.
func checkPoint(p *Point, prec Precision, unit int64) error {
	if err := checkName(p.Measurement, part{kind: inMeasurement}); err != nil {
		return err
	}
	if p.Measurement[0] == '#' {
		return fmt.Errorf("%w: measurement %q starts with '#' (a comment)", ErrEncode, p.Measurement)
	}
	sorted := true
	for i, t := range p.Tags {
		if err := checkName(t.Key, part{kind: inTagKey}); err != nil {
			return err
		}
		if err := checkName(t.Value, part{inTagValue, t.Key}); err != nil {
			return err
		}
		if i > 0 && p.Tags[i-1].Key >= t.Key {
			sorted = false
		}
	}
	if !sorted { // rare: a quadratic check needs no buffer
		for i := range p.Tags {
			for j := i + 1; j < len(p.Tags); j++ {
				if p.Tags[i].Key == p.Tags[j].Key {
					return fmt.Errorf("%w: tag key %q given twice", ErrEncode, p.Tags[i].Key)
				}
			}
		}
	}
	if len(p.Fields) == 0 {
		return fmt.Errorf("%w: no fields", ErrEncode)
	}
	for _, f := range p.Fields {
		if err := checkName(f.Key, part{kind: inFieldKey}); err != nil {
			return err
		}
		switch f.Kind {
		case KindFloat:
			if math.IsNaN(f.Float) || math.IsInf(f.Float, 0) {
				return fmt.Errorf("%w: field %q: %v has no line-protocol form", ErrEncode, f.Key, f.Float)
			}
		case KindString:
			if !utf8.ValidString(f.Str) {
				return fmt.Errorf("%w: field %q: invalid UTF-8", ErrEncode, f.Key)
			}
		case KindInt, KindUint, KindBool:
		default:
			return fmt.Errorf("%w: field %q: invalid kind %v", ErrEncode, f.Key, f.Kind)
		}
	}
	if p.HasTime {
		if p.Time < minTime || p.Time > maxTime {
			return fmt.Errorf("%w: time %d outside InfluxDB's range", ErrEncode, p.Time)
		}
		if p.Time%unit != 0 {
			return fmt.Errorf("%w: time %d is not a whole number of %v", ErrEncode, p.Time, prec)
		}
	}
	return nil
}

// checkName returns why s cannot be the name of what, or nil.
func checkName(s string, what part) error {
	var why string
	switch {
	case s == "":
		why = "empty"
	case !utf8.ValidString(s):
		why = "invalid UTF-8"
	case s[len(s)-1] == '\\':
		why = "ends with a backslash"
	default:
		for i := 0; i < len(s); i++ {
			if measClass[s[i]] == clsCtl {
				why = fmt.Sprintf("control character %q", rune(s[i]))
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: %v %q: %s", ErrEncode, what, s, why)
}
