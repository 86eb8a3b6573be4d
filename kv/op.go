package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/store"
)

// Limits on operations.
const (
	// MaxOpBytes bounds the JSON of one operation.
	MaxOpBytes = store.MaxValueBytes + 64<<10
	// MaxElems bounds the elements of one set operation.
	MaxElems = 10_000
	// MaxFieldBytes bounds a map field's name.
	MaxFieldBytes = 256
)

// op is the JSON form of an operation. The members that not every
// operation takes record whether they were sent (a JSON null included),
// so that one sent to an operation that does not take it is refused.
type op struct {
	Type  string                    `json:"type"`
	Op    string                    `json:"op"`
	By    member[*int64]            `json:"by"`
	Value json.RawMessage           `json:"value"` // "null" for null
	Elems member[[]json.RawMessage] `json:"elems"`
	Field member[string]            `json:"field"`
}

// member is a JSON member's value and whether it was present.
type member[T any] struct {
	v   T
	set bool
}

// UnmarshalJSON decodes the value; encoding/json names the member in
// its errors.
func (m *member[T]) UnmarshalJSON(b []byte) error {
	m.set = true
	return json.Unmarshal(b, &m.v)
}

// only refuses the members that o's operation does not take: all but
// type, op and uses.
func (o op) only(uses ...string) error {
	for _, m := range []struct {
		name string
		set  bool
	}{{"by", o.By.set}, {"value", o.Value != nil}, {"elems", o.Elems.set}, {"field", o.Field.set}} {
		if m.set && !slices.Contains(uses, m.name) {
			takes := "no other member"
			if len(uses) > 0 {
				takes = strings.Join(uses, " and ")
			}
			return invalid.Errorf(m.name, "not taken by a %s %s, which takes %s", o.Type, o.Op, takes)
		}
	}
	return nil
}

// DecodeOp parses an operation on the key name (see Name) from its JSON
// form, as documented in docs/API.md:
//
//	{"type":"counter","op":"inc"|"dec","by":N}
//	{"type":"register"|"mvregister","op":"set","value":ANY}
//	{"type":"set","op":"add"|"remove","elems":[ANY,...]}
//	{"type":"map","op":"set","field":F,"value":ANY}
//	{"type":"map","op":"inc"|"dec","field":F,"by":N}
//	{"type":"map","op":"remove","field":F}
//	{"type":"flag","op":"enable"|"disable"}
//
// Unknown members are errors, so a misspelt "vaule" is not silently
// dropped, and so are members the operation does not take (a "value" on
// a counter's inc). Errors are *invalid.Error naming the member.
func DecodeOp(name string, body []byte) (engine.Op, error) {
	if len(body) > MaxOpBytes {
		return engine.Op{}, invalid.Errorf("", "operation of %d bytes, limit %d", len(body), MaxOpBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var o op
	if err := dec.Decode(&o); err != nil {
		return engine.Op{}, jsonError(err)
	}
	// Not dec.More, which takes a trailing "}" or "]" for the end.
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return engine.Op{}, invalid.Errorf("", "trailing data after the operation")
	}
	switch o.Type {
	case "counter":
		if o.Op != "inc" && o.Op != "dec" {
			return engine.Op{}, badOp(o, "inc", "dec")
		}
		if err := o.only("by"); err != nil {
			return engine.Op{}, err
		}
		by, err := o.amount()
		if err != nil {
			return engine.Op{}, err
		}
		return engine.Add(name, by), nil
	case "register", "mvregister":
		if o.Op != "set" {
			return engine.Op{}, badOp(o, "set")
		}
		if err := o.only("value"); err != nil {
			return engine.Op{}, err
		}
		v, err := value(o.Value, "value")
		if err != nil {
			return engine.Op{}, err
		}
		if o.Type == "register" {
			return engine.Set(name, v), nil
		}
		return engine.SetMV(name, v), nil
	case "set":
		if o.Op != "add" && o.Op != "remove" {
			return engine.Op{}, badOp(o, "add", "remove")
		}
		if err := o.only("elems"); err != nil {
			return engine.Op{}, err
		}
		if len(o.Elems.v) == 0 {
			return engine.Op{}, invalid.Errorf("elems", "must list at least one element")
		}
		if len(o.Elems.v) > MaxElems {
			return engine.Op{}, invalid.Errorf("elems", "%d elements, limit %d", len(o.Elems.v), MaxElems)
		}
		elems := make([]string, len(o.Elems.v))
		for i, e := range o.Elems.v {
			v, err := value(e, fmt.Sprintf("elems[%d]", i))
			if err != nil {
				return engine.Op{}, err
			}
			elems[i] = string(v)
		}
		if o.Op == "add" {
			return engine.AddElems(name, elems...), nil
		}
		return engine.RemoveElems(name, elems...), nil
	case "flag":
		if o.Op != "enable" && o.Op != "disable" {
			return engine.Op{}, badOp(o, "enable", "disable")
		}
		if err := o.only(); err != nil {
			return engine.Op{}, err
		}
		return engine.Enable(name, o.Op == "enable"), nil
	case "map":
		return mapOp(name, o)
	case "":
		return engine.Op{}, invalid.Errorf("type", "missing: one of counter, register, mvregister, set, map, flag")
	}
	return engine.Op{}, invalid.Errorf("type", "%q is not one of counter, register, mvregister, set, map, flag", o.Type)
}

// amount returns the signed amount of an inc or dec.
func (o op) amount() (int64, error) {
	by := int64(1)
	if o.By.v != nil { // absent or null: the default
		by = *o.By.v
	}
	if by <= 0 {
		return 0, invalid.Errorf("by", "must be a positive integer (got %d); use dec to decrement", by)
	}
	switch o.Op {
	case "inc":
		return by, nil
	case "dec":
		return -by, nil
	}
	return 0, badOp(o, "inc", "dec")
}

// mapOp returns an operation on one field of a map: fields set are
// last-writer-wins registers, fields incremented are counters.
func mapOp(name string, o op) (engine.Op, error) {
	var uses []string
	switch o.Op {
	case "set":
		uses = []string{"field", "value"}
	case "inc", "dec":
		uses = []string{"field", "by"}
	case "remove":
		uses = []string{"field"}
	default:
		return engine.Op{}, badOp(o, "set", "inc", "dec", "remove")
	}
	if err := o.only(uses...); err != nil {
		return engine.Op{}, err
	}
	field := o.Field.v
	if field == "" {
		return engine.Op{}, invalid.Errorf("field", "missing: the map field to change")
	}
	if len(field) > MaxFieldBytes {
		return engine.Op{}, invalid.Errorf("field", "%d bytes, limit %d", len(field), MaxFieldBytes)
	}
	if err := store.ValidateName(field); err != nil {
		return engine.Op{}, invalid.Errorf("field", "%v", err)
	}
	var mutate func(m *crdt.ORMap, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error)
	switch o.Op {
	case "set":
		v, err := value(o.Value, "value")
		if err != nil {
			return engine.Op{}, err
		}
		f := crdt.Field{Name: field, Type: crdt.TypeLWWRegister}
		mutate = func(m *crdt.ORMap, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error) {
			return m.Update(f, func(r crdt.Value) (crdt.Causal, error) { return r.(*crdt.LWWRegister).Set(g, now, v), nil })
		}
	case "inc", "dec":
		by, err := o.amount()
		if err != nil {
			return engine.Op{}, err
		}
		f := crdt.Field{Name: field, Type: crdt.TypePNCounter}
		mutate = func(m *crdt.ORMap, g *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
			return m.Update(f, func(c crdt.Value) (crdt.Causal, error) { return c.(*crdt.PNCounter).Add(g, by) })
		}
	default: // remove
		mutate = func(m *crdt.ORMap, _ *crdt.DotGen, _ crdt.Timestamp) (crdt.Causal, error) {
			return m.Remove(field), nil
		}
	}
	return engine.Op{Name: name, Type: crdt.TypeORMap, Mutate: func(v crdt.Value, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error) {
		return mutate(v.(*crdt.ORMap), g, now)
	}}, nil
}

func badOp(o op, want ...string) error {
	if o.Op == "" {
		return invalid.Errorf("op", "missing: one of %v for a %s", want, o.Type)
	}
	return invalid.Errorf("op", "%q is not one of %v for a %s", o.Op, want, o.Type)
}

// value checks a JSON value and returns its compact form, which is what is
// stored and compared (so 1.0 and 1 are different set elements, and
// " a" and "a" too, but spacing between tokens is not).
func value(raw json.RawMessage, field string) ([]byte, error) {
	if len(raw) == 0 {
		return nil, invalid.Errorf(field, "missing")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, invalid.Errorf(field, "%v", err)
	}
	if b.Len() > store.MaxValueBytes {
		return nil, invalid.Errorf(field, "%d bytes, limit %d", b.Len(), store.MaxValueBytes)
	}
	return b.Bytes(), nil
}

// jsonError turns a decoding error into an *invalid.Error naming the
// member where the decoder can tell.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return invalid.Errorf(te.Field, "must be a %s, not a JSON %s", te.Type, te.Value)
	}
	return invalid.Errorf("", "malformed JSON: %v", err)
}

