package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/lineproto"
	"github.com/edged-dev/edged/series"
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
		{`{"readings":[{"sensor":"t","value":"1"}]}`, "readings[0].value"},
		{`{"readings":[]}`, "readings"},
		{`{"value":1,"vaule":2}`, ""},
		{`{"value":1} x`, ""},
		{`{"value":1}}`, ""},
	} {
		_, err := JSON([]byte(c.in), "")
		if f, ok := invalid.FieldOf(err); !ok || f != c.field {
			t.Errorf("JSON(%s) = %v, want an error about %q", c.in, err, c.field)
		}
	}
}

// TestJSONMemberErrors: a member of the wrong JSON type, or an unknown
// one, is named by the API's path, with the reading's index, and the
// message speaks of JSON's types, not Go's.
func TestJSONMemberErrors(t *testing.T) {
	for _, c := range []struct{ in, field, msg string }{
		{`{"value":"21.5"}`, "value", "must be a number, not a JSON string"},
		{`{"value":true}`, "value", "must be a number, not a JSON boolean"},
		{`{"value":1e400}`, "value", "1e400 is beyond the range"},
		{`{"value":1,"sensor":2}`, "sensor", "must be a string, not a JSON number"},
		{`{"value":1,"unit":[]}`, "unit", "must be a string, not a JSON array"},
		{`{"value":1,"tags":{"room":1}}`, "tags", "tag values must be strings, not a JSON number"},
		{`{"value":1,"tags":["a"]}`, "tags", "must be an object of strings, not a JSON array"},
		{`{"readings":{}}`, "readings", "must be an array of readings, not a JSON object"},
		{`{"readings":[{"value":1},7]}`, "readings[1]", "must be an object, not a JSON number"},
		{`{"readings":[{"value":1},{"value":"x"}]}`, "readings[1].value", "must be a number, not a JSON string"},
		{`{"readings":[{"value":1},{"value":2,"tags":{"a":null,"b":{}}}]}`, "readings[1].tags", "tag values must be strings, not a JSON object"},
		{`{"readings":[{"value":1},{"value":2},{"value":1e999}]}`, "readings[2].value", "beyond the range"},
		{`{"readings":[{"value":1},{"vaule":2}]}`, "readings[1]", `unknown member "vaule"`},
		{`{"value":1,"vaule":2}`, "", `unknown member "vaule"`},
		{`[{"value":1}]`, "", "must be a JSON object"},
		{`"21.5"`, "", "not a JSON string"},
	} {
		_, err := JSON([]byte(c.in), "s")
		f, ok := invalid.FieldOf(err)
		if !ok || f != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("JSON(%s) = %v (field %q), want field %q and %q", c.in, err, f, c.field, c.msg)
			continue
		}
		for _, goName := range []string{"float64", "ingest.", "jsonReading", "[]", "map[", "json:"} {
			if strings.Contains(err.Error(), goName) {
				t.Errorf("JSON(%s) = %v: Go's name %q in the message", c.in, err, goName)
			}
		}
	}
}

// TestJSONBothForms: a body with "readings" and a single reading's member
// is refused, naming the member, rather than dropping either.
func TestJSONBothForms(t *testing.T) {
	for _, c := range []struct{ in, field string }{
		{`{"readings":[{"sensor":"a","value":1}],"sensor":"b","value":2}`, "sensor"},
		{`{"value":2,"readings":[{"value":1}]}`, "value"},
		{`{"readings":[{"value":1}],"sensor":""}`, "sensor"},
		{`{"readings":[{"value":1}],"unit":"C"}`, "unit"},
		{`{"readings":[{"value":1}],"ts":0}`, "ts"},
		{`{"readings":[{"value":1}],"tags":{}}`, "tags"},
	} {
		rs, err := JSON([]byte(c.in), "")
		if f, ok := invalid.FieldOf(err); !ok || f != c.field {
			t.Errorf("JSON(%s) = %+v, %v; want an error about %q", c.in, rs, err, c.field)
		}
	}
	// null is absent, as for ts: no second reading.
	for _, in := range []string{`{"readings":[{"value":1}],"sensor":null,"value":null,"unit":null,"ts":null,"tags":null}`, `{"readings":null,"value":1}`} {
		if rs, err := JSON([]byte(in), "s"); err != nil || len(rs) != 1 || rs[0].Value != 1 {
			t.Errorf("JSON(%s) = %+v, %v; want one reading of value 1", in, rs, err)
		}
	}
}

