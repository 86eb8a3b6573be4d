package crdt

import (
	"fmt"
	"slices"

	"github.com/edged-dev/edged/cborcheck"

	"github.com/fxamacker/cbor/v2"
)

// FormatVersion is the version of the CBOR encoding of Causal values. A
// decoder refuses a newer version with ErrVersion; unknown map keys in the
// encoding are ignored, so additions that older versions may skip need no
// new version.
const FormatVersion = 1

// Limits bound what the decoder accepts, so hostile bytes cannot exhaust
// memory: every allocation is proportional to the input, which is itself
// bounded. Nesting allows ORMaps nested about eight deep.
const (
	MaxEncodedBytes = 64 << 20 // largest encoding accepted
	maxNesting      = 32       // CBOR nesting levels
	maxElements     = 1 << 22  // items in one CBOR array
	maxPairs        = 1 << 16  // pairs in one CBOR map
	// MaxRelativeDots bounds the dots a relative encoding leaves out of
	// its context (UnmarshalCBORRelative adds them back, one by one when
	// they do not extend the prefix).
	MaxRelativeDots = 1 << 16
)

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  maxNesting,
		MaxArrayElements: maxElements,
		MaxMapPairs:      maxPairs,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}

// Wire forms. Tuples (toarray) are fixed per type; extensions add new keys
// to the maps (keyasint), which older decoders ignore.
type (
	wireCausal struct {
		Version uint       `cbor:"1,keyasint"`
		Value   *wireValue `cbor:"2,keyasint,omitempty"`
		Ctx     wireCtx    `cbor:"3,keyasint"`
	}
	wireCtx struct {
		VV    []wireDot `cbor:"1,keyasint,omitempty"` // replica, prefix length
		Cloud []wireDot `cbor:"2,keyasint,omitempty"`
	}
	wireValue struct {
		Type     Type          `cbor:"1,keyasint"`
		Dots     []wireDot     `cbor:"2,keyasint,omitempty"` // EWFlag
		Counts   []wireCount   `cbor:"3,keyasint,omitempty"` // GCounter
		PN       []wirePN      `cbor:"4,keyasint,omitempty"` // PNCounter
		LWW      []wireLWW     `cbor:"5,keyasint,omitempty"` // LWWRegister
		MV       []wireMV      `cbor:"6,keyasint,omitempty"` // MVRegister
		Elems    []wireElem    `cbor:"7,keyasint,omitempty"` // AWSet
		Readings []wireReading `cbor:"8,keyasint,omitempty"` // ReadingSet
		Fields   []wireField   `cbor:"9,keyasint,omitempty"` // ORMap
	}
	wireDot struct {
		_ struct{} `cbor:",toarray"`
		R ReplicaID
		S Seq
	}
	wireCount struct {
		_ struct{} `cbor:",toarray"`
		R ReplicaID
		S Seq
		N uint64
	}
	wirePN struct {
		_   struct{} `cbor:",toarray"`
		R   ReplicaID
		S   Seq
		Inc uint64
		Dec uint64
	}
	wireLWW struct {
		_       struct{} `cbor:",toarray"`
		R       ReplicaID
		S       Seq
		Wall    int64
		Logical uint32
		V       []byte
	}
	wireMV struct {
		_ struct{} `cbor:",toarray"`
		R ReplicaID
		S Seq
		V []byte
	}
	wireReading struct {
		_     struct{} `cbor:",toarray"`
		R     ReplicaID
		S     Seq
		Time  int64
		Value float64
		Flags ReadingFlags
	}
	wireElem struct {
		_    struct{} `cbor:",toarray"`
		E    string
		Dots []wireDot
	}
	wireField struct {
		_     struct{} `cbor:",toarray"`
		Name  string
		Value wireValue
	}
)

// MarshalCBOR encodes x deterministically: equal states encode to equal
// bytes.
func (x Causal) MarshalCBOR() ([]byte, error) {
	w := wireCausal{Version: FormatVersion, Ctx: ctxToWire(&x.Ctx)}
	if x.Value != nil {
		v := valueToWire(x.Value)
		w.Value = &v
	}
	return encMode.Marshal(w)
}

// UnmarshalCBOR decodes and validates an encoding made by MarshalCBOR.
// Errors wrap ErrDecode or ErrVersion.
func (x *Causal) UnmarshalCBOR(b []byte) error {
	if len(b) > MaxEncodedBytes {
		return fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrDecode, len(b), MaxEncodedBytes)
	}
	var w wireCausal
	if err := cborcheck.Unmarshal(decMode, b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	c, err := w.causal(0, 0, 0)
	if err != nil {
		return err
	}
	*x = c
	return nil
}

