package localmqtt

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestClassifyReading(t *testing.T) {
	tests := []struct {
		payload string
		want    readingFormat
		err     string
	}{
		{"21.5", formatNumber, ""},
		{" -3e2\n", formatNumber, ""},
		{`{"value":21.5,"unit":"C"}`, formatJSON, ""},
		{`{"readings":[{"value":1},{"value":2}]}`, formatJSON, ""},
		{"temp,room=kitchen value=21.5 1763892000000000000", formatLine, ""},
		{"temp value=1\ntemp value=2", formatLine, ""},
		{"", formatInvalid, "empty"},
		{"  \n", formatInvalid, "empty"},
		{`{"value":`, formatInvalid, "not valid JSON"},
		{`{"value":1}}`, formatInvalid, "not valid JSON"},
		{`[1,2]`, formatInvalid, "must be an object"},
		{`"21.5"`, formatInvalid, "must be an object"},
		{"NaN", formatInvalid, "finite"},
		{"-Inf", formatInvalid, "finite"},
		{"-0.5e-3", formatNumber, ""},
		{"0", formatNumber, ""},
		{"1_000", formatInvalid, "as in JSON"},
		{"0x1p4", formatInvalid, "as in JSON"},
		{"+1", formatInvalid, "as in JSON"},
		{".5", formatInvalid, "as in JSON"},
		{"1.", formatInvalid, "as in JSON"},
		{"007", formatInvalid, "as in JSON"},
		{"+1e400", formatInvalid, "as in JSON"},
		{"1e400", formatInvalid, "range"},
		{"-1e400", formatInvalid, "range"},
		{"inf", formatInvalid, "finite"},
		{"nan", formatInvalid, "finite"},
		{"hello", formatInvalid, "not a number"},
		{"temp=1", formatInvalid, "not a number"},
		{" =1", formatInvalid, "not a number"},
		{"\xff\xfe", formatInvalid, "UTF-8"},
	}
	for _, tt := range tests {
		got, err := classifyReading([]byte(tt.payload))
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("classifyReading(%q) = %s, %v; want %s, %q", tt.payload, got, err, tt.want, tt.err)
		}
	}
}

func TestCheckOp(t *testing.T) {
	for _, ok := range []string{`{"type":"counter","op":"inc","by":1}`, ` {} `} {
		if err := checkOp([]byte(ok)); err != nil {
			t.Errorf("checkOp(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "inc", "[1]", `{"op":`, "1"} {
		if err := checkOp([]byte(bad)); err == nil {
			t.Errorf("checkOp(%q) = nil", bad)
		}
	}
}

// FuzzClassifyReading checks that every payload gets exactly one form, or
// an error, and that the form is what it claims.
func FuzzClassifyReading(f *testing.F) {
	for _, s := range []string{"21.5", `{"value":1}`, "m,t=1 v=2 3", "", "NaN", "[1]", `{"a":`, "1e999",
		"1_000", "0x1p4", "+1", ".5", "1.", "007", "Inf", "-0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		format, err := classifyReading(p)
		if (err == nil) != (format != formatInvalid) {
			t.Fatalf("classifyReading(%q) = %s, %v", p, format, err)
		}
		tr := bytes.TrimSpace(p)
		switch format {
		case formatNumber:
			// A JSON number, in float64's range.
			var v any
			f, err := strconv.ParseFloat(string(tr), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || json.Unmarshal(tr, &v) != nil || v != f {
				t.Fatalf("%q classified as a number", p)
			}
		case formatJSON:
			if tr[0] != '{' || !json.Valid(tr) {
				t.Fatalf("%q classified as a JSON object", p)
			}
		case formatLine:
			if !bytes.Contains(tr, []byte(" ")) || !bytes.Contains(tr, []byte("=")) {
				t.Fatalf("%q classified as line protocol", p)
			}
		}
		if opErr := checkOp(p); (opErr == nil) != (len(tr) > 0 && tr[0] == '{' && json.Valid(tr)) {
			t.Fatalf("checkOp(%q) = %v", p, opErr)
		}
	})
}
