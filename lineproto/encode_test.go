package lineproto_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/edged-dev/edged/lineproto"
)

func TestAppendPoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    lineproto.Point
		prec lineproto.Precision
		want string
	}{
		{"simple", pt("cpu", []tg{{"host", "a"}, {"region", "eu"}}, []fl{F("usage_idle", 90.5), F("usage_user", 3.2)}, 1700000000000000000), 0,
			"cpu,host=a,region=eu usage_idle=90.5,usage_user=3.2 1700000000000000000\n"},
		{"no timestamp", ptNow("cpu", nil, F("f", 1)), 0, "cpu f=1\n"},
		{"kinds", pt("m", nil, []fl{F("f", -1e-7), I("i", math.MinInt64), U("u", math.MaxUint64), B("t", true), B("b", false), S("s", "x")}, -5), 0,
			"m f=-1e-07,i=-9223372036854775808i,u=18446744073709551615u,t=true,b=false,s=\"x\" -5\n"},
		{"float forms", ptNow("m", nil, F("a", 1e21), F("b", 123456789), F("c", math.Copysign(0, -1)), F("d", math.MaxFloat64), F("e", 5e-324)), 0,
			"m a=1e+21,b=1.23456789e+08,c=-0,d=1.7976931348623157e+308,e=5e-324\n"},
		{"escapes", ptNow("my meas,x=y", []tg{{"tag key,k=y", "val ue,w=z"}}, F("field k,x=y", 1), S("s", `q"b\s`)), 0,
			`my\ meas\,x=y,tag\ key\,k\=y=val\ ue\,w\=z field\ k\,x\=y=1,s="q\"b\\s"` + "\n"},
		{"backslashes stay", ptNow(`C:\Temp`, []tg{{"p", `a\,b`}}, S(`k\`+"x", "\\")), 0,
			`C:\Temp,p=a\\,b k\x="\\"` + "\n"},
		{"newline in string", ptNow("m", nil, S("s", "a\nb")), 0, "m s=\"a\nb\"\n"},
		{"precision s", pt("m", nil, []fl{I("i", 1)}, 1700000000e9), lineproto.Second, "m i=1i 1700000000\n"},
		{"precision h negative", pt("m", nil, []fl{I("i", 1)}, -7200e9), lineproto.Hour, "m i=1i -2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const prefix = "# appended to\n"
			got, err := lineproto.AppendPoint([]byte(prefix), &tc.p, tc.prec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != prefix+tc.want {
				t.Fatalf("got  %q\nwant %q", got, prefix+tc.want)
			}
			back, err := lineproto.ParseAll(got, tc.prec, testNow, lineproto.Limits{})
			if err != nil || len(back) != 1 {
				t.Fatalf("parsing back: %v, %d points", err, len(back))
			}
			want := tc.p
			slices.SortFunc(want.Tags, func(a, b tg) int { return strings.Compare(a.Key, b.Key) })
			if !equalPoint(&back[0], &want) {
				t.Fatalf("parsed back %s\nwant %s", fmtPoints(back), fmtPoints([]lineproto.Point{want}))
			}
		})
	}
}

func TestAppendPointInvalid(t *testing.T) {
	ok := []fl{F("f", 1)}
	for _, tc := range []struct {
		name string
		p    lineproto.Point
		prec lineproto.Precision
		want string
	}{
		{"empty measurement", pt("", nil, ok, 0), 0, `measurement "": empty`},
		{"comment measurement", pt("#m", nil, ok, 0), 0, `measurement "#m" starts with '#'`},
		{"trailing backslash", pt(`m\`, nil, ok, 0), 0, `measurement "m\\": ends with a backslash`},
		{"control character", pt("m", []tg{{"k", "a\tb"}}, ok, 0), 0, `tag "k" value "a\tb": control character '\t'`},
		{"newline in name", pt("m", nil, []fl{F("a\nb", 1)}, 0), 0, `field key "a\nb": control character '\n'`},
		{"invalid UTF-8", pt("m", []tg{{"k\xff", "v"}}, ok, 0), 0, `tag key "k\xff": invalid UTF-8`},
		{"empty tag value", pt("m", []tg{{"k", ""}}, ok, 0), 0, `tag "k" value "": empty`},
		{"duplicate tag", pt("m", []tg{{"k", "1"}, {"j", "1"}, {"k", "2"}}, ok, 0), 0, `tag key "k" given twice`},
		{"no fields", pt("m", nil, nil, 0), 0, `no fields`},
		{"NaN", pt("m", nil, []fl{F("f", math.NaN())}, 0), 0, `field "f": NaN has no line-protocol form`},
		{"Inf", pt("m", nil, []fl{F("f", math.Inf(-1))}, 0), 0, `field "f": -Inf has no line-protocol form`},
		{"zero kind", pt("m", nil, []fl{{Key: "f"}}, 0), 0, `field "f": invalid kind invalid`},
		{"invalid UTF-8 string", pt("m", nil, []fl{S("s", "\xc3")}, 0), 0, `field "s": invalid UTF-8`},
		{"time not whole", pt("m", nil, ok, 1500), lineproto.Microsecond, `time 1500 is not a whole number of us`},
		{"time sentinel", pt("m", nil, ok, math.MaxInt64), 0, `outside InfluxDB's range`},
		{"time sentinel min", pt("m", nil, ok, math.MinInt64+1), 0, `outside InfluxDB's range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := lineproto.AppendPoint(dst, &tc.p, tc.prec)
			if !errors.Is(err, lineproto.ErrEncode) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrEncode containing %q", err, tc.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed to %q", got)
			}
		})
	}
}

// TestRoundTripCases: every valid case re-encodes to a body that parses to
// the same points.
func TestRoundTripCases(t *testing.T) {
	for _, tc := range validCases {
		pts, err := lineproto.ParseAll([]byte(tc.body), tc.prec, testNow, lineproto.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := fzRoundTrip(pts, tc.prec, testNow); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
