package lineproto_test

import (
	"errors"
	"fmt"

	"github.com/edged-dev/edged/lineproto"
)

// A write endpoint: the precision comes from the query, the time of points
// without timestamp from the node's clock, and a bad body is rejected as a
// whole with the line at fault.
func ExampleParse() {
	body := []byte(`# from telegraf
cpu,region=eu,host=a usage_idle=90.5,usage_user=3.2 1700000000
disk,path=/var/lib/edged used=123456i,ro=false,label="data, primary" 1700000000
`)
	prec, err := lineproto.ParsePrecision("s")
	if err != nil {
		panic(err)
	}
	now := int64(1_700_000_001_000_000_000) // the caller's clock, in ns
	err = lineproto.Parse(body, prec, now, lineproto.DefaultLimits(), func(p *lineproto.Point) error {
		fmt.Println(p.Measurement, p.Tags, p.Time)
		for _, f := range p.Fields {
			if v, ok := f.Number(); ok {
				fmt.Printf("  %s = %v (%v)\n", f.Key, v, f.Kind)
			} else {
				fmt.Printf("  %s is a %v\n", f.Key, f.Kind)
			}
		}
		return nil
	})
	fmt.Println(err)

	err = lineproto.Parse([]byte("cpu usage=1\ncpu usage=2\ncpu usage=1.2.3\n"), prec, now, lineproto.Limits{}, nil)
	var se *lineproto.SyntaxError
	fmt.Println(errors.As(err, &se), se.Line, se.Col, err)
	// Output:
	// cpu [{host a} {region eu}] 1700000000000000000
	//   usage_idle = 90.5 (float)
	//   usage_user = 3.2 (float)
	// disk [{path /var/lib/edged}] 1700000000000000000
	//   used = 123456 (integer)
	//   ro is a boolean
	//   label is a string
	// <nil>
	// true 3 11 line 3: field "usage" value: invalid number "1.2.3"
}

func ExampleAppendPoint() {
	p := lineproto.Point{
		Measurement: "room temp",
		Tags:        []lineproto.Tag{{Key: "site", Value: "Hall 2"}},
		Fields:      []lineproto.Field{lineproto.FloatField("celsius", 21.5), lineproto.StringField("note", `say "hi"`)},
		Time:        1_700_000_000_000_000_000,
		HasTime:     true,
	}
	line, err := lineproto.AppendPoint(nil, &p, lineproto.Millisecond)
	fmt.Printf("%s%v\n", line, err)
	// Output:
	// room\ temp,site=Hall\ 2 celsius=21.5,note="say \"hi\"" 1700000000000
	// <nil>
}