// causal validates w and returns the state it encodes, with origin's dots
// first…last added to its context (none when origin is 0).
func (w *wireCausal) causal(origin ReplicaID, first, last Seq) (Causal, error) {
	if w.Version > FormatVersion {
		return Causal{}, fmt.Errorf("%w: version %d, this build reads up to %d", ErrVersion, w.Version, FormatVersion)
	}
	ctx, err := ctxFromWire(w.Ctx)
	if err != nil {
		return Causal{}, err
	}
	if origin != 0 {
		ctx.AddRange(origin, first, last)
	}
	var v Value
	if w.Value != nil {
		if v, err = valueFromWire(w.Value); err != nil {
			return Causal{}, err
		}
		// A value's dots are always in its own context; one outside it would
		// let a peer plant dots the local replica has not accounted for.
		var stray *Dot
		v.eachDot(func(d Dot) {
			if stray == nil && !ctx.Contains(d) {
				stray = &d
			}
		})
		if stray != nil {
			return Causal{}, fmt.Errorf("%w: dot %s is not in the context", ErrDecode, *stray)
		}
	}
	return Causal{Value: v, Ctx: ctx}, nil
}

// MarshalCBOR encodes c deterministically.
func (c Context) MarshalCBOR() ([]byte, error) { return encMode.Marshal(ctxToWire(&c)) }

// UnmarshalCBOR decodes and validates an encoding made by MarshalCBOR.
func (c *Context) UnmarshalCBOR(b []byte) error {
	if len(b) > MaxEncodedBytes {
		return fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrDecode, len(b), MaxEncodedBytes)
	}
	var w wireCtx
	if err := cborcheck.Unmarshal(decMode, b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	ctx, err := ctxFromWire(w)
	if err != nil {
		return err
	}
	*c = ctx
	return nil
}

func ctxToWire(c *Context) wireCtx {
	var w wireCtx
	for _, r := range c.vv.Replicas() {
		w.VV = append(w.VV, wireDot{R: r, S: c.vv[r]})
	}
	for _, d := range c.Cloud() {
		w.Cloud = append(w.Cloud, wireDot{R: d.Replica, S: d.Seq})
	}
	return w
}

func ctxFromWire(w wireCtx) (Context, error) {
	var c Context
	for _, e := range w.VV {
		if e.R == 0 || e.S > MaxSeq {
			return Context{}, fmt.Errorf("%w: context: invalid entry %s:%d", ErrDecode, e.R, e.S)
		}
		if c.vv[e.R] != 0 {
			return Context{}, fmt.Errorf("%w: context: replica %s listed twice", ErrDecode, e.R)
		}
		c.AddRange(e.R, 1, e.S)
	}
	for _, e := range w.Cloud {
		d := Dot{Replica: e.R, Seq: e.S}
		if !d.valid() {
			return Context{}, fmt.Errorf("%w: context: invalid dot %s", ErrDecode, d)
		}
		c.Add(d)
	}
	return c, nil
}

func valueToWire(v Value) wireValue {
	w := wireValue{Type: v.Type()}
	switch v := v.(type) {
	case *EWFlag:
		w.Dots = dotsToWire(v.dots)
	case *GCounter:
		w.Counts = funToWire(v.entries, func(d Dot, n uint64) wireCount { return wireCount{R: d.Replica, S: d.Seq, N: n} })
	case *PNCounter:
		w.PN = funToWire(v.entries, func(d Dot, e PN) wirePN { return wirePN{R: d.Replica, S: d.Seq, Inc: e.Inc, Dec: e.Dec} })
	case *LWWRegister:
		w.LWW = funToWire(v.entries, func(d Dot, e Stamped) wireLWW {
			return wireLWW{R: d.Replica, S: d.Seq, Wall: e.Time.Wall, Logical: e.Time.Logical, V: e.Value}
		})
	case *MVRegister:
		w.MV = funToWire(v.entries, func(d Dot, b []byte) wireMV { return wireMV{R: d.Replica, S: d.Seq, V: b} })
	case *ReadingSet:
		w.Readings = funToWire(v.entries, func(d Dot, r Reading) wireReading {
			return wireReading{R: d.Replica, S: d.Seq, Time: r.Time, Value: r.Value, Flags: r.Flags}
		})
	case *AWSet:
		es := make([]string, 0, len(v.elems))
		for e := range v.elems {
			es = append(es, e)
		}
		slices.Sort(es)
		w.Elems = make([]wireElem, len(es))
		for i, e := range es {
			w.Elems[i] = wireElem{E: e, Dots: dotsToWire(v.elems[e])}
		}
	case *ORMap:
		fs := v.Fields()
		w.Fields = make([]wireField, len(fs))
		for i, f := range fs {
			w.Fields[i] = wireField{Name: f.Name, Value: valueToWire(v.fields[f])}
		}
	}
	return w
}

