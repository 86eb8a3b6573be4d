package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Field names an entry of an ORMap: a name and the CRDT type of its value.
type Field struct {
	Name string
	Type Type
}

// String formats the field as name:type.
func (f Field) String() string { return f.Name + ":" + f.Type.String() }

// Compare orders fields by name, then type.
func (f Field) Compare(o Field) int {
	if c := strings.Compare(f.Name, o.Name); c != 0 {
		return c
	}
	return cmp.Compare(f.Type, o.Type)
}

// ORMap is an observed-remove map from names to nested CRDT values (any
// Value, including ORMaps). An update of a field concurrent with the removal
// of the field survives with what the update wrote; removal drops only what
// it observed.
//
// A field is identified by its name and its type. Two replicas that
// concurrently create one name with different types therefore both keep
// their value; every replica converges to the same pair, and Get shows the
// value whose Type is highest (so the rule needs no coordination and gives
// the same answer everywhere). Values shows every type present, so a caller
// can report the conflict; Remove of the name removes them all.
//
// A node's whole key space is one ORMap whose fields share the node's causal
// context: edged's store keeps one record per top-level name and applies deltas
// field by field.
type ORMap struct{ fields DotMap[Field, Value] }

var _ Value = (*ORMap)(nil)

// NewORMap returns a map holding the given fields. The map refers to the
// values, it does not copy them. A store that keeps a key space's fields
// apart uses it to build a view of one name's fields and derive a delta
// (Update, Remove) from it.
func NewORMap(fields map[Field]Value) *ORMap {
	m := &ORMap{fields: make(DotMap[Field, Value], len(fields))}
	for f, v := range fields {
		if v != nil {
			m.fields[f] = v
		}
	}
	return m
}

// Type returns TypeORMap.
func (*ORMap) Type() Type { return TypeORMap }

// IsBottom reports whether the map holds no field.
func (m *ORMap) IsBottom() bool { return m.fields.IsBottom() }

// Get returns the value of a name: of the types present under it, the one
// with the highest Type.
func (m *ORMap) Get(name string) (Value, bool) {
	var best Value
	for f, v := range m.fields {
		if f.Name == name && !v.IsBottom() && (best == nil || f.Type > best.Type()) {
			best = v
		}
	}
	return best, best != nil
}

// Field returns the value of one field, or nil.
func (m *ORMap) Field(f Field) Value { return m.fields[f] }

// Fields returns the fields of the map in ascending order. In a delta,
// fields with an empty value are listed too: they are removals.
func (m *ORMap) Fields() []Field {
	fs := make([]Field, 0, len(m.fields))
	for f := range m.fields {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, Field.Compare)
	return fs
}

// Update returns the delta that applies a mutator to field f. op receives
// the field's current value (the empty value of f.Type if absent) and
// returns its delta, which must be of type f.Type.
func (m *ORMap) Update(f Field, op func(Value) (Causal, error)) (Causal, error) {
	cur := m.fields[f]
	if cur == nil {
		v, err := New(f.Type)
		if err != nil {
			return Causal{}, fmt.Errorf("field %s: %w", f, err)
		}
		cur = v
	}
	d, err := op(cur)
	if err != nil {
		return Causal{}, fmt.Errorf("field %s: %w", f, err)
	}
	if d.Value == nil || d.Value.Type() != f.Type {
		return Causal{}, fmt.Errorf("field %s: %w: mutator returned a different type", f, ErrTypeMismatch)
	}
	return delta(&ORMap{fields: DotMap[Field, Value]{f: d.Value}}, d.Ctx), nil
}

// Remove returns the delta that removes every field called name, of any
// type, as far as observed.
func (m *ORMap) Remove(name string) Causal {
	var ctx Context
	out := make(DotMap[Field, Value])
	for f, v := range m.fields {
		if f.Name == name {
			v.eachDot(ctx.Add)
			out[f] = skeleton(v)
		}
	}
	return delta(&ORMap{fields: out}, ctx)
}

func (m *ORMap) merge(o Value, c, oc *Context, md mode) Value {
	m.fields = m.fields.merge(o.(*ORMap).fields, c, oc, md)
	return m
}
func (*ORMap) empty() Value           { return new(ORMap) }
func (m *ORMap) eachDot(fn func(Dot)) { m.fields.eachDot(fn) }
