package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/lineproto"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestJSON(t *testing.T) {
	rs, err := JSON([]byte(`{"readings":[{"sensor":"t","value":1.5,"unit":"C","ts":"2026-11-23T09:00:00Z","tags":{"room":"a"}},{"sensor":"u","value":2,"ts":1700000000.5}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Tags["room"] != "a" || rs[0].Time.Hour() != 9 || rs[1].Time.UnixMilli() != 1700000000500 {
		t.Fatalf("%+v", rs)
	}
	rs, err = JSON([]byte(`{"value":3}`), "boiler")
	if err != nil || len(rs) != 1 || rs[0].Sensor != "boiler" || !rs[0].Time.IsZero() {
		t.Fatalf("single reading: %+v %v", rs, err)
	}
	for _, c := range []struct{ in, field string }{
		{`{"readings":[{"sensor":"t"}]}`, "readings[0].value"},
		{`{"readings":[{"sensor":"t","value":1,"ts":"yesterday"}]}`, "readings[0].ts"},
		{`{"readings":[{"sensor":"t","value":"1"}]}`, "readings.value"},
		{`{"readings":[]}`, "readings"},
		{`{"value":1,"vaule":2}`, ""},
		{`{"value":1} x`, ""},
	} {
		_, err := JSON([]byte(c.in), "")
		if f, ok := invalid.FieldOf(err); !ok || f != c.field {
			t.Errorf("JSON(%s) = %v, want an error about %q", c.in, err, c.field)
		}
	}
}

func TestLineProtocolAndPayload(t *testing.T) {
	rs, skipped, err := LineProtocol([]byte("cpu,host=a idle=90,user=3i,on=true,name=\"x\" 1700000000\n"), lineproto.Second, now)
	if err != nil || skipped != 1 || len(rs) != 3 {
		t.Fatalf("%+v skipped %d %v", rs, skipped, err)
	}
	if rs[0].Sensor != "cpu.idle" || rs[0].Tags["host"] != "a" || rs[0].Time.Unix() != 1700000000 || rs[2].Value != 1 {
		t.Errorf("%+v", rs)
	}
	if _, _, err := LineProtocol([]byte("cpu idle=\n"), lineproto.Nanosecond, now); !errors.Is(err, lineproto.ErrSyntax) {
		t.Errorf("bad line: %v, want a syntax error", err)
	}
	for _, c := range []struct {
		payload string
		n       int
		bad     bool
	}{{"21.5", 1, false}, {"NaN", 0, true}, {`{"value":1}`, 1, false}, {"m v=1,w=2", 2, false}, {" ", 0, true}, {"+Inf", 0, true}} {
		rs, err := Payload("s", []byte(c.payload), now)
		if (err != nil) != c.bad || len(rs) != c.n {
			t.Errorf("Payload(%q) = %d readings, %v", c.payload, len(rs), err)
		}
	}
}

func FuzzPayload(f *testing.F) {
	for _, s := range []string{"21.5", `{"value":1,"ts":"2026-11-23T09:00:00Z"}`, `{"readings":[{"sensor":"a","value":1,"tags":{"k":"v"}}]}`, "m,t=1 v=1 1", "1e400"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := Payload("s", b, now)
		if err != nil {
			if _, ok := invalid.FieldOf(err); !ok {
				t.Fatalf("error %v is not an *invalid.Error", err)
			}
			return
		}
		if len(rs) == 0 {
			t.Fatal("no readings and no error")
		}
	})
}
