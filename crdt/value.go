package crdt

import "fmt"

// Type tags a CRDT type. The numbers are part of the storage and wire
// formats: never renumber them. When one name holds values of several types
// (concurrent creation with different types), readers show the one with the
// highest Type; see ORMap.
type Type uint8

// The CRDT types. TypeInvalid is the zero value and never valid.
const (
	TypeInvalid     Type = iota
	TypeEWFlag           // enable-wins flag
	TypeGCounter         // grow-only counter
	TypePNCounter        // increment/decrement counter
	TypeLWWRegister      // last-writer-wins register (HLC, replica tie-break)
	TypeMVRegister       // multi-value register
	TypeAWSet            // add-wins observed-remove set
	TypeReadingSet       // grow-only set of immutable sensor readings
	TypeORMap            // observed-remove map of nested CRDTs
	maxType
)

var typeNames = [...]string{
	TypeInvalid:     "invalid",
	TypeEWFlag:      "flag",
	TypeGCounter:    "gcounter",
	TypePNCounter:   "counter",
	TypeLWWRegister: "register",
	TypeMVRegister:  "mvregister",
	TypeAWSet:       "set",
	TypeReadingSet:  "readings",
	TypeORMap:       "map",
}

// String returns the type's name as users type it ("counter", "set", …).
func (t Type) String() string {
	if t < maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType returns the type with the given name.
func ParseType(name string) (Type, error) {
	for t := TypeEWFlag; t < maxType; t++ {
		if typeNames[t] == name {
			return t, nil
		}
	}
	return TypeInvalid, fmt.Errorf("%w %q", ErrUnknownType, name)
}

// Value is a causal CRDT: a dot store whose meaning depends on a causal
// context kept beside it (in a Causal, or shared by a whole key space). The
// implementations are this package's types: *EWFlag, *GCounter, *PNCounter,
// *LWWRegister, *MVRegister, *AWSet, *ReadingSet and *ORMap.
//
// Values are not safe for concurrent use. Byte slices they return or take
// are shared and must not be modified.
type Value interface {
	// Type returns the value's CRDT type.
	Type() Type
	// IsBottom reports whether the value holds nothing (is absent).
	IsBottom() bool

	merge(o Value, c, oc *Context, m mode) Value
	empty() Value
	eachDot(f func(Dot))
}

// New returns the empty (bottom) value of type t.
func New(t Type) (Value, error) {
	switch t {
	case TypeEWFlag:
		return new(EWFlag), nil
	case TypeGCounter:
		return new(GCounter), nil
	case TypePNCounter:
		return new(PNCounter), nil
	case TypeLWWRegister:
		return new(LWWRegister), nil
	case TypeMVRegister:
		return new(MVRegister), nil
	case TypeAWSet:
		return new(AWSet), nil
	case TypeReadingSet:
		return new(ReadingSet), nil
	case TypeORMap:
		return new(ORMap), nil
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
}

// Dots returns the context that covers exactly the dots of v: a delta with
// this context and an empty store removes v.
func Dots(v Value) Context {
	var c Context
	if v != nil {
		v.eachDot(c.Add)
	}
	return c
}

// Project returns the part of v made of the dots keep accepts. With keep
// selecting one replica's dots, it is what that replica wrote that v still
// holds: its share of a counter, a register value it set that no write
// has overwritten, the set elements it added, at every level of a map.
// The projections of v over all replicas partition its dots.
func Project(v Value, keep func(Dot) bool) Value {
	var drop, none Context
	v.eachDot(func(d Dot) {
		if !keep(d) {
			drop.Add(d)
		}
	})
	// Merging v into bottom with the dropped dots as the receiver's
	// context takes every entry of v but those: the receiver has "seen"
	// them, so they are not added.
	return v.empty().merge(v, &drop, &none, full)
}

// skeleton returns v with every nested entry listed but emptied: the store
// of a delta that removes v. Listing the nested entries keeps the delta
// invariant that Apply relies on: every dot of a delta's context belongs to
// an entry the delta lists, at every level of nesting.
func skeleton(v Value) Value {
	dots := Dots(v)
	return v.empty().merge(v, &dots, &dots, full|keep)
}

// Clone returns a deep copy of v (payloads are shared; they are
// immutable). It is cheaper than decoding v again.
func Clone(v Value) Value {
	var none Context
	return v.empty().merge(v, &none, &none, full|keep)
}