// Render returns the JSON form of a value: a number for counters, the
// stored JSON for a register, a list of values for a multi-value
// register or a set (sorted), true or false for a flag, an object for a
// map (each field's value rendered the same way).
func Render(v crdt.Value) (json.RawMessage, error) {
	switch v := v.(type) {
	case *crdt.PNCounter:
		return json.Marshal(v.Value())
	case *crdt.GCounter:
		return json.Marshal(v.Value())
	case *crdt.LWWRegister:
		b, _, ok := v.Get()
		if !ok {
			return json.RawMessage("null"), nil
		}
		return checked(b)
	case *crdt.MVRegister:
		return list(v.Values())
	case *crdt.AWSet:
		es := v.Elements()
		bs := make([][]byte, len(es))
		for i, e := range es {
			bs[i] = []byte(e)
		}
		return list(bs)
	case *crdt.EWFlag:
		return json.Marshal(v.Enabled())
	case *crdt.ORMap:
		out := map[string]json.RawMessage{}
		for _, f := range v.Fields() {
			if _, done := out[f.Name]; done {
				continue
			}
			fv, ok := v.Get(f.Name)
			if !ok {
				continue
			}
			r, err := Render(fv)
			if err != nil {
				return nil, err
			}
			out[f.Name] = r
		}
		return json.Marshal(out)
	}
	return nil, fmt.Errorf("kv: no JSON form for a %s", v.Type())
}

// list renders stored JSON values as a sorted JSON array.
func list(vs [][]byte) (json.RawMessage, error) {
	sort.Slice(vs, func(i, j int) bool { return bytes.Compare(vs[i], vs[j]) < 0 })
	out := make([]json.RawMessage, len(vs))
	for i, v := range vs {
		r, err := checked(v)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return json.Marshal(out)
}

// checked returns stored bytes as JSON, or a JSON string of them when they
// are not JSON (written by a peer of another kind, or by the Go API).
func checked(b []byte) (json.RawMessage, error) {
	if json.Valid(b) {
		return b, nil
	}
	return json.Marshal(string(b))
}
