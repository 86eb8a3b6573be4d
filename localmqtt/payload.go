package localmqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// readingFormat is the form of a readings payload, as classifyReading sees
// it. The Backend does the real parsing; the node only refuses early what
// no Backend could take, without spending a worker on it.
type readingFormat int

const (
	formatInvalid readingFormat = iota
	formatNumber                // a bare number: "21.5"
	formatJSON                  // a JSON object: a reading or {"readings":[...]}
	formatLine                  // InfluxDB line protocol
)

func (f readingFormat) String() string {
	switch f {
	case formatNumber:
		return "number"
	case formatJSON:
		return "json"
	case formatLine:
		return "line"
	default:
		return "invalid"
	}
}

// classifyReading says which form the readings payload p has, or why it has
// none: empty, invalid UTF-8, malformed JSON, a JSON value other than an
// object, a non-finite number, or text that cannot be line protocol (which
// has at least a measurement, a space and a field=value). A number is
// written as in JSON.
func classifyReading(p []byte) (readingFormat, error) {
	t := bytes.TrimSpace(p)
	if len(t) == 0 {
		return formatInvalid, errors.New("payload is empty")
	}
	if !utf8.Valid(t) {
		return formatInvalid, errors.New("payload is not valid UTF-8")
	}
	switch t[0] {
	case '{':
		if err := checkJSON(t); err != nil {
			return formatInvalid, err
		}
		return formatJSON, nil
	case '[', '"':
		return formatInvalid, errors.New("JSON payload must be an object")
	}
	// A JSON text that starts with '-' or a digit is a number: a bare
	// number has JSON's grammar, not the Go syntax that
	// strconv.ParseFloat also takes ("1_000", "0x1p4", "+1", "Inf").
	if (t[0] == '-' || '0' <= t[0] && t[0] <= '9') && json.Valid(t) {
		if _, err := strconv.ParseFloat(string(t), 64); err != nil {
			return formatInvalid, errors.New("number is beyond the range of a 64-bit float")
		}
		return formatNumber, nil
	}
	if f, err := strconv.ParseFloat(string(t), 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return formatInvalid, errors.New("number must be finite")
		}
		return formatInvalid, errors.New("number must be written as in JSON, such as 21.5, -3 or 1e-3")
	}
	if i := bytes.IndexByte(t, ' '); i <= 0 || !bytes.Contains(t[i:], []byte("=")) {
		return formatInvalid, errors.New("payload is not a number, a JSON object or InfluxDB line protocol")
	}
	return formatLine, nil
}

// checkOp reports why p cannot be an operation for Backend.Do: it must be a
// JSON object.
func checkOp(p []byte) error {
	t := bytes.TrimSpace(p)
	if len(t) == 0 || t[0] != '{' {
		return errors.New("op must be a JSON object")
	}
	return checkJSON(t)
}

// checkJSON reports whether p is well-formed JSON, saying where it is not.
func checkJSON(p []byte) error {
	if json.Valid(p) {
		return nil
	}
	var v json.RawMessage
	err := json.Unmarshal(p, &v)
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("payload is not valid JSON: %s (at byte %d)", se, se.Offset)
	}
	return fmt.Errorf("payload is not valid JSON: %v", err)
}
