package lineproto_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edged-dev/edged/lineproto"
)

// testNow is the time Parse gives points without timestamp in the tests.
const testNow = 1_700_000_000_123_456_789

type (
	tg = lineproto.Tag
	fl = lineproto.Field
)

var (
	F = lineproto.FloatField
	I = lineproto.IntField
	U = lineproto.UintField
	B = lineproto.BoolField
	S = lineproto.StringField
)

// pt returns a point with a timestamp.
func pt(m string, tags []tg, fields []fl, t int64) lineproto.Point {
	return lineproto.Point{Measurement: m, Tags: tags, Fields: fields, Time: t, HasTime: true}
}

// ptNow returns a point without timestamp, parsed at testNow in ns.
func ptNow(m string, tags []tg, fields ...fl) lineproto.Point {
	return lineproto.Point{Measurement: m, Tags: tags, Fields: fields, Time: testNow}
}

// ptAt returns a point without timestamp, parsed at time t.
func ptAt(m string, t int64, tags []tg, fields ...fl) lineproto.Point {
	return lineproto.Point{Measurement: m, Tags: tags, Fields: fields, Time: t}
}

// equalPoint compares points exactly: floats by their bits (so -0 differs
// from 0), nil and empty slices alike.
func equalPoint(a, b *lineproto.Point) bool {
	return a.Measurement == b.Measurement && a.Time == b.Time && a.HasTime == b.HasTime &&
		slices.Equal(a.Tags, b.Tags) &&
		slices.EqualFunc(a.Fields, b.Fields, func(x, y lineproto.Field) bool {
			return x.Key == y.Key && x.Kind == y.Kind && x.Int == y.Int && x.Uint == y.Uint &&
				x.Bool == y.Bool && x.Str == y.Str && math.Float64bits(x.Float) == math.Float64bits(y.Float)
		})
}

func fmtPoints(pts []lineproto.Point) string {
	var b strings.Builder
	for _, p := range pts {
		fmt.Fprintf(&b, "\n\t%q %v", p.Measurement, p.Tags)
		for _, f := range p.Fields {
			fmt.Fprintf(&b, " %q:%v=", f.Key, f.Kind)
			switch f.Kind {
			case lineproto.KindFloat:
				fmt.Fprintf(&b, "%v(%#x)", f.Float, math.Float64bits(f.Float))
			case lineproto.KindInt:
				fmt.Fprint(&b, f.Int)
			case lineproto.KindUint:
				fmt.Fprint(&b, f.Uint)
			case lineproto.KindBool:
				fmt.Fprint(&b, f.Bool)
			default:
				fmt.Fprintf(&b, "%q", f.Str)
			}
		}
		fmt.Fprintf(&b, " t=%d has=%v", p.Time, p.HasTime)
	}
	return b.String()
}

// parseAll parses body with Parse, collecting clones of the points.
func parseAll(tb testing.TB, body string, prec lineproto.Precision, lim lineproto.Limits) ([]lineproto.Point, error) {
	tb.Helper()
	var pts []lineproto.Point
	err := lineproto.Parse([]byte(body), prec, testNow, lim, func(p *lineproto.Point) error {
		pts = append(pts, p.Clone())
		return nil
	})
	if err != nil && len(pts) > 0 {
		tb.Fatalf("Parse failed with %v after delivering %d points", err, len(pts))
	}
	return pts, err
}