// TestPayloadNumberSyntax: a bare number is written as in JSON; what only
// Go's strconv.ParseFloat takes is refused as a value, not stored.
func TestPayloadNumberSyntax(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{{"21.5", 21.5}, {"-3", -3}, {"0", 0}, {"-0.5e-3", -0.0005}, {"1E+2", 100}, {" 7\n", 7}, {"4.9e-324", 4.9e-324}} {
		rs, err := Payload("s", []byte(c.in), now)
		if err != nil || len(rs) != 1 || rs[0].Value != c.want || rs[0].Sensor != "s" {
			t.Errorf("Payload(%q) = %+v, %v; want %g", c.in, rs, err, c.want)
		}
	}
	for _, in := range []string{"1_000", "0x1p4", "0x10", "+1", ".5", "1.", "007", "-", "1e", "Inf", "-inf", "infinity", "NaN", "nan", "1e400", "-1e400", "+1e400"} {
		rs, err := Payload("s", []byte(in), now)
		if f, ok := invalid.FieldOf(err); !ok || f != "value" {
			t.Errorf("Payload(%q) = %+v, %v; want an error about the value", in, rs, err)
		}
	}
	if _, err := Payload("s", []byte("1"+strings.Repeat("0", 400)), now); err == nil || len(err.Error()) > 100 {
		t.Errorf("Payload(1e400 in digits) = %v; want a short error", err)
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

// apiField matches the fields that errors about readings name.
var apiField = regexp.MustCompile(`^((readings\[\d+\]\.)?(sensor|value|unit|ts|tags)|readings(\[\d+\])?|)$`)

func FuzzPayload(f *testing.F) {
	for _, s := range []string{"21.5", `{"value":1,"ts":"2026-11-23T09:00:00Z"}`, `{"readings":[{"sensor":"a","value":1,"tags":{"k":"v"}}]}`, "m,t=1 v=1 1", "1e400",
		"1_000", "0x1p4", "+1", ".5", "007", "Inf", `{"value":"21.5"}`, `{"readings":[{"value":1},{"value":"x"}]}`,
		`{"readings":[{"sensor":"a","value":1}],"sensor":"b","value":2}`, `{"readings":[1,{"vaule":1}]}`, `{"value":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := Payload("s", b, now)
		if err != nil {
			field, ok := invalid.FieldOf(err)
			if !ok {
				t.Fatalf("error %v is not an *invalid.Error", err)
			}
			if !apiField.MatchString(field) {
				t.Fatalf("error %v names %q, not a member of the API", err, field)
			}
			return
		}
		if len(rs) == 0 {
			t.Fatal("no readings and no error")
		}
		// Without "{" or a space (line protocol's), only a bare number is
		// taken, and only as JSON reads it.
		if tr := bytes.TrimSpace(b); tr[0] != '{' && bytes.IndexByte(tr, ' ') < 0 {
			var f float64
			if err := json.Unmarshal(tr, &f); err != nil || len(rs) != 1 || rs[0].Value != f {
				t.Fatalf("Payload(%q) = %+v; JSON reads %g, %v", b, rs, f, err)
			}
		}
	})
}

// FuzzJSON checks that every body is decoded or refused with an error
// naming a member of the API, with its reading's index.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"value":1}`, `{"readings":[{"sensor":"a","value":1,"unit":"C","ts":1,"tags":{"k":"v"}}]}`,
		`{"value":"21.5"}`, `{"value":1,"tags":{"room":1}}`, `{"readings":[{"value":1},{"value":"x"}]}`,
		`{"readings":[{"sensor":"a","value":1}],"sensor":"b","value":2}`, `{"readings":[{"value":1},{"vaule":1}]}`,
		`{"readings":{}}`, `[1]`, `{"value":1e400}`, `{"value":1}]`, `{"readings":[null,1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := JSON(b, "s")
		if err != nil {
			field, ok := invalid.FieldOf(err)
			if !ok || !apiField.MatchString(field) {
				t.Fatalf("JSON(%q): error %v names %q, not a member of the API", b, err, field)
			}
			return
		}
		if len(rs) == 0 || len(rs) > series.MaxReadings {
			t.Fatalf("JSON(%q): %d readings and no error", b, len(rs))
		}
	})
}
