package lineproto_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edged-dev/edged/lineproto"
)

// Fuzz targets for the parser. A request body is where a buggy or hostile
// client's bytes enter a node, so the properties are those the write
// endpoints rely on: no panic, every error a *SyntaxError that points into
// the body, nothing delivered from a body that fails, points that satisfy
// the documented invariants, and an encoding that reads back as the same
// points.
//
// Run one target at a time, for example:
//
//	go test ./lineproto -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s
//
// Inputs the fuzzer finds failing are kept in testdata/fuzz/<FuzzName>/ and
// run by plain go test from then on.

// fzLimits are the limits a fuzz input's mode selects: the defaults, or
// small ones that the fuzzer can reach.
func fzLimits(mode uint8) lineproto.Limits {
	if mode&0x40 == 0 {
		return lineproto.Limits{}
	}
	return lineproto.Limits{MaxLineBytes: 64, MaxPoints: 4, MaxFields: 3, MaxTags: 2, MaxKeyBytes: 8}
}

// fzPrec is the precision a fuzz input's mode selects.
func fzPrec(mode uint8) lineproto.Precision { return lineproto.Precision(mode % 6) }

// fzRoundTrip encodes pts, parses the encoding and checks that it gives
// back pts: point by point, and as one body.
func fzRoundTrip(pts []lineproto.Point, prec lineproto.Precision, now int64) error {
	// Encodings may be longer than what was parsed ("1e5" becomes
	// "100000", "t" becomes "true"), so parse them with room to spare.
	lim := lineproto.Limits{MaxLineBytes: 1 << 30}
	var body []byte
	for i := range pts {
		line, err := lineproto.AppendPoint(nil, &pts[i], prec)
		if err != nil {
			return fmt.Errorf("encoding parsed point %d: %v%s", i, err, fmtPoints(pts[i:i+1]))
		}
		back, err := lineproto.ParseAll(line, prec, now, lim)
		if err != nil {
			return fmt.Errorf("parsing encoded point %d %q: %v", i, line, err)
		}
		if len(back) != 1 || !equalPoint(&back[0], &pts[i]) {
			return fmt.Errorf("point %d changed through %q:\n got  %s\n want %s", i, line, fmtPoints(back), fmtPoints(pts[i:i+1]))
		}
		body = append(body, line...)
	}
	back, err := lineproto.ParseAll(body, prec, now, lim)
	if err != nil {
		return fmt.Errorf("parsing the encoded body: %v", err)
	}
	if len(back) != len(pts) {
		return fmt.Errorf("encoded body of %d points parses to %d", len(pts), len(back))
	}
	for i := range back {
		if !equalPoint(&back[i], &pts[i]) {
			return fmt.Errorf("point %d of the encoded body changed", i)
		}
	}
	return nil
}