// validCases are bodies Parse accepts, with the points they hold (parsed
// in ns unless prec says otherwise). FuzzParse starts from them too.
var validCases = []struct {
	name string
	body string
	prec lineproto.Precision
	want []lineproto.Point
}{
	{"simple", "cpu,host=a,region=eu usage_idle=90.5,usage_user=3.2 1700000000000000000\n", 0, []lineproto.Point{
		pt("cpu", []tg{{"host", "a"}, {"region", "eu"}}, []fl{F("usage_idle", 90.5), F("usage_user", 3.2)}, 1700000000000000000),
	}},
	{"no tags no timestamp", "cpu value=1", 0, []lineproto.Point{ptNow("cpu", nil, F("value", 1))}},
	{"tags sorted by key", "cpu,zone=z,host=h,az=1 v=1i 1", 0, []lineproto.Point{
		pt("cpu", []tg{{"az", "1"}, {"host", "h"}, {"zone", "z"}}, []fl{I("v", 1)}, 1),
	}},
	{"field kinds", `m f=1.5,i=-3i,u=18446744073709551615u,b=t,s="x" 0`, 0, []lineproto.Point{
		pt("m", nil, []fl{F("f", 1.5), I("i", -3), U("u", math.MaxUint64), B("b", true), S("s", "x")}, 0),
	}},
	{"floats", "m a=1,b=-1e3,c=.5,d=5.,e=1E+2,f=-0,g=1e-400,h=0.1,i=123456789012345678901234567890,j=1.7976931348623157e308,k=4.9e-324,l=-0.000001e-3,n=00.50", 0, []lineproto.Point{
		ptNow("m", nil, F("a", 1), F("b", -1e3), F("c", .5), F("d", 5), F("e", 100), F("f", math.Copysign(0, -1)), F("g", 0),
			F("h", 0.1), F("i", 123456789012345678901234567890), F("j", math.MaxFloat64), F("k", 5e-324), F("l", -1e-9), F("n", 0.5)),
	}},
	{"integer extremes", "m a=-9223372036854775808i,b=9223372036854775807i,c=0u,d=007i,e=-0i,f=00000000000000000000001u", 0, []lineproto.Point{
		ptNow("m", nil, I("a", math.MinInt64), I("b", math.MaxInt64), U("c", 0), I("d", 7), I("e", 0), U("f", 1)),
	}},
	{"booleans", "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE", 0, []lineproto.Point{
		ptNow("m", nil, B("a", true), B("b", true), B("c", true), B("d", true), B("e", true),
			B("f", false), B("g", false), B("h", false), B("i", false), B("j", false)),
	}},
	{"string escapes", `m a="q\"q",b="b\\s",c="lit\eral",d="",e="x,y=z w",f="end\\",g="\\\"",h="🌡 21°C"`, 0, []lineproto.Point{
		ptNow("m", nil, S("a", `q"q`), S("b", `b\s`), S("c", `lit\eral`), S("d", ""), S("e", "x,y=z w"), S("f", `end\`), S("g", `\"`), S("h", "🌡 21°C")),
	}},
	{"string with newlines", "m s=\"line 1\nline 2\r\nline 3\" 5\nm s=\"#not a comment\n\" 6", 0, []lineproto.Point{
		pt("m", nil, []fl{S("s", "line 1\nline 2\r\nline 3")}, 5),
		pt("m", nil, []fl{S("s", "#not a comment\n")}, 6),
	}},
	{"name escapes", `my\ meas\,x,tag\ key\,k\=y=val\ ue\,w\=z field\ k\,x\=y=1 5`, 0, []lineproto.Point{
		pt("my meas,x", []tg{{"tag key,k=y", "val ue,w=z"}}, []fl{F("field k,x=y", 1)}, 5),
	}},
	{"literal backslashes", `C:\Temp,path=C:\Windows\System32,share=\\srv\x v\a\l\=ue="C:\\Temp"`, 0, []lineproto.Point{
		ptNow(`C:\Temp`, []tg{{"path", `C:\Windows\System32`}, {"share", `\\srv\x`}}, S(`v\a\l=ue`, `C:\Temp`)),
	}},
	{"backslash before an escaped separator", `m,t=a\\,b\\\ c f\\\==1`, 0, []lineproto.Point{
		ptNow("m", []tg{{"t", `a\,b\\ c`}}, F(`f\\=`, 1)),
	}},
	{"measurement keeps equals and quotes", `a=b,"t"=x "f"=1`, 0, []lineproto.Point{
		ptNow("a=b", []tg{{`"t"`, "x"}}, F(`"f"`, 1)),
	}},
	{"UTF-8 names", "温度,城市=東京 値=21.5,ünïcødé=\"ok\"", 0, []lineproto.Point{
		ptNow("温度", []tg{{"城市", "東京"}}, F("値", 21.5), S("ünïcødé", "ok")),
	}},
	{"comments blank lines CRLF leading blanks", "# comment\n\n   \n\t \tcpu f=1\r\n\r\n  # indented comment\r\ncpu f=2\r\n#last", 0, []lineproto.Point{
		ptNow("cpu", nil, F("f", 1)), ptNow("cpu", nil, F("f", 2)),
	}},
	{"runs of spaces between sections", "cpu,a=b   f=1   5   \ncpu f=2   \ncpu  f=3", 0, []lineproto.Point{
		pt("cpu", []tg{{"a", "b"}}, []fl{F("f", 1)}, 5), ptNow("cpu", nil, F("f", 2)), ptNow("cpu", nil, F("f", 3)),
	}},
	{"CR at the end of the body", "cpu f=1\r", 0, []lineproto.Point{ptNow("cpu", nil, F("f", 1))}},
	{"duplicate fields: last wins", "cpu a=1,b=2,a=3i,c=\"x\",b=true", 0, []lineproto.Point{
		ptNow("cpu", nil, I("a", 3), S("c", "x"), B("b", true)),
	}},
	{"negative timestamps", "cpu f=1 -1000\ncpu f=1 -9223372036854775806\ncpu f=1 9223372036854775806\ncpu f=1 -0\ncpu f=1 0001", 0, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, -1000),
		pt("cpu", nil, []fl{F("f", 1)}, -9223372036854775806),
		pt("cpu", nil, []fl{F("f", 1)}, 9223372036854775806),
		pt("cpu", nil, []fl{F("f", 1)}, 0),
		pt("cpu", nil, []fl{F("f", 1)}, 1),
	}},
	{"precision us", "cpu f=1 1700000000123456\ncpu f=2", lineproto.Microsecond, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, 1700000000123456000), ptAt("cpu", 1_700_000_000_123_456_000, nil, F("f", 2)),
	}},
	{"precision ms", "cpu f=1 1700000000123\ncpu f=2", lineproto.Millisecond, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, 1700000000123000000), ptAt("cpu", 1_700_000_000_123_000_000, nil, F("f", 2)),
	}},
	{"precision s", "cpu f=1 1700000000\ncpu f=1 -1\ncpu f=2", lineproto.Second, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, 1700000000e9), pt("cpu", nil, []fl{F("f", 1)}, -1e9),
		ptAt("cpu", 1_700_000_000_000_000_000, nil, F("f", 2)),
	}},
	{"precision m", "cpu f=1 28333333", lineproto.Minute, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, 28333333*60e9),
	}},
	{"precision h", "cpu f=1 472222\ncpu f=1 -2562047", lineproto.Hour, []lineproto.Point{
		pt("cpu", nil, []fl{F("f", 1)}, 472222*3600e9), pt("cpu", nil, []fl{F("f", 1)}, -2562047*3600e9),
	}},
	{"empty body", "", 0, nil},
	{"only comments and blanks", "# a\n\n#b\r\n   \n\t\n", 0, nil},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAll(t, tc.body, tc.prec, lineproto.Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.EqualFunc(got, tc.want, func(a, b lineproto.Point) bool { return equalPoint(&a, &b) }) {
				t.Fatalf("got %s\nwant %s", fmtPoints(got), fmtPoints(tc.want))
			}
			all, err := lineproto.ParseAll([]byte(tc.body), tc.prec, testNow, lineproto.Limits{})
			if err != nil {
				t.Fatalf("ParseAll: %v", err)
			}
			if !slices.EqualFunc(all, tc.want, func(a, b lineproto.Point) bool { return equalPoint(&a, &b) }) {
				t.Fatalf("ParseAll got %s\nwant %s", fmtPoints(all), fmtPoints(tc.want))
			}
		})
	}
}