func valueFromWire(w *wireValue) (Value, error) {
	var err error
	switch w.Type {
	case TypeEWFlag:
		f := new(EWFlag)
		f.dots, err = dotsFromWire(w.Dots)
		return f, err
	case TypeGCounter:
		c := new(GCounter)
		c.entries, err = funFromWire(w.Counts, func(e wireCount) (Dot, uint64, error) { return Dot{e.R, e.S}, e.N, nil })
		return c, err
	case TypePNCounter:
		c := new(PNCounter)
		c.entries, err = funFromWire(w.PN, func(e wirePN) (Dot, PN, error) { return Dot{e.R, e.S}, PN{Inc: e.Inc, Dec: e.Dec}, nil })
		return c, err
	case TypeLWWRegister:
		r := new(LWWRegister)
		r.entries, err = funFromWire(w.LWW, func(e wireLWW) (Dot, Stamped, error) {
			return Dot{e.R, e.S}, Stamped{Time: Timestamp{Wall: e.Wall, Logical: e.Logical}, Value: e.V}, nil
		})
		return r, err
	case TypeMVRegister:
		r := new(MVRegister)
		r.entries, err = funFromWire(w.MV, func(e wireMV) (Dot, []byte, error) { return Dot{e.R, e.S}, e.V, nil })
		return r, err
	case TypeReadingSet:
		s := new(ReadingSet)
		s.entries, err = funFromWire(w.Readings, func(e wireReading) (Dot, Reading, error) {
			r := Reading{Time: e.Time, Value: e.Value, Flags: e.Flags}
			return Dot{e.R, e.S}, r, r.validate()
		})
		return s, err
	case TypeAWSet:
		s := &AWSet{elems: make(DotMap[string, DotSet], len(w.Elems))}
		for _, e := range w.Elems {
			if _, dup := s.elems[e.E]; dup {
				return nil, fmt.Errorf("%w: set: element %q listed twice", ErrDecode, e.E)
			}
			if s.elems[e.E], err = dotsFromWire(e.Dots); err != nil {
				return nil, err
			}
		}
		return s, nil
	case TypeORMap:
		m := &ORMap{fields: make(DotMap[Field, Value], len(w.Fields))}
		for i := range w.Fields {
			wf := &w.Fields[i]
			f := Field{Name: wf.Name, Type: wf.Value.Type}
			if _, dup := m.fields[f]; dup {
				return nil, fmt.Errorf("%w: map: field %s listed twice", ErrDecode, f)
			}
			v, err := valueFromWire(&wf.Value)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f, err)
			}
			m.fields[f] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: %w %d", ErrDecode, ErrUnknownType, uint8(w.Type))
}

func dotsToWire(s DotSet) []wireDot {
	w := make([]wireDot, len(s))
	for i, d := range s {
		w[i] = wireDot{R: d.Replica, S: d.Seq}
	}
	return w
}

func dotsFromWire(w []wireDot) (DotSet, error) {
	s := make(DotSet, len(w))
	for i, e := range w {
		if s[i] = (Dot{e.R, e.S}); !s[i].valid() {
			return nil, fmt.Errorf("%w: invalid dot %s", ErrDecode, s[i])
		}
	}
	slices.SortFunc(s, Dot.Compare)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return nil, fmt.Errorf("%w: dot %s listed twice", ErrDecode, s[i])
		}
	}
	return s, nil
}

// funToWire lists the entries of a DotFun in dot order.
func funToWire[V, W any](f DotFun[V], conv func(Dot, V) W) []W {
	ds := f.sorted()
	w := make([]W, len(ds))
	for i, d := range ds {
		w[i] = conv(d, f[d])
	}
	return w
}

// funFromWire rebuilds a DotFun, refusing invalid and duplicate dots.
func funFromWire[V, W any](w []W, conv func(W) (Dot, V, error)) (DotFun[V], error) {
	f := make(DotFun[V], len(w))
	for _, e := range w {
		d, v, err := conv(e)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: entry %s: %w", ErrDecode, d, err)
		case !d.valid():
			return nil, fmt.Errorf("%w: invalid dot %s", ErrDecode, d)
		}
		if _, dup := f[d]; dup {
			return nil, fmt.Errorf("%w: dot %s listed twice", ErrDecode, d)
		}
		f[d] = v
	}
	return f, nil
}