// fzCheckPoint checks the documented invariants of a parsed point.
func fzCheckPoint(p *lineproto.Point, lim lineproto.Limits) error {
	lim = withDefaults(lim)
	names := []string{p.Measurement}
	for i, t := range p.Tags {
		if i > 0 && p.Tags[i-1].Key >= t.Key {
			return fmt.Errorf("tags not sorted or repeated: %v", p.Tags)
		}
		names = append(names, t.Key, t.Value)
	}
	if len(p.Tags) > lim.MaxTags {
		return fmt.Errorf("%d tags, limit %d", len(p.Tags), lim.MaxTags)
	}
	if len(p.Fields) == 0 || len(p.Fields) > lim.MaxFields {
		return fmt.Errorf("%d fields, limit %d", len(p.Fields), lim.MaxFields)
	}
	seen := map[string]bool{}
	for _, f := range p.Fields {
		if seen[f.Key] {
			return fmt.Errorf("field %q twice", f.Key)
		}
		seen[f.Key] = true
		names = append(names, f.Key)
		switch f.Kind {
		case lineproto.KindFloat:
			if math.IsNaN(f.Float) || math.IsInf(f.Float, 0) {
				return fmt.Errorf("field %q = %v", f.Key, f.Float)
			}
		case lineproto.KindString:
			if !utf8.ValidString(f.Str) {
				return fmt.Errorf("field %q: invalid UTF-8", f.Key)
			}
		case lineproto.KindInt, lineproto.KindUint, lineproto.KindBool:
		default:
			return fmt.Errorf("field %q of kind %v", f.Key, f.Kind)
		}
	}
	for _, s := range names {
		if s == "" || len(s) > lim.MaxKeyBytes || !utf8.ValidString(s) || strings.HasSuffix(s, `\`) ||
			strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("invalid name %q", s)
		}
	}
	if p.HasTime && (p.Time == math.MinInt64 || p.Time == math.MinInt64+1 || p.Time == math.MaxInt64) {
		return fmt.Errorf("time %d is a sentinel", p.Time)
	}
	return nil
}

func withDefaults(l lineproto.Limits) lineproto.Limits {
	d := lineproto.DefaultLimits()
	for _, f := range []struct{ v, d *int }{
		{&l.MaxLineBytes, &d.MaxLineBytes}, {&l.MaxPoints, &d.MaxPoints}, {&l.MaxFields, &d.MaxFields},
		{&l.MaxTags, &d.MaxTags}, {&l.MaxKeyBytes, &d.MaxKeyBytes},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return l
}

// FuzzParse: parsing arbitrary bytes in any precision, under the default
// or small limits, never panics; it fails only with a *SyntaxError that
// points into the body, having delivered nothing; ParseAll agrees with
// Parse; and what it accepts satisfies the points' invariants and
// re-encodes to a body that parses to the same points.
func FuzzParse(f *testing.F) {
	for i, tc := range validCases {
		f.Add([]byte(tc.body), uint8(tc.prec))
		f.Add([]byte(tc.body), uint8(i%6)|0x40)
	}
	for _, tc := range invalidCases {
		mode := uint8(tc.prec)
		if tc.lim != (lineproto.Limits{}) {
			mode |= 0x40
		}
		f.Add([]byte(tc.body), mode)
	}
	f.Add(benchTelegraf(8), uint8(0))
	f.Add(benchSimple(3), uint8(3))

	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		prec, lim := fzPrec(mode), fzLimits(mode)
		var pts []lineproto.Point
		err := lineproto.Parse(body, prec, testNow, lim, func(p *lineproto.Point) error {
			pts = append(pts, p.Clone())
			return nil
		})
		all, errAll := lineproto.ParseAll(body, prec, testNow, lim)
		if err != nil {
			var se *lineproto.SyntaxError
			if !errors.As(err, &se) || !(errors.Is(err, lineproto.ErrSyntax) || errors.Is(err, lineproto.ErrLimit)) {
				t.Fatalf("error %v (%T) is not a *SyntaxError wrapping ErrSyntax or ErrLimit", err, err)
			}
			if len(pts) > 0 {
				t.Fatalf("%d points delivered before %v", len(pts), err)
			}
			lines := bytes.Split(body, []byte("\n"))
			if se.Line < 1 || se.Line > len(lines) || se.Col < 1 || se.Col > len(lines[se.Line-1])+1 {
				t.Fatalf("error position %d:%d outside the body (%d lines)", se.Line, se.Col, len(lines))
			}
			if errAll == nil || errAll.Error() != err.Error() || all != nil {
				t.Fatalf("ParseAll: %v and %d points; Parse: %v", errAll, len(all), err)
			}
			return
		}
		if errAll != nil || len(all) != len(pts) {
			t.Fatalf("ParseAll: %v and %d points; Parse: %d points", errAll, len(all), len(pts))
		}
		if len(pts) > withDefaults(lim).MaxPoints {
			t.Fatalf("%d points, limit %d", len(pts), withDefaults(lim).MaxPoints)
		}
		for i := range pts {
			if !equalPoint(&pts[i], &all[i]) {
				t.Fatalf("ParseAll point %d differs:%s", i, fmtPoints([]lineproto.Point{pts[i], all[i]}))
			}
			if err := fzCheckPoint(&pts[i], lim); err != nil {
				t.Fatalf("point %d: %v%s", i, err, fmtPoints(pts[i:i+1]))
			}
		}
		if err := fzRoundTrip(pts, prec, testNow); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzRoundTrip: a point built from arbitrary names and values either has
// no line-protocol form (AppendPoint fails with ErrEncode) or parses back
// from its encoding exactly.
func FuzzRoundTrip(f *testing.F) {
	f.Add("cpu", "host", "a", "usage", "ok", 90.5, int64(-3), uint64(7), int64(1700000000000000000), uint8(0))
	f.Add(`my meas,x`, `k=\,`, `v a\`, `f\ x`, "q\"\\", math.Copysign(0, -1), int64(math.MinInt64), uint64(math.MaxUint64), int64(-1), uint8(3))
	f.Add("#c", "", "\n", "é", "\xff", math.Inf(1), int64(0), uint64(0), int64(math.MaxInt64), uint8(1))
	f.Add(`\`, `\\`, `\ `, "=", "", 5e-324, int64(1), uint64(1), int64(60e9), uint8(4))

	f.Fuzz(func(t *testing.T, m, tk, tv, fk, s string, fv float64, iv int64, uv uint64, ts int64, mode uint8) {
		prec := fzPrec(mode)
		p := lineproto.Point{
			Measurement: m,
			Tags:        []lineproto.Tag{{Key: tk, Value: tv}, {Key: tk + "2", Value: tv}},
			Fields: []lineproto.Field{
				lineproto.FloatField(fk, fv), lineproto.IntField(fk+"i", iv), lineproto.UintField(fk+"u", uv),
				lineproto.BoolField(fk+"b", mode&0x80 != 0), lineproto.StringField(fk+"s", s),
			},
			Time:    ts,
			HasTime: mode&0x40 == 0,
		}
		if !p.HasTime {
			p.Time = testNow / int64(prec.Duration()) * int64(prec.Duration())
		}
		line, err := lineproto.AppendPoint(nil, &p, prec)
		if err != nil {
			if !errors.Is(err, lineproto.ErrEncode) {
				t.Fatalf("AppendPoint: %v does not wrap ErrEncode", err)
			}
			return
		}
		back, err := lineproto.ParseAll(line, prec, testNow, lineproto.Limits{MaxLineBytes: 1 << 30, MaxKeyBytes: 1 << 30})
		if err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		if len(back) != 1 || !equalPoint(&back[0], &p) {
			t.Fatalf("%q parses to %s\nwant %s", line, fmtPoints(back), fmtPoints([]lineproto.Point{p}))
		}
	})
}