// invalidCases are bodies Parse rejects, with the error it returns. The
// body is parsed in ns with DefaultLimits unless the case says otherwise.
var invalidCases = []struct {
	name string
	body string
	prec lineproto.Precision
	lim  lineproto.Limits
	err  error  // ErrSyntax or ErrLimit
	msg  string // the whole Error()
	col  int
}{
	// Numbers.
	{name: "float with two dots", body: "cpu f=1\ncpu f=2\ncpu usage=1.2.3", msg: `line 3: field "usage" value: invalid number "1.2.3"`, col: 11},
	{name: "NaN", body: "cpu f=NaN", msg: `line 1: field "f" value: invalid value "NaN" (strings need double quotes)`, col: 7},
	{name: "nan", body: "cpu f=nan", msg: `line 1: field "f" value: invalid value "nan" (strings need double quotes)`, col: 7},
	{name: "inf", body: "cpu f=inf", msg: `line 1: field "f" value: invalid value "inf" (strings need double quotes)`, col: 7},
	{name: "minus inf", body: "cpu f=-inf", msg: `line 1: field "f" value: invalid number "-inf"`, col: 7},
	{name: "minus Infinity", body: "cpu f=-Infinity", msg: `line 1: field "f" value: invalid number "-Infinity"`, col: 7},
	{name: "plus sign", body: "cpu f=+1", msg: `line 1: field "f" value: invalid value "+1" (strings need double quotes)`, col: 7},
	{name: "hex float", body: "cpu f=0x1p3", msg: `line 1: field "f" value: invalid number "0x1p3"`, col: 7},
	{name: "digit separator", body: "cpu f=1_000", msg: `line 1: field "f" value: invalid number "1_000"`, col: 7},
	{name: "exponent without digits", body: "cpu f=1e", msg: `line 1: field "f" value: invalid number "1e"`, col: 7},
	{name: "exponent sign without digits", body: "cpu f=1e+ 5", msg: `line 1: field "f" value: invalid number "1e+"`, col: 7},
	{name: "lone dot", body: "cpu f=.", msg: `line 1: field "f" value: invalid number "."`, col: 7},
	{name: "lone minus", body: "cpu f=-", msg: `line 1: field "f" value: invalid number "-"`, col: 7},
	{name: "float out of range", body: "cpu f=1e309", msg: `line 1: field "f" value: number out of range "1e309"`, col: 7},
	{name: "negative float out of range", body: "cpu f=-1.8e308", msg: `line 1: field "f" value: number out of range "-1.8e308"`, col: 7},
	{name: "trailing letters", body: "cpu f=1x", msg: `line 1: field "f" value: invalid number "1x"`, col: 7},
	{name: "integer out of range", body: "cpu f=9223372036854775808i", msg: `line 1: field "f" value: integer out of range "9223372036854775808i"`, col: 7},
	{name: "negative integer out of range", body: "cpu f=-9223372036854775809i", msg: `line 1: field "f" value: integer out of range "-9223372036854775809i"`, col: 7},
	{name: "integer with 20 digits", body: "cpu f=10000000000000000000i", msg: `line 1: field "f" value: integer out of range "10000000000000000000i"`, col: 7},
	{name: "integer with a fraction", body: "cpu f=1.5i", msg: `line 1: field "f" value: invalid integer "1.5i"`, col: 7},
	{name: "integer with an exponent", body: "cpu f=1e3i", msg: `line 1: field "f" value: invalid integer "1e3i"`, col: 7},
	{name: "integer without digits", body: "cpu f=-i", msg: `line 1: field "f" value: invalid integer "-i"`, col: 7},
	{name: "integer with two suffixes", body: "cpu f=1ii", msg: `line 1: field "f" value: invalid integer "1ii"`, col: 7},
	{name: "unsigned out of range", body: "cpu f=18446744073709551616u", msg: `line 1: field "f" value: unsigned integer out of range "18446744073709551616u"`, col: 7},
	{name: "unsigned with 21 digits", body: "cpu f=100000000000000000000u", msg: `line 1: field "f" value: unsigned integer out of range "100000000000000000000u"`, col: 7},
	{name: "negative unsigned", body: "cpu f=-1u", msg: `line 1: field "f" value: invalid unsigned integer "-1u"`, col: 7},
	{name: "bad boolean", body: "cpu f=tru", msg: `line 1: field "f" value: invalid boolean "tru"`, col: 7},
	{name: "mixed case boolean", body: "cpu f=tRUE", msg: `line 1: field "f" value: invalid boolean "tRUE"`, col: 7},
	{name: "bare word", body: "cpu f=hello", msg: `line 1: field "f" value: invalid value "hello" (strings need double quotes)`, col: 7},
	{name: "single quotes", body: "cpu f='a'", msg: `line 1: field "f" value: invalid value "'a'" (strings need double quotes)`, col: 7},

	// Strings.
	{name: "unterminated string", body: "cpu g=1,f=\"abc 5\ncpu f=1", msg: `line 1: field "f" value: missing closing quote`, col: 11},
	{name: "escaped closing quote", body: `cpu f="a\"`, msg: `line 1: field "f" value: missing closing quote`, col: 7},
	{name: "text after closing quote", body: `cpu f="a"b`, msg: `line 1: field "f" value: unexpected 'b' after the closing quote`, col: 10},
	{name: "invalid UTF-8 in string", body: "cpu f=\"ok\xff\"", msg: `line 1: field "f" value: invalid UTF-8`, col: 10},
	{name: "multi-line string then bad timestamp", body: "cpu s=\"a\nb\nc\" x\n", msg: `line 3: timestamp: invalid "x"`, col: 4},

	// Names and structure.
	{name: "empty measurement", body: ",t=a f=1", msg: `line 1: measurement: empty`, col: 1},
	{name: "empty tag key", body: "cpu,=a f=1", msg: `line 1: tag key: empty`, col: 5},
	{name: "comma then space", body: "cpu, f=1", msg: `line 1: tag key: empty`, col: 5},
	{name: "tag without equals", body: "cpu,t f=1", msg: `line 1: tag key "t": missing '='`, col: 6},
	{name: "empty tag value", body: "cpu,t= f=1", msg: `line 1: tag "t" value: empty`, col: 7},
	{name: "equals in tag value", body: "cpu,t=a=b f=1", msg: `line 1: tag "t" value: unescaped '='`, col: 8},
	{name: "double backslash does not escape", body: `cpu,t=a\\,b=c f=1`, msg: `line 1: tag "t" value: unescaped '='`, col: 12},
	{name: "duplicate tag", body: "cpu,a=1,b=2,a=3 f=1", msg: `line 1: tag key "a": duplicate`, col: 13},
	{name: "duplicate tag among many", body: "cpu,n=1,m=1,l=1,k=1,j=1,i=1,h=1,g=1,f=1,e=1,d=1,c=1,b=1,a=1,g=2 f=1", msg: `line 1: tag key "g": duplicate`, col: 61},
	{name: "measurement only", body: "cpu", msg: `line 1: missing fields`, col: 4},
	{name: "measurement and space", body: "cpu  \n", msg: `line 1: missing fields`, col: 6},
	{name: "tags only", body: "cpu f=1\ncpu,t=a\ncpu f=1", msg: `line 2: missing fields`, col: 8},
	{name: "field without equals", body: "cpu f", msg: `line 1: field key "f": missing '='`, col: 6},
	{name: "field without equals before time", body: "cpu f 5", msg: `line 1: field key "f": missing '='`, col: 6},
	{name: "empty field key", body: "cpu =1", msg: `line 1: field key: empty`, col: 5},
	{name: "missing field value", body: "cpu f=", msg: `line 1: field "f" value: missing`, col: 7},
	{name: "missing field value before comma", body: "cpu f=,g=1", msg: `line 1: field "f" value: missing`, col: 7},
	{name: "trailing comma", body: "cpu f=1,", msg: `line 1: field key: empty`, col: 9},
	{name: "trailing comma and space", body: "cpu f=1, 5", msg: `line 1: field key: empty`, col: 9},
	{name: "text after timestamp", body: "cpu f=1 123 x", msg: `line 1: unexpected 'x' after the timestamp`, col: 13},
	{name: "bad timestamp", body: "cpu f=1 12a", msg: `line 1: timestamp: invalid "12a"`, col: 9},
	{name: "float timestamp", body: "cpu f=1 1.5", msg: `line 1: timestamp: invalid "1.5"`, col: 9},
	{name: "lone minus timestamp", body: "cpu f=1 -", msg: `line 1: timestamp: invalid "-"`, col: 9},
	{name: "control character in measurement", body: "c\x01pu f=1", msg: `line 1: measurement: invalid character '\x01'`, col: 2},
	{name: "tab in tag value", body: "cpu,t=a\tb f=1", msg: `line 1: tag "t" value: invalid character '\t'`, col: 8},
	{name: "DEL in field key", body: "cpu f\x7f=1", msg: `line 1: field key: invalid character '\x7f'`, col: 6},
	{name: "lone CR in measurement", body: "cp\ru f=1", msg: `line 1: measurement: invalid character '\r'`, col: 3},
	{name: "lone CR after value", body: "cpu f=1\rx", msg: `line 1: field "f" value: invalid character '\r'`, col: 8},
	{name: "lone CR after timestamp", body: "cpu f=1 5\rx", msg: `line 1: unexpected '\r' after the timestamp`, col: 10},
	{name: "lone CR at line start", body: "\rcpu f=1", msg: `line 1: measurement: invalid character '\r'`, col: 1},
	{name: "invalid UTF-8 in measurement", body: "cpu\xff f=1", msg: `line 1: measurement: invalid UTF-8`, col: 4},
	{name: "invalid UTF-8 in tag value", body: "cpu,t=é\xfe f=1", msg: `line 1: tag "t" value: invalid UTF-8`, col: 9},
	{name: "truncated UTF-8 in field key", body: "cpu f\xc3=1", msg: `line 1: field key: invalid UTF-8`, col: 6},

	// Timestamps.
	{name: "timestamp MaxInt64", body: "cpu f=1 9223372036854775807", msg: `line 1: timestamp: out of range "9223372036854775807" (in ns)`, col: 9},
	{name: "timestamp MinInt64", body: "cpu f=1 -9223372036854775808", msg: `line 1: timestamp: out of range "-9223372036854775808" (in ns)`, col: 9},
	{name: "timestamp MinInt64+1", body: "cpu f=1 -9223372036854775807", msg: `line 1: timestamp: out of range "-9223372036854775807" (in ns)`, col: 9},
	{name: "timestamp beyond int64", body: "cpu f=1 9223372036854775808", msg: `line 1: timestamp: out of range "9223372036854775808"`, col: 9},
	{name: "timestamp of 20 digits", body: "cpu f=1 99999999999999999999", msg: `line 1: timestamp: out of range "99999999999999999999"`, col: 9},
	{name: "timestamp in s overflows ns", prec: lineproto.Second, body: "cpu f=1 9223372037", msg: `line 1: timestamp: out of range "9223372037" (in s)`, col: 9},
	{name: "negative timestamp in s overflows ns", prec: lineproto.Second, body: "cpu f=1 -9223372037", msg: `line 1: timestamp: out of range "-9223372037" (in s)`, col: 9},
	{name: "timestamp in h overflows ns", prec: lineproto.Hour, body: "cpu f=1 2562048", msg: `line 1: timestamp: out of range "2562048" (in h)`, col: 9},
	{name: "timestamp in us overflows ns", prec: lineproto.Microsecond, body: "cpu f=1 9223372036854776", msg: `line 1: timestamp: out of range "9223372036854776" (in us)`, col: 9},

	// Limits.
	{name: "MaxLineBytes", lim: lineproto.Limits{MaxLineBytes: 10}, body: "cpu f=1234\ncpu f=12345", err: lineproto.ErrLimit,
		msg: `line 2: line longer than MaxLineBytes (10 bytes)`, col: 11},
	{name: "MaxLineBytes counts leading blanks", lim: lineproto.Limits{MaxLineBytes: 10}, body: "  cpu f=123", err: lineproto.ErrLimit,
		msg: `line 1: line longer than MaxLineBytes (10 bytes)`, col: 11},
	{name: "MaxLineBytes counts string newlines", lim: lineproto.Limits{MaxLineBytes: 10}, body: "cpu f=\"\n\n\n\"", err: lineproto.ErrLimit,
		msg: `line 4: line longer than MaxLineBytes (10 bytes)`, col: 1},
	{name: "MaxPoints", lim: lineproto.Limits{MaxPoints: 2}, body: "# c\ncpu f=1\ncpu f=2\n\ncpu f=3", err: lineproto.ErrLimit,
		msg: `line 5: more than MaxPoints (2) points in the body`, col: 1},
	{name: "MaxFields", lim: lineproto.Limits{MaxFields: 2}, body: "cpu a=1,b=2\ncpu a=1,a=2,a=3", err: lineproto.ErrLimit,
		msg: `line 2: more than MaxFields (2) fields`, col: 13},
	{name: "MaxTags", lim: lineproto.Limits{MaxTags: 1}, body: "cpu,a=1 f=1\ncpu,a=1,b=2 f=1", err: lineproto.ErrLimit,
		msg: `line 2: more than MaxTags (1) tags`, col: 9},
	{name: "MaxKeyBytes measurement", lim: lineproto.Limits{MaxKeyBytes: 3}, body: "cpu f=1\nmem1 f=1", err: lineproto.ErrLimit,
		msg: `line 2: measurement: 4 bytes, more than MaxKeyBytes (3)`, col: 1},
	{name: "MaxKeyBytes tag key", lim: lineproto.Limits{MaxKeyBytes: 3}, body: "cpu,host=a f=1", err: lineproto.ErrLimit,
		msg: `line 1: tag key: 4 bytes, more than MaxKeyBytes (3)`, col: 5},
	{name: "MaxKeyBytes tag value", lim: lineproto.Limits{MaxKeyBytes: 3}, body: `cpu,h=a\ b\ c f=1`, err: lineproto.ErrLimit,
		msg: `line 1: tag "h" value: 5 bytes, more than MaxKeyBytes (3)`, col: 7},
	{name: "MaxKeyBytes field key", lim: lineproto.Limits{MaxKeyBytes: 3}, body: "cpu,h=a\\ b abcd=1", err: lineproto.ErrLimit,
		msg: `line 1: field key: 4 bytes, more than MaxKeyBytes (3)`, col: 12},
	{name: "MaxKeyBytes counts UTF-8 bytes", lim: lineproto.Limits{MaxKeyBytes: 3}, body: "温度 f=1", err: lineproto.ErrLimit,
		msg: `line 1: measurement: 6 bytes, more than MaxKeyBytes (3)`, col: 1},
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := parseAll(t, tc.body, tc.prec, tc.lim)
			if err == nil {
				t.Fatalf("Parse accepted %q: %s", tc.body, fmtPoints(pts))
			}
			var se *lineproto.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SyntaxError", err, err)
			}
			want := tc.err
			if want == nil {
				want = lineproto.ErrSyntax
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
			if se.Error() != tc.msg {
				t.Errorf("error\n got  %s\n want %s", se.Error(), tc.msg)
			}
			if wantLine, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(tc.msg, ":", 2)[0], "line ")); se.Line != wantLine {
				t.Errorf("Line = %d, want %d", se.Line, wantLine)
			}
			if se.Col != tc.col {
				t.Errorf("Col = %d, want %d", se.Col, tc.col)
			}
			if _, err := lineproto.ParseAll([]byte(tc.body), tc.prec, testNow, tc.lim); err == nil || err.Error() != se.Error() {
				t.Errorf("ParseAll error %v, Parse error %v", err, se)
			}
		})
	}
}