// MarshalValue encodes a value without a context, for stores that keep
// the context apart. Equal values encode to equal bytes.
func MarshalValue(v Value) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: nil value", ErrDecode)
	}
	return encMode.Marshal(valueToWire(v))
}

// UnmarshalValue decodes and validates an encoding made by MarshalValue.
// It cannot check the value's dots against a context; the caller owns that.
func UnmarshalValue(b []byte) (Value, error) {
	if len(b) > MaxEncodedBytes {
		return nil, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrDecode, len(b), MaxEncodedBytes)
	}
	var w wireValue
	if err := cborcheck.Unmarshal(decMode, b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return valueFromWire(&w)
}

// MarshalCBORRelative encodes x as MarshalCBOR does, in the form of a
// delta of origin's dots first…last, for a message that names them: origin's
// replica ID is written as 0 (no replica has ID 0), and origin's dots first…
// last are left out of the context's out-of-order dots. x's context must
// hold them all, and they are at most MaxRelativeDots.
func (x Causal) MarshalCBORRelative(origin ReplicaID, first, last Seq) ([]byte, error) {
	if origin == 0 || first == 0 || last < first || last-first >= MaxRelativeDots || !x.Ctx.ContainsRange(origin, first, last) {
		return nil, fmt.Errorf("%w: relative to %s:%d-%d, which the context does not hold (or more than %d dots)", ErrDecode, origin, first, last, MaxRelativeDots)
	}
	w := wireCausal{Version: FormatVersion, Ctx: ctxToWire(&x.Ctx)}
	if x.Value != nil {
		v := valueToWire(x.Value)
		w.Value = &v
	}
	cloud := w.Ctx.Cloud[:0]
	for _, d := range w.Ctx.Cloud {
		if d.R != origin || d.S < first || d.S > last {
			cloud = append(cloud, d)
		}
	}
	w.Ctx.Cloud = cloud
	w.eachReplica(func(r *ReplicaID) {
		if *r == origin {
			*r = 0
		}
	})
	return encMode.Marshal(w)
}

// UnmarshalCBORRelative decodes what MarshalCBORRelative wrote for the same
// origin and dots, and validates it as UnmarshalCBOR does.
func (x *Causal) UnmarshalCBORRelative(b []byte, origin ReplicaID, first, last Seq) error {
	if origin == 0 || first == 0 || last < first || last > MaxSeq || last-first >= MaxRelativeDots {
		return fmt.Errorf("%w: relative to %s:%d-%d (at most %d dots)", ErrDecode, origin, first, last, MaxRelativeDots)
	}
	if len(b) > MaxEncodedBytes {
		return fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrDecode, len(b), MaxEncodedBytes)
	}
	var w wireCausal
	if err := cborcheck.Unmarshal(decMode, b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	w.eachReplica(func(r *ReplicaID) {
		if *r == 0 {
			*r = origin
		}
	})
	c, err := w.causal(origin, first, last)
	if err != nil {
		return err
	}
	*x = c
	return nil
}

// eachReplica calls f with every replica ID of w: its context's and its
// value's dots.
func (w *wireCausal) eachReplica(f func(*ReplicaID)) {
	for i := range w.Ctx.VV {
		f(&w.Ctx.VV[i].R)
	}
	for i := range w.Ctx.Cloud {
		f(&w.Ctx.Cloud[i].R)
	}
	if w.Value != nil {
		w.Value.eachReplica(f)
	}
}

func (w *wireValue) eachReplica(f func(*ReplicaID)) {
	eachOf(w.Dots, func(e *wireDot) *ReplicaID { return &e.R }, f)
	eachOf(w.Counts, func(e *wireCount) *ReplicaID { return &e.R }, f)
	eachOf(w.PN, func(e *wirePN) *ReplicaID { return &e.R }, f)
	eachOf(w.LWW, func(e *wireLWW) *ReplicaID { return &e.R }, f)
	eachOf(w.MV, func(e *wireMV) *ReplicaID { return &e.R }, f)
	eachOf(w.Readings, func(e *wireReading) *ReplicaID { return &e.R }, f)
	for i := range w.Elems {
		eachOf(w.Elems[i].Dots, func(e *wireDot) *ReplicaID { return &e.R }, f)
	}
	for i := range w.Fields {
		w.Fields[i].Value.eachReplica(f)
	}
}

// eachOf calls f with the replica ID of each entry of es, as replica
// returns it.
func eachOf[E any](es []E, replica func(*E) *ReplicaID, f func(*ReplicaID)) {
	for i := range es {
		f(replica(&es[i]))
	}
}