// TestLimitsBoundary: a body exactly at each limit passes.
func TestLimitsBoundary(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  lineproto.Limits
		body string
	}{
		{"MaxLineBytes", lineproto.Limits{MaxLineBytes: 10}, "cpu f=1234\r\n  # a comment longer than the limit\n"},
		{"MaxPoints", lineproto.Limits{MaxPoints: 2}, "cpu f=1\n# c\ncpu f=2\n\n"},
		{"MaxFields", lineproto.Limits{MaxFields: 2}, "cpu a=1,b=2\ncpu a=1,a=2"},
		{"MaxTags", lineproto.Limits{MaxTags: 2}, "cpu,a=1,b=2 f=1"},
		{"MaxKeyBytes", lineproto.Limits{MaxKeyBytes: 3}, `cp\ ,a\,b=c\=d \ \ \ =1`},
		{"MaxKeyBytes UTF-8", lineproto.Limits{MaxKeyBytes: 3}, "é,t=€ f=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseAll(t, tc.body, 0, tc.lim); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	got := lineproto.DefaultLimits()
	want := lineproto.Limits{MaxLineBytes: 65536, MaxPoints: 100_000, MaxFields: 256, MaxTags: 64, MaxKeyBytes: 256}
	if got != want {
		t.Fatalf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	// A line at the default MaxLineBytes passes and one byte more fails.
	line := "cpu s=\"" + strings.Repeat("x", 65536-8) + "\""
	if _, err := parseAll(t, line, 0, lineproto.Limits{}); err != nil {
		t.Fatalf("line of 64 KiB: %v", err)
	}
	if _, err := parseAll(t, line+" ", 0, lineproto.Limits{}); !errors.Is(err, lineproto.ErrLimit) {
		t.Fatalf("line of 64 KiB + 1: err = %v, want ErrLimit", err)
	}
	// 257 fields fail, 256 pass.
	var b strings.Builder
	b.WriteString("m ")
	for i := range 257 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "f%d=1", i)
	}
	if _, err := parseAll(t, b.String(), 0, lineproto.Limits{}); err == nil || !strings.Contains(err.Error(), "MaxFields (256)") {
		t.Fatalf("257 fields: err = %v, want MaxFields", err)
	}
	if _, err := parseAll(t, b.String()[:strings.LastIndexByte(b.String(), ',')], 0, lineproto.Limits{}); err != nil {
		t.Fatalf("256 fields: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	lim := lineproto.Limits{MaxTags: -1}
	err := lim.Validate()
	if err == nil || !strings.Contains(err.Error(), "Limits.MaxTags is -1") {
		t.Fatalf("Validate() = %v, want an error naming MaxTags", err)
	}
	called := false
	err2 := lineproto.Parse([]byte("cpu f=1"), 0, 0, lim, func(*lineproto.Point) error { called = true; return nil })
	var se *lineproto.SyntaxError
	if err2 == nil || errors.As(err2, &se) || called {
		t.Fatalf("Parse with invalid limits: err = %v, called = %v; want a plain error and no call", err2, called)
	}
}

// TestParseAllOrNothing: one bad line anywhere rejects the whole body
// before any point is delivered.
func TestParseAllOrNothing(t *testing.T) {
	good := strings.Repeat("cpu,host=a f=1 1\n", 1000)
	for _, body := range []string{
		"cpu f=x\n" + good,
		good + "cpu f=x\n",
		good + "cpu f=x\n" + good,
		good + "cpu,a=1,a=2 f=1\n",
		good + "cpu f=1 99999999999999999999\n",
	} {
		calls := 0
		err := lineproto.Parse([]byte(body), 0, testNow, lineproto.Limits{}, func(*lineproto.Point) error {
			calls++
			return nil
		})
		if err == nil || calls != 0 {
			t.Errorf("err = %v after %d calls, want an error and no call", err, calls)
		}
	}
	calls := 0
	err := lineproto.Parse([]byte(good), 0, testNow, lineproto.Limits{MaxPoints: 999}, func(*lineproto.Point) error {
		calls++
		return nil
	})
	if !errors.Is(err, lineproto.ErrLimit) || calls != 0 {
		t.Errorf("MaxPoints: err = %v after %d calls, want ErrLimit and no call", err, calls)
	}
}

// TestParseCallbackError: an error from fn stops Parse and comes back
// unchanged.
func TestParseCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := lineproto.Parse([]byte("a f=1\nb f=2\nc f=3\n"), 0, testNow, lineproto.Limits{}, func(p *lineproto.Point) error {
		calls++
		if p.Measurement == "b" {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("err = %v after %d calls, want stop after 2", err, calls)
	}
}

// TestParseNilCallback: a nil fn validates only.
func TestParseNilCallback(t *testing.T) {
	if err := lineproto.Parse([]byte("cpu f=1\n"), 0, testNow, lineproto.Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := lineproto.Parse([]byte("cpu f=x\n"), 0, testNow, lineproto.Limits{}, nil); !errors.Is(err, lineproto.ErrSyntax) {
		t.Fatalf("err = %v, want ErrSyntax", err)
	}
}

// TestParsePointReuse: the point, tags and fields handed to fn are reused,
// which is why fn must clone what it keeps; the strings stay valid.
func TestParsePointReuse(t *testing.T) {
	var first *lineproto.Point
	var kept []lineproto.Point
	var names []string
	err := lineproto.Parse([]byte("a,t=1 f=1,g=\"s1\"\nb,t=2 f=2,g=\"s2\"\n"), 0, testNow, lineproto.Limits{}, func(p *lineproto.Point) error {
		if first == nil {
			first = p
		} else if p != first {
			t.Errorf("a new *Point for the second line")
		}
		kept = append(kept, p.Clone())
		names = append(names, p.Measurement, p.Tags[0].Value, p.Fields[1].Str)
		p.Fields[0].Float = 99 // fn may modify the point
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kept[0].Measurement != "a" || kept[0].Fields[0].Float != 1 || kept[1].Fields[0].Float != 2 {
		t.Fatalf("clones changed: %s", fmtPoints(kept))
	}
	if want := []string{"a", "1", "s1", "b", "2", "s2"}; !slices.Equal(names, want) {
		t.Fatalf("kept strings %q, want %q", names, want)
	}
}

func TestParsePrecisionErrors(t *testing.T) {
	err := lineproto.Parse([]byte("cpu f=1"), lineproto.Precision(42), 0, lineproto.Limits{}, nil)
	if !errors.Is(err, lineproto.ErrPrecision) {
		t.Fatalf("Parse with Precision(42): %v, want ErrPrecision", err)
	}
	if _, err := lineproto.AppendPoint(nil, &lineproto.Point{Measurement: "m", Fields: []fl{F("f", 1)}}, 42); !errors.Is(err, lineproto.ErrPrecision) {
		t.Fatalf("AppendPoint with Precision(42): %v, want ErrPrecision", err)
	}
}

func TestParsePrecision(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want lineproto.Precision
		unit int64
	}{
		{"", lineproto.Nanosecond, 1}, {"ns", lineproto.Nanosecond, 1}, {"n", lineproto.Nanosecond, 1},
		{"us", lineproto.Microsecond, 1e3}, {"u", lineproto.Microsecond, 1e3},
		{"ms", lineproto.Millisecond, 1e6}, {"s", lineproto.Second, 1e9},
		{"m", lineproto.Minute, 60e9}, {"h", lineproto.Hour, 3600e9},
	} {
		got, err := lineproto.ParsePrecision(tc.in)
		if err != nil || got != tc.want || int64(got.Duration()) != tc.unit {
			t.Errorf("ParsePrecision(%q) = %v (%v), %v; want %v (%dns)", tc.in, got, got.Duration(), err, tc.want, tc.unit)
		}
		if back, err := lineproto.ParsePrecision(got.String()); err != nil || back != got {
			t.Errorf("ParsePrecision(%v.String()) = %v, %v", got, back, err)
		}
	}
	for _, in := range []string{"NS", "sec", "d", "µs", " s", "1s"} {
		_, err := lineproto.ParsePrecision(in)
		if !errors.Is(err, lineproto.ErrPrecision) || !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("ParsePrecision(%q) error %v, want ErrPrecision naming the value", in, err)
		}
	}
}

// TestNowTruncated: points without timestamp get now truncated to the
// precision, towards the past.
func TestNowTruncated(t *testing.T) {
	for _, tc := range []struct {
		prec      lineproto.Precision
		now, want int64
	}{
		{lineproto.Nanosecond, 1_234_567_891, 1_234_567_891},
		{lineproto.Microsecond, 1_234_567_891, 1_234_567_000},
		{lineproto.Second, 1_234_567_891, 1_000_000_000},
		{lineproto.Hour, 7_300e9, 3_600e9 * 2},
		{lineproto.Second, -1, -1e9},
		{lineproto.Second, -1e9, -1e9},
	} {
		pts, err := lineproto.ParseAll([]byte("m f=1"), tc.prec, tc.now, lineproto.Limits{})
		if err != nil || pts[0].Time != tc.want || pts[0].HasTime {
			t.Errorf("%v now %d: %s, %v; want time %d", tc.prec, tc.now, fmtPoints(pts), err, tc.want)
		}
	}
}

// TestParseNoAllocs: a Parser reused over bodies of repetitive lines
// allocates nothing per body once its buffers and intern table are warm.
func TestParseNoAllocs(t *testing.T) {
	body := benchTelegraf(200)
	var ps lineproto.Parser
	n := 0
	fn := func(*lineproto.Point) error { n++; return nil }
	parse := func() {
		if err := ps.Parse(body, lineproto.Nanosecond, benchNow, lineproto.Limits{}, fn); err != nil {
			t.Fatal(err)
		}
	}
	parse()
	if allocs := testing.AllocsPerRun(20, parse); allocs != 0 {
		t.Fatalf("%v allocations per body of 200 lines, want 0", allocs)
	}
	if n != 22*200 { // AllocsPerRun runs once more to warm up
		t.Fatalf("%d points delivered, want %d", n, 22*200)
	}
}

// TestParseManyFieldsAndTags: the paths for wide lines (sorting many tags,
// deduplicating many fields).
func TestParseManyFieldsAndTags(t *testing.T) {
	var b strings.Builder
	b.WriteString("m")
	var wantTags []tg
	for i := 40; i > 0; i-- {
		fmt.Fprintf(&b, ",t%02d=v%d", i, i)
	}
	for i := 1; i <= 40; i++ {
		wantTags = append(wantTags, tg{fmt.Sprintf("t%02d", i), fmt.Sprintf("v%d", i)})
	}
	b.WriteString(" ")
	var wantFields []fl
	for i := range 60 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "f%d=%di", i%25, i)
		if i >= 35 {
			wantFields = append(wantFields, I(fmt.Sprintf("f%d", i%25), int64(i)))
		}
	}
	got, err := parseAll(t, b.String(), 0, lineproto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := ptNow("m", wantTags, wantFields...)
	if len(got) != 1 || !equalPoint(&got[0], &want) {
		t.Fatalf("got %s\nwant %s", fmtPoints(got), fmtPoints([]lineproto.Point{want}))
	}
}

// TestParseFloatExact: the parser's own float conversion agrees bit for bit
// with strconv.ParseFloat over random decimal numbers, both in and outside
// its fast path.
func TestParseFloatExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	}
	var body strings.Builder
	var want []float64
	for i := range 20000 {
		var s string
		switch i % 4 {
		case 0: // short decimals, the fast path
			s = digits(1+r.IntN(6)) + "." + digits(r.IntN(6))
		case 1: // long mantissas
			s = digits(1+r.IntN(25)) + "." + digits(r.IntN(25))
		case 2: // exponents
			s = digits(1+r.IntN(17)) + "e" + strconv.Itoa(r.IntN(700)-350)
		default: // around the fast path's bounds
			s = "." + digits(1+r.IntN(20)) + "E" + strconv.Itoa(r.IntN(50)-25)
		}
		if r.IntN(2) == 0 {
			s = "-" + s
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		want = append(want, v)
		fmt.Fprintf(&body, "m f=%s\n", s)
	}
	pts, err := lineproto.ParseAll([]byte(body.String()), 0, 0, lineproto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(body.String(), "\n")
	for i, p := range pts {
		if got := p.Fields[0].Float; math.Float64bits(got) != math.Float64bits(want[i]) {
			t.Errorf("%s: got %v, strconv %v", lines[i], got, want[i])
		}
	}
}

// TestParseIntExact: integers and timestamps agree with strconv over random
// values of every length.
func TestParseIntExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		i := int64(r.Uint64() >> r.IntN(64))
		if r.IntN(2) == 0 {
			i = -i
		}
		u := r.Uint64() >> r.IntN(64)
		ts := max(i, -9223372036854775806)
		line := fmt.Sprintf("m i=%di,u=%du %d", i, u, ts)
		pts, err := lineproto.ParseAll([]byte(line), 0, 0, lineproto.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if f := pts[0].Fields; f[0].Int != i || f[1].Uint != u || pts[0].Time != ts {
			t.Fatalf("%s: got %s", line, fmtPoints(pts))
		}
	}
}

func TestFieldNumber(t *testing.T) {
	for _, tc := range []struct {
		f  lineproto.Field
		v  float64
		ok bool
	}{
		{F("f", 1.5), 1.5, true}, {I("i", -3), -3, true}, {U("u", 1<<60), 1 << 60, true},
		{B("b", true), 0, false}, {S("s", "1"), 0, false}, {lineproto.Field{}, 0, false},
	} {
		if v, ok := tc.f.Number(); v != tc.v || ok != tc.ok {
			t.Errorf("%+v.Number() = %v, %v; want %v, %v", tc.f, v, ok, tc.v, tc.ok)
		}
	}
	for k, want := range map[lineproto.Kind]string{
		lineproto.KindFloat: "float", lineproto.KindInt: "integer", lineproto.KindUint: "unsigned",
		lineproto.KindBool: "boolean", lineproto.KindString: "string", 0: "invalid", 9: "Kind(9)",
	} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

// TestParseConcurrent: Parse from many goroutines at once (run with -race).
func TestParseConcurrent(t *testing.T) {
	body := benchTelegraf(500)
	want, err := lineproto.ParseAll(body, 0, benchNow, lineproto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 5 {
				k := 0
				err := lineproto.Parse(body, 0, benchNow, lineproto.Limits{}, func(p *lineproto.Point) error {
					if !equalPoint(p, &want[k]) {
						return fmt.Errorf("point %d differs: %s", k, fmtPoints([]lineproto.Point{*p, want[k]}))
					}
					k++
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
