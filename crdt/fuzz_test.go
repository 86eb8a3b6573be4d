package crdt_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// Fuzz targets for the decoders and the merges behind them. Decoding is the
// boundary where a buggy or hostile peer's bytes enter a node, so the
// properties are those a node relies on: no panic, no hang, no unbounded
// allocation, errors that wrap the documented sentinels, a canonical
// encoding, and decoded values that merge like any other.
//
// Run one target at a time, for example:
//
//	go test ./crdt -run '^$' -fuzz '^FuzzDecodeCausal$' -fuzztime 60s
//
// Inputs the fuzzer finds failing are kept in testdata/fuzz/<FuzzName>/ and
// run by plain go test from then on.

// Replica IDs of the seeds. edged derives IDs from public keys, so real ones
// use all 64 bits; one small ID keeps the short CBOR integer forms covered.
const (
	fzA crdt.ReplicaID = 0x9f3a5c7e12b4d681
	fzB crdt.ReplicaID = 0x2
	fzC crdt.ReplicaID = 0x7fffffffffffffff
)

// fzDeadline bounds each merge of a decoded value. Real merges of fuzz-sized
// inputs take microseconds; the bound is loose so a loaded machine never
// trips it, and tight enough that a hang fails the input instead of the
// fuzzing run.
const fzDeadline = 10 * time.Second

var fzEnc = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// fzCBOR encodes a hand-written wire form.
func fzCBOR(v any) []byte {
	b, err := fzEnc.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fzReplica is a replica in the seed scenarios.
type fzReplica struct {
	tb testing.TB
	id crdt.ReplicaID
	x  crdt.Causal
}

func (r *fzReplica) gen() *crdt.DotGen { return crdt.NewDotGen(&r.x.Ctx, r.id) }

// cur returns the replica's value, or the empty value of typ.
func (r *fzReplica) cur(typ crdt.Type) crdt.Value {
	r.tb.Helper()
	if r.x.Value != nil {
		return r.x.Value
	}
	v, err := crdt.New(typ)
	if err != nil {
		r.tb.Fatal(err)
	}
	return v
}

// do applies a delta made at r to r and returns it for shipping.
func (r *fzReplica) do(d crdt.Causal, err error) crdt.Causal {
	r.tb.Helper()
	if err != nil {
		r.tb.Fatal(err)
	}
	if err := r.x.Apply(d); err != nil {
		r.tb.Fatal(err)
	}
	return d
}

func (r *fzReplica) apply(ds ...crdt.Causal) {
	r.tb.Helper()
	for _, d := range ds {
		if err := r.x.Apply(d); err != nil {
			r.tb.Fatal(err)
		}
	}
}

// fzUpdate returns the delta that applies op to field f of r's map.
func fzUpdate(r *fzReplica, f crdt.Field, op func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error)) (crdt.Causal, error) {
	g := r.gen()
	return r.cur(crdt.TypeORMap).(*crdt.ORMap).Update(f, func(v crdt.Value) (crdt.Causal, error) { return op(g, v) })
}

// fzSample is a state or delta of the seed scenarios.
type fzSample struct {
	name string
	x    crdt.Causal
}

// fzSamples returns real states and deltas of every type: concurrent
// entries, removals, contexts with gaps, type conflicts and nested maps. The
// last sample of each type is a state with several entries (a "resident").
func fzSamples(tb testing.TB) []fzSample {
	tb.Helper()
	var out []fzSample
	add := func(name string, x crdt.Causal) { out = append(out, fzSample{name, x.Clone()}) }
	fresh := func() (*fzReplica, *fzReplica, *fzReplica) {
		return &fzReplica{tb: tb, id: fzA}, &fzReplica{tb: tb, id: fzB}, &fzReplica{tb: tb, id: fzC}
	}
	ts := func(wall int64, logical uint32) crdt.Timestamp {
		return crdt.Timestamp{Wall: wall, Logical: logical}
	}

	{ // EWFlag: concurrent enables, then a disable that saw both.
		a, b, _ := fresh()
		e1 := a.do(a.cur(crdt.TypeEWFlag).(*crdt.EWFlag).Enable(a.gen()), nil)
		e2 := b.do(b.cur(crdt.TypeEWFlag).(*crdt.EWFlag).Enable(b.gen()), nil)
		a.apply(e2)
		add("flag enable delta", e1)
		add("flag state", a.x)
		add("flag disable delta", a.do(a.cur(crdt.TypeEWFlag).(*crdt.EWFlag).Disable(), nil))
		b.apply(a.do(a.cur(crdt.TypeEWFlag).(*crdt.EWFlag).Enable(a.gen()), nil))
		add("flag resident", b.x)
	}
	{ // GCounter: three replicas, two increments at one of them.
		a, b, c := fresh()
		a.do(a.cur(crdt.TypeGCounter).(*crdt.GCounter).Inc(a.gen(), 5))
		add("gcounter inc delta", a.do(a.cur(crdt.TypeGCounter).(*crdt.GCounter).Inc(a.gen(), 1<<40)))
		b.do(b.cur(crdt.TypeGCounter).(*crdt.GCounter).Inc(b.gen(), 7))
		c.do(c.cur(crdt.TypeGCounter).(*crdt.GCounter).Inc(c.gen(), math.MaxUint64-1))
		a.apply(b.x, c.x)
		add("gcounter resident", a.x)
	}
	{ // PNCounter: increments and decrements, including the extremes.
		a, b, c := fresh()
		add("pncounter dec delta", a.do(a.cur(crdt.TypePNCounter).(*crdt.PNCounter).Add(a.gen(), -3)))
		b.do(b.cur(crdt.TypePNCounter).(*crdt.PNCounter).Add(b.gen(), 10))
		c.do(c.cur(crdt.TypePNCounter).(*crdt.PNCounter).Add(c.gen(), math.MinInt64))
		c.do(c.cur(crdt.TypePNCounter).(*crdt.PNCounter).Add(c.gen(), math.MaxInt64))
		a.apply(b.x, c.x)
		add("pncounter resident", a.x)
	}
	{ // LWWRegister: concurrent writes tied on time, then an overwrite.
		a, b, c := fresh()
		w1 := a.do(a.cur(crdt.TypeLWWRegister).(*crdt.LWWRegister).Set(a.gen(), ts(1_700_000_000_000_000_000, 0), []byte("on")), nil)
		b.do(b.cur(crdt.TypeLWWRegister).(*crdt.LWWRegister).Set(b.gen(), ts(1_700_000_000_000_000_000, 0), []byte("off")), nil)
		c.do(c.cur(crdt.TypeLWWRegister).(*crdt.LWWRegister).Set(c.gen(), ts(-1, math.MaxUint32), nil), nil)
		add("lww set delta", w1)
		a.apply(b.x)
		add("lww concurrent state", a.x)
		add("lww overwrite delta", a.do(a.cur(crdt.TypeLWWRegister).(*crdt.LWWRegister).Set(a.gen(), ts(1_700_000_000_000_000_001, 3), []byte("auto")), nil))
		b.apply(c.x)
		a.apply(b.x)
		add("lww resident", a.x)
	}
	{ // MVRegister: concurrent writes are kept, a later write replaces them.
		a, b, c := fresh()
		add("mv set delta", a.do(a.cur(crdt.TypeMVRegister).(*crdt.MVRegister).Set(a.gen(), []byte("v1")), nil))
		b.do(b.cur(crdt.TypeMVRegister).(*crdt.MVRegister).Set(b.gen(), []byte{0, 0xff}), nil)
		a.apply(b.x)
		add("mv overwrite delta", a.do(a.cur(crdt.TypeMVRegister).(*crdt.MVRegister).Set(a.gen(), []byte("v2")), nil))
		c.do(c.cur(crdt.TypeMVRegister).(*crdt.MVRegister).Set(c.gen(), []byte("")), nil)
		b.do(b.cur(crdt.TypeMVRegister).(*crdt.MVRegister).Set(b.gen(), []byte("v3")), nil)
		a.apply(b.x, c.x)
		add("mv resident", a.x)
	}
	{ // AWSet: adds, an observed remove, and a state with a gap.
		a, b, c := fresh()
		add("set add delta", a.do(a.cur(crdt.TypeAWSet).(*crdt.AWSet).Add(a.gen(), "x", "y"), nil))
		b.do(b.cur(crdt.TypeAWSet).(*crdt.AWSet).Add(b.gen(), "y", "z", ""), nil)
		add("set remove delta", a.do(a.cur(crdt.TypeAWSet).(*crdt.AWSet).Remove("y", "absent"), nil))
		late := a.do(a.cur(crdt.TypeAWSet).(*crdt.AWSet).Add(a.gen(), "w", "\u00e9t\u00e9"), nil)
		c.apply(late) // c missed a's earlier deltas: its context has a gap
		add("set state with gap", c.x)
		a.apply(b.x, c.x)
		add("set resident", a.x)
	}
	{ // ReadingSet: readings with flags, extremes and negative zero.
		a, b, _ := fresh()
		add("readings add delta", a.do(a.cur(crdt.TypeReadingSet).(*crdt.ReadingSet).Add(a.gen(),
			crdt.Reading{Time: 1_700_000_000_000_000_000, Value: 21.5},
			crdt.Reading{Time: 3, Value: math.Copysign(0, -1), Flags: crdt.FlagClockUnsynced})))
		b.do(b.cur(crdt.TypeReadingSet).(*crdt.ReadingSet).Add(b.gen(),
			crdt.Reading{Time: math.MinInt64, Value: math.MaxFloat64},
			crdt.Reading{Time: math.MaxInt64, Value: math.SmallestNonzeroFloat64, Flags: 0xff}))
		a.apply(b.x)
		add("readings resident", a.x)
	}
	{ // ORMap: fields of several types, a type conflict, nested maps,
		// removals of a plain and of a nested field.
		a, b, _ := fresh()
		mv := crdt.Field{Name: "temp", Type: crdt.TypeMVRegister}
		add("map update delta", a.do(fzUpdate(a, mv, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.MVRegister).Set(g, []byte("21.5")), nil
		})))
		a.do(fzUpdate(a, crdt.Field{Name: "count", Type: crdt.TypePNCounter}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.PNCounter).Add(g, 2)
		}))
		a.do(fzUpdate(a, crdt.Field{Name: "tags", Type: crdt.TypeAWSet}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.AWSet).Add(g, "indoor", "lab"), nil
		}))
		nested := a.do(fzUpdate(a, crdt.Field{Name: "cfg", Type: crdt.TypeORMap}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.ORMap).Update(crdt.Field{Name: "mode", Type: crdt.TypeLWWRegister}, func(v crdt.Value) (crdt.Causal, error) {
				return v.(*crdt.LWWRegister).Set(g, ts(42, 1), []byte("eco")), nil
			})
		}))
		add("map nested update delta", nested)
		add("map deeply nested delta", a.do(fzUpdate(a, crdt.Field{Name: "deep", Type: crdt.TypeORMap}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return fzNest(v.(*crdt.ORMap), g, 7)
		})))
		b.do(fzUpdate(b, crdt.Field{Name: "temp", Type: crdt.TypeGCounter}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.GCounter).Inc(g, 1)
		}))
		b.do(fzUpdate(b, crdt.Field{Name: "r", Type: crdt.TypeReadingSet}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.ReadingSet).Add(g, crdt.Reading{Time: 1, Value: 1})
		}))
		b.do(fzUpdate(b, crdt.Field{Name: "on", Type: crdt.TypeEWFlag}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.EWFlag).Enable(g), nil
		}))
		a.apply(b.x)
		add("map state with type conflict", a.x)
		add("map removal delta", a.do(a.cur(crdt.TypeORMap).(*crdt.ORMap).Remove("count"), nil))
		add("map nested removal delta", a.do(a.cur(crdt.TypeORMap).(*crdt.ORMap).Remove("cfg"), nil))
		var group crdt.Causal
		for _, s := range out[len(out)-2:] {
			if err := group.JoinDelta(s.x); err != nil {
				tb.Fatal(err)
			}
		}
		add("map delta group", group)
		add("map resident", a.x)
	}
	add("bottom", crdt.Causal{})
	return out
}

// fzNest returns the delta that sets a flag depth maps deep under m.
func fzNest(m *crdt.ORMap, g *crdt.DotGen, depth int) (crdt.Causal, error) {
	if depth == 0 {
		return m.Update(crdt.Field{Name: "leaf", Type: crdt.TypeEWFlag}, func(v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.EWFlag).Enable(g), nil
		})
	}
	return m.Update(crdt.Field{Name: "n", Type: crdt.TypeORMap}, func(v crdt.Value) (crdt.Causal, error) {
		return fzNest(v.(*crdt.ORMap), g, depth-1)
	})
}

// fzResidents returns the resident state of each type.
func fzResidents(tb testing.TB) map[crdt.Type]crdt.Causal {
	tb.Helper()
	rs := map[crdt.Type]crdt.Causal{}
	for _, s := range fzSamples(tb) {
		if s.x.Value != nil {
			rs[s.x.Value.Type()] = s.x // the last of each type
		}
	}
	return rs
}

// fzHostileCausals are hand-written encodings a hostile or broken peer might
// send: huge declared lengths, deep nesting, unknown types and versions,
// values outside their context and other invalid content.
func fzHostileCausals() [][]byte {
	deep := map[int]any{1: int(crdt.TypeEWFlag)}
	for range 40 {
		deep = map[int]any{1: int(crdt.TypeORMap), 9: []any{[]any{"n", deep}}}
	}
	ctx := map[int]any{1: []any{[]any{uint64(fzA), 3}}}
	causal := func(version int, value any, ctx any) []byte {
		m := map[int]any{1: version, 3: ctx}
		if value != nil {
			m[2] = value
		}
		return fzCBOR(m)
	}
	return [][]byte{
		{},
		{0x00},
		{0xf6}, // null
		// Arrays and maps declaring 2^64-1 and 2^32 items, bare and in place.
		{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
		{0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
		{0xa2, 0x01, 0x01, 0x03, 0xa1, 0x01, 0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
		{0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x08, 0x09, 0x9a, 0xff, 0xff, 0xff, 0xff},
		{0xa3, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x06, 0x07, 0x81, 0x82, 0x61, 0x78, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0xa0},
		{0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, // byte string of 2^32 bytes
		// Nesting: plain arrays, and maps nested far beyond the limit.
		append(bytes.Repeat([]byte{0x81}, 1000), 0x00),
		causal(1, deep, ctx),
		// Indefinite lengths and tags are forbidden.
		{0xbf, 0x01, 0x01, 0x03, 0xa0, 0xff},
		{0xa2, 0x01, 0x01, 0x03, 0xa1, 0x01, 0x9f, 0x82, 0x01, 0x01, 0xff},
		{0xc1, 0xa2, 0x01, 0x01, 0x03, 0xa0},
		// Duplicate keys.
		{0xa3, 0x01, 0x01, 0x01, 0x01, 0x03, 0xa0},
		// Versions: a newer one, with and without a value; a negative one.
		causal(99, nil, map[int]any{}),
		causal(99, map[int]any{1: 42}, ctx),
		causal(-1, nil, map[int]any{}),
		// Types: unknown, invalid and out of range.
		causal(1, map[int]any{1: 42}, ctx),
		causal(1, map[int]any{1: 0}, ctx),
		causal(1, map[int]any{1: 300}, ctx),
		// A value whose dots are not in the context.
		causal(1, map[int]any{1: int(crdt.TypeEWFlag), 2: []any{[]any{uint64(fzA), 4}}}, ctx),
		// Invalid dots, duplicates, replica 0, a NaN reading.
		causal(1, map[int]any{1: int(crdt.TypeEWFlag), 2: []any{[]any{uint64(fzA), 0}}}, ctx),
		causal(1, map[int]any{1: int(crdt.TypeEWFlag), 2: []any{[]any{uint64(fzA), 1}, []any{uint64(fzA), 1}}}, ctx),
		causal(1, nil, map[int]any{1: []any{[]any{0, 3}}}),
		causal(1, nil, map[int]any{1: []any{[]any{1, 3}, []any{1, 4}}}),
		causal(1, map[int]any{1: int(crdt.TypeReadingSet), 8: []any{[]any{uint64(fzA), 1, 0, math.NaN(), 0}}}, ctx),
		causal(1, map[int]any{1: int(crdt.TypeAWSet), 7: []any{[]any{"x", []any{}}, []any{"x", []any{}}}}, ctx),
		causal(1, map[int]any{1: int(crdt.TypeORMap), 9: []any{
			[]any{"f", map[int]any{1: int(crdt.TypeEWFlag)}}, []any{"f", map[int]any{1: int(crdt.TypeEWFlag)}}}}, ctx),
		// Invalid UTF-8 in an element.
		causal(1, map[int]any{1: int(crdt.TypeAWSet), 7: []any{[]any{string([]byte{0xff, 0xfe}), []any{}}}}, ctx),
		// Wrong shapes: a tuple too short, a string where a number goes.
		causal(1, map[int]any{1: int(crdt.TypeGCounter), 3: []any{[]any{uint64(fzA), 1}}}, ctx),
		causal(1, nil, map[int]any{1: []any{[]any{"a", 3}}}),
		// Unknown keys are ignored; entries of other types' keys too.
		fzCBOR(map[int]any{1: 1, 3: map[int]any{}, 77: "future"}),
		causal(1, map[int]any{1: int(crdt.TypeEWFlag), 3: []any{[]any{uint64(fzA), 1, 1}}}, ctx),
		// Boundary sequence numbers.
		causal(1, map[int]any{1: int(crdt.TypeGCounter), 3: []any{[]any{uint64(fzA), uint64(math.MaxUint64), 1}}},
			map[int]any{1: []any{[]any{uint64(fzA), uint64(math.MaxUint64)}}}),
		causal(1, nil, map[int]any{1: []any{[]any{uint64(fzA), uint64(math.MaxUint64)}, []any{1, uint64(1) << 63}},
			2: []any{[]any{2, uint64(math.MaxUint64)}}}),
		// Non-canonical but valid: a float where an integer fits, a long
		// integer form, an empty value list.
		causal(1, map[int]any{1: int(crdt.TypeReadingSet), 8: []any{[]any{uint64(fzA), 1, 0, 1.0, 0}}}, ctx),
		{0xa2, 0x01, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0xa0},
		causal(1, map[int]any{1: int(crdt.TypeAWSet), 7: []any{}}, ctx),
	}
}

// fzErrOK reports whether a decoding error wraps a documented sentinel.
func fzErrOK(err error) bool {
	return errors.Is(err, crdt.ErrDecode) || errors.Is(err, crdt.ErrVersion)
}

func fzEncode(tb testing.TB, x crdt.Causal) []byte {
	tb.Helper()
	b, err := x.MarshalCBOR()
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return b
}

// fzWithin runs f on its own goroutine and fails t if f fails or has not
// returned after fzDeadline. A hung f keeps spinning until the test binary
// exits; that is the price of reporting the input instead of hanging. f
// reports failures through rec (as a testing.TB: only Helper, Fatal and
// Fatalf) or its result, and names what it is doing with rec.Step so that
// a hang report says where it hung.
func fzWithin(t *testing.T, what string, f func(rec *fzRecorder) error) {
	t.Helper()
	done := make(chan error, 1)
	rec := new(fzRecorder)
	go func() {
		defer func() {
			if rec.err != nil { // f called Fatal: runtime.Goexit
				done <- rec.err
			}
		}()
		done <- f(rec)
	}()
	timer := time.NewTimer(fzDeadline)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-timer.C:
		step, _ := rec.step.Load().(string)
		t.Fatalf("%s: did not return within %s (hang) in: %s", what, fzDeadline, step)
	}
}

// fzRecorder is the testing.TB of code running on fzWithin's goroutine,
// where t.Fatal must not be called: Fatal records the failure and ends the
// goroutine, and the test goroutine reports it.
type fzRecorder struct {
	testing.TB // nil: only the methods below may be called
	err        error
	step       atomic.Value // string
}

// Step records what f is doing now.
func (r *fzRecorder) Step(format string, args ...any) { r.step.Store(fmt.Sprintf(format, args...)) }

func (r *fzRecorder) Helper() {}

func (r *fzRecorder) Fatal(args ...any) {
	r.err = errors.New(fmt.Sprint(args...))
	runtime.Goexit()
}

func (r *fzRecorder) Fatalf(format string, args ...any) {
	r.err = fmt.Errorf(format, args...)
	runtime.Goexit()
}

// FuzzDecodeCausal: decoding arbitrary bytes never panics, fails only with
// ErrDecode or ErrVersion, and what it accepts re-encodes canonically and
// merges (Join, Apply, JoinDelta) into an empty state, a copy of itself and
// a populated state of its type, each result being a valid state again.
func FuzzDecodeCausal(f *testing.F) {
	for _, s := range fzSamples(f) {
		b := fzEncode(f, s.x)
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
	}
	for _, b := range fzHostileCausals() {
		f.Add(b)
	}
	residents := fzResidents(f)

	f.Fuzz(func(t *testing.T, b []byte) {
		var x crdt.Causal
		if err := x.UnmarshalCBOR(b); err != nil {
			if !fzErrOK(err) {
				t.Fatalf("error wraps neither ErrDecode nor ErrVersion: %v", err)
			}
			return
		}
		b1 := fzEncode(t, x)
		var y crdt.Causal
		if err := y.UnmarshalCBOR(b1); err != nil {
			t.Fatalf("decoding a re-encoding: %v\n%x", err, b1)
		}
		if b2 := fzEncode(t, y); !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not canonical after one round trip:\n first  %x\n second %x", b1, b2)
		}
		fzWithin(t, "merging the decoded value", func(rec *fzRecorder) error { return fzMerges(rec, x, residents) })
	})
}

// fzMerges merges x into several states with every merge and checks the
// results. It returns the first failure.
func fzMerges(rec *fzRecorder, x crdt.Causal, residents map[crdt.Type]crdt.Causal) error {
	targets := []fzSample{{"an empty state", crdt.Causal{}}, {"a copy of itself", x}}
	if x.Value != nil {
		if r, ok := residents[x.Value.Type()]; ok {
			targets = append(targets, fzSample{"a populated " + x.Value.Type().String(), r})
		}
	}
	merges := []struct {
		name string
		f    func(z *crdt.Causal, d crdt.Causal) error
	}{
		{"Join", (*crdt.Causal).Join},
		{"Apply", (*crdt.Causal).Apply},
		{"JoinDelta", (*crdt.Causal).JoinDelta},
	}
	for _, tg := range targets {
		for _, m := range merges {
			rec.Step("%s into %s", m.name, tg.name)
			z := tg.x.Clone()
			if err := m.f(&z, x); err != nil {
				return fmt.Errorf("%s into %s: %w", m.name, tg.name, err)
			}
			if err := fzValid(z); err != nil {
				return fmt.Errorf("%s into %s: result is not a valid state: %w", m.name, tg.name, err)
			}
		}
	}

	// Once joined into a state, joining or applying it again changes
	// nothing (idempotence).
	rec.Step("idempotence")
	var n crdt.Causal
	if err := n.Join(x); err != nil {
		return err
	}
	want, err := n.MarshalCBOR()
	if err != nil {
		return err
	}
	for _, m := range merges[:2] {
		z := n.Clone()
		if err := m.f(&z, n); err != nil {
			return fmt.Errorf("%s of a state into itself: %w", m.name, err)
		}
		got, err := z.MarshalCBOR()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s of a state into itself changed it:\n before %x\n after  %x", m.name, want, got)
		}
	}
	return nil
}

// fzValid checks that z encodes to bytes that decode: every dot of its
// value is valid, unique and in its context.
func fzValid(z crdt.Causal) error {
	b, err := z.MarshalCBOR()
	if err != nil {
		return err
	}
	var y crdt.Causal
	if err := y.UnmarshalCBOR(b); err != nil {
		return fmt.Errorf("%w\n%x", err, b)
	}
	return nil
}

// fzContexts returns real contexts, including clouds with gaps.
func fzContexts() []crdt.Context {
	var out []crdt.Context
	var c crdt.Context
	out = append(out, c.Clone())
	c.AddRange(fzA, 1, 1000)
	out = append(out, c.Clone())
	c.Add(crdt.Dot{Replica: fzB, Seq: 1})
	c.Add(crdt.Dot{Replica: fzB, Seq: 3})
	c.Add(crdt.Dot{Replica: fzB, Seq: 7})
	c.Add(crdt.Dot{Replica: fzC, Seq: math.MaxUint64})
	out = append(out, c.Clone())
	var gaps crdt.Context
	for _, s := range []crdt.Seq{5, 3, 9, 10, 1 << 40} {
		gaps.Add(crdt.Dot{Replica: fzA, Seq: s})
	}
	gaps.Add(crdt.Dot{Replica: 1, Seq: 2})
	out = append(out, gaps)
	return out
}

func fzEncodeCtx(tb testing.TB, c crdt.Context) []byte {
	tb.Helper()
	b, err := c.MarshalCBOR()
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return b
}

// fzCompact checks the documented invariant of a context: a dot is in the
// cloud only while a gap separates it from its replica's prefix.
func fzCompact(c *crdt.Context) error {
	vv := c.VersionVector()
	for _, d := range c.Cloud() {
		if d.Seq <= vv[d.Replica] || d.Seq == vv[d.Replica]+1 {
			return fmt.Errorf("cloud dot %s next to or inside the prefix %d", d, vv[d.Replica])
		}
	}
	return nil
}

// FuzzDecodeCausalRelative: decoding a relative encoding, relative to any
// replica and run of dots, never panics and fails only with ErrDecode; what
// it accepts holds the run in its context and round-trips, relative to the
// same run, to the same state.
func FuzzDecodeCausalRelative(f *testing.F) {
	for _, s := range fzSamples(f) {
		for _, r := range []crdt.ReplicaID{fzA, fzB, fzC} {
			if last := s.x.Ctx.Max(r); last > 0 {
				b, err := s.x.MarshalCBORRelative(r, last, last)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b, uint64(r), uint64(last), uint64(last))
				f.Add(b[:len(b)/2], uint64(r), uint64(last), uint64(last)+3)
			}
		}
		f.Add(fzEncode(f, s.x), uint64(fzA), uint64(1), uint64(crdt.MaxSeq))
	}
	f.Fuzz(func(t *testing.T, b []byte, origin, first, last uint64) {
		o, lo, hi := crdt.ReplicaID(origin), crdt.Seq(first), crdt.Seq(last)
		var x crdt.Causal
		if err := x.UnmarshalCBORRelative(b, o, lo, hi); err != nil {
			if !fzErrOK(err) {
				t.Fatalf("error wraps neither ErrDecode nor ErrVersion: %v", err)
			}
			return
		}
		if !x.Ctx.ContainsRange(o, lo, hi) {
			t.Fatalf("decoded context lacks %v:%d-%d", o, lo, hi)
		}
		b1, err := x.MarshalCBORRelative(o, lo, hi)
		if err != nil {
			t.Fatalf("re-encoding relative: %v", err)
		}
		var y crdt.Causal
		if err := y.UnmarshalCBORRelative(b1, o, lo, hi); err != nil {
			t.Fatalf("decoding a re-encoding: %v", err)
		}
		if !bytes.Equal(fzEncode(t, x), fzEncode(t, y)) {
			t.Fatal("relative round trip changed the state")
		}
	})
}

// FuzzDecodeContext: decoding a context never panics, fails only with
// ErrDecode, and what it accepts is compact, re-encodes canonically, and
// merges idempotently and commutatively.
func FuzzDecodeContext(f *testing.F) {
	ref := fzContexts()
	for _, c := range ref {
		b := fzEncodeCtx(f, c)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, b := range [][]byte{
		{},
		{0xf6},
		{0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
		{0xa1, 0x01, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0xa1, 0x02, 0x9a, 0xff, 0xff, 0xff, 0xff},
		append(bytes.Repeat([]byte{0xa1, 0x01, 0x81}, 200), 0x00),
		fzCBOR(map[int]any{1: []any{[]any{0, 1}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, 1}, []any{1, 2}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, 0}, []any{1, 2}}}),
		fzCBOR(map[int]any{2: []any{[]any{1, 0}}}),
		fzCBOR(map[int]any{2: []any{[]any{1, 2}, []any{1, 2}, []any{1, 1}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, 5}}, 2: []any{[]any{1, 3}, []any{1, 6}, []any{1, 8}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, uint64(math.MaxUint64)}}, 2: []any{[]any{1, 3}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, -1}}}),
		fzCBOR(map[int]any{1: []any{[]any{1, 2, 3}}, 9: "future"}),
	} {
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		var c crdt.Context
		if err := c.UnmarshalCBOR(b); err != nil {
			if !fzErrOK(err) {
				t.Fatalf("error wraps neither ErrDecode nor ErrVersion: %v", err)
			}
			return
		}
		if err := fzCompact(&c); err != nil {
			t.Fatalf("decoded context not compact: %v", err)
		}
		b1 := fzEncodeCtx(t, c)
		var d crdt.Context
		if err := d.UnmarshalCBOR(b1); err != nil {
			t.Fatalf("decoding a re-encoding: %v\n%x", err, b1)
		}
		if b2 := fzEncodeCtx(t, d); !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not canonical after one round trip:\n first  %x\n second %x", b1, b2)
		}
		if !c.Equal(&d) || !d.Equal(&c) {
			t.Fatalf("round trip changed the context: %x", b1)
		}

		before := c.Clone()
		c.Merge(&c)
		if !c.Equal(&before) {
			t.Fatalf("c.Merge(c) changed c: %x", b1)
		}
		cl := c.Clone()
		c.Merge(&cl)
		if !c.Equal(&before) {
			t.Fatalf("c.Merge(copy of c) changed c: %x", b1)
		}

		for _, r := range ref {
			cr, rc := c.Clone(), r.Clone()
			cr.Merge(&r)
			rc.Merge(&c)
			if !cr.Equal(&rc) || !bytes.Equal(fzEncodeCtx(t, cr), fzEncodeCtx(t, rc)) {
				t.Fatalf("merge not commutative with %x:\n c+r %x\n r+c %x", fzEncodeCtx(t, r), fzEncodeCtx(t, cr), fzEncodeCtx(t, rc))
			}
			if err := fzCompact(&cr); err != nil {
				t.Fatalf("merged context not compact: %v", err)
			}
			for _, o := range []*crdt.Context{&c, &r} {
				for _, d := range o.Cloud() {
					if !cr.Contains(d) {
						t.Fatalf("merge lost cloud dot %s", d)
					}
				}
				for rep, s := range o.VersionVector() {
					if s > 0 && (!cr.Contains(crdt.Dot{Replica: rep, Seq: s}) || !cr.Contains(crdt.Dot{Replica: rep, Seq: 1})) {
						t.Fatalf("merge lost the prefix %s:1…%d", rep, s)
					}
				}
			}
		}
	})
}

// FuzzApplyOrder: the bytes drive operations, delta deliveries and joins on
// three replicas of an AWSet or an ORMap (with counter, register, set and
// nested map fields). Applying all deltas made in generation order, in
// reverse order, in an order drawn from the bytes, or as one delta group,
// and joining the replicas' states all give identical encodings.
func FuzzApplyOrder(f *testing.F) {
	f.Add([]byte{0, 0, 1, 3, 2, 4, 5, 6, 7, 1, 9, 2, 10, 0, 12, 1, 13, 2})
	f.Add([]byte{1, 0, 0, 1, 1, 2, 2, 15, 0, 3, 1, 16, 5, 4, 3, 17, 1, 9, 0, 5, 2, 6, 3, 8, 0, 14, 1})
	f.Add([]byte{1, 7, 0, 7, 1, 8, 2, 2, 3, 10, 0, 11, 1, 5, 2, 4, 0, 16, 2, 17, 0})
	f.Add(bytes.Repeat([]byte{1, 0, 1, 3, 2, 6}, 10))

	f.Fuzz(func(t *testing.T, prog []byte) {
		fzWithin(t, "running the program", func(rec *fzRecorder) error {
			fzApplyOrder(rec, prog)
			return nil
		})
	})
}

// fzApplyOrder runs the program prog of FuzzApplyOrder.
func fzApplyOrder(tb testing.TB, prog []byte) {
	if len(prog) == 0 {
		return
	}
	if len(prog) > 400 {
		prog = prog[:400] // bound the cost of one input
	}
	typ := crdt.TypeAWSet
	if prog[0]%2 == 1 {
		typ = crdt.TypeORMap
	}
	prog = prog[1:]
	rs := []*fzReplica{{tb: tb, id: fzA}, {tb: tb, id: fzB}, {tb: tb, id: fzC}}
	var deltas []crdt.Causal
	for i := 0; i+1 < len(prog); i += 2 {
		op, arg := prog[i], int(prog[i+1])
		r := rs[int(op)%len(rs)]
		var d crdt.Causal
		var err error
		switch op / 3 % 6 {
		case 0, 1, 2: // local operation
			d, err = fzOp(r, typ, op/3%3, arg)
		case 3: // deliver a delta
			if len(deltas) > 0 {
				r.apply(deltas[arg%len(deltas)])
			}
			continue
		case 4: // deliver a group of deltas
			var g crdt.Causal
			for j := range arg%4 + 1 {
				if len(deltas) > 0 {
					if err := g.JoinDelta(deltas[(arg+j*7)%len(deltas)]); err != nil {
						tb.Fatal(err)
					}
				}
			}
			r.apply(g)
			continue
		default: // join another replica's state
			if err := r.x.Join(rs[arg%len(rs)].x.Clone()); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err != nil {
			if errors.Is(err, crdt.ErrOverflow) {
				continue
			}
			tb.Fatal(err)
		}
		deltas = append(deltas, r.do(d, nil))
	}

	fold := func(order []int, merge func(*crdt.Causal, crdt.Causal) error) crdt.Causal {
		var x crdt.Causal
		for _, k := range order {
			if err := merge(&x, deltas[k]); err != nil {
				tb.Fatal(err)
			}
		}
		return x
	}
	n := len(deltas)
	forward, backward, drawn := make([]int, n), make([]int, n), make([]int, n)
	for k := range n {
		forward[k], backward[k], drawn[k] = k, n-1-k, k
	}
	for k := n - 1; k > 0; k-- { // a shuffle driven by the program
		j := int(prog[k%len(prog)]) % (k + 1)
		drawn[k], drawn[j] = drawn[j], drawn[k]
	}
	group := fold(backward, (*crdt.Causal).JoinDelta)
	var viaGroup crdt.Causal
	if err := viaGroup.Apply(group); err != nil {
		tb.Fatal(err)
	}
	var joined crdt.Causal
	for _, r := range rs {
		if err := joined.Join(r.x); err != nil {
			tb.Fatal(err)
		}
	}
	want := fzEncode(tb, fold(forward, (*crdt.Causal).Apply))
	for _, got := range []struct {
		name string
		x    crdt.Causal
	}{
		{"reverse order", fold(backward, (*crdt.Causal).Apply)},
		{"drawn order", fold(drawn, (*crdt.Causal).Apply)},
		{"drawn order, twice", fold(append(drawn, forward...), (*crdt.Causal).Apply)},
		{"one delta group", viaGroup},
		{"join of the replicas", joined},
	} {
		if b := fzEncode(tb, got.x); !bytes.Equal(b, want) {
			tb.Fatalf("%s differs from generation order:\n got  %x\n want %x", got.name, b, want)
		}
	}
}

// fzOp makes one local operation of kind k (0…2) at r.
func fzOp(r *fzReplica, typ crdt.Type, k byte, arg int) (crdt.Causal, error) {
	name := string(rune('a' + arg%3))
	if typ == crdt.TypeAWSet {
		s := r.cur(typ).(*crdt.AWSet)
		if k == 2 {
			return s.Remove(name), nil
		}
		return s.Add(r.gen(), name), nil
	}
	if k == 2 {
		return r.cur(typ).(*crdt.ORMap).Remove(name), nil
	}
	switch arg / 3 % 4 {
	case 0:
		return fzUpdate(r, crdt.Field{Name: name, Type: crdt.TypeMVRegister}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.MVRegister).Set(g, []byte{byte(arg)}), nil
		})
	case 1:
		return fzUpdate(r, crdt.Field{Name: name, Type: crdt.TypePNCounter}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.PNCounter).Add(g, int64(arg)-128)
		})
	case 2:
		return fzUpdate(r, crdt.Field{Name: name, Type: crdt.TypeAWSet}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
			s := v.(*crdt.AWSet)
			if k == 1 && s.Len() > 0 {
				return s.Remove(s.Elements()[0]), nil
			}
			return s.Add(g, string(rune('p'+arg%2))), nil
		})
	}
	return fzUpdate(r, crdt.Field{Name: name, Type: crdt.TypeORMap}, func(g *crdt.DotGen, v crdt.Value) (crdt.Causal, error) {
		m := v.(*crdt.ORMap)
		if k == 1 {
			return m.Remove("in"), nil
		}
		return m.Update(crdt.Field{Name: "in", Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
			return v.(*crdt.AWSet).Add(g, string(rune('p'+arg%2))), nil
		})
	})
}

// TestDecodeHugeLength: an input of a few bytes that declares billions of
// items fails at once, allocating next to nothing: a peer cannot make a node
// allocate more than in proportion to the bytes it sent.
func TestDecodeHugeLength(t *testing.T) {
	const runs = 20
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"array 2^32", []byte{0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01}},
		{"array 2^64-1", []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"map 2^32", []byte{0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01}},
		{"bytes 2^32", []byte{0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01}},
		{"context prefix 2^32", []byte{0xa1, 0x01, 0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{"causal context 2^32", []byte{0xa2, 0x01, 0x01, 0x03, 0xa1, 0x01, 0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{"map fields 2^32-1", []byte{0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x08, 0x09, 0x9a, 0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			decoders := []struct {
				name string
				f    func([]byte) error
			}{
				{"Causal", func(b []byte) error { var x crdt.Causal; return x.UnmarshalCBOR(b) }},
				{"Context", func(b []byte) error { var c crdt.Context; return c.UnmarshalCBOR(b) }},
			}
			for _, dec := range decoders {
				if err := dec.f(tc.b); !errors.Is(err, crdt.ErrDecode) {
					t.Fatalf("%s: err = %v, want ErrDecode", dec.name, err)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				for range runs {
					_ = dec.f(tc.b)
				}
				elapsed := time.Since(start)
				runtime.ReadMemStats(&after)
				total := after.TotalAlloc - before.TotalAlloc
				if total >= 1<<20 {
					t.Errorf("%s: %d decodes allocated %d bytes, want < 1 MiB", dec.name, runs, total)
				}
				allocs := testing.AllocsPerRun(runs, func() { _ = dec.f(tc.b) })
				if allocs > 50 {
					t.Errorf("%s: %.0f allocations per decode, want ≤ 50", dec.name, allocs)
				}
				t.Logf("%s: %d decodes allocated %d bytes (%.0f allocations each) in %s", dec.name, runs, total, allocs, elapsed)
				if elapsed > time.Second {
					t.Errorf("%s: %d decodes took %s, want failing at once", dec.name, runs, elapsed)
				}
			}
		})
	}
}

// TestFuzzSeeds: every real sample the fuzz targets start from decodes and
// re-encodes to the same bytes, so the seeds reach past the decoder (the
// deepest nests maps nine levels deep, within the nesting limit).
func TestFuzzSeeds(t *testing.T) {
	for _, s := range fzSamples(t) {
		b := fzEncode(t, s.x)
		var x crdt.Causal
		if err := x.UnmarshalCBOR(b); err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if got := fzEncode(t, x); !bytes.Equal(got, b) {
			t.Errorf("%s: round trip changed the encoding:\n got  %x\n want %x", s.name, got, b)
		}
	}
	for _, c := range fzContexts() {
		b := fzEncodeCtx(t, c)
		var d crdt.Context
		if err := d.UnmarshalCBOR(b); err != nil || !d.Equal(&c) {
			t.Errorf("context %x: err %v, equal %v", b, err, d.Equal(&c))
		}
	}
}

// FuzzDecodeValue: the context-free value decoding that stores use never
// panics, fails only with ErrDecode, and is canonical after one round.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range fzSamples(f) {
		if s.x.Value == nil {
			continue
		}
		b, err := crdt.MarshalValue(s.x.Value)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := crdt.UnmarshalValue(b)
		if err != nil {
			if !errors.Is(err, crdt.ErrDecode) {
				t.Fatalf("error does not wrap ErrDecode: %v", err)
			}
			return
		}
		b1, err := crdt.MarshalValue(v)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := crdt.UnmarshalValue(b1)
		if err != nil {
			t.Fatalf("decoding a re-encoding: %v", err)
		}
		if b2, _ := crdt.MarshalValue(v2); !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not canonical after one round trip")
		}
	})
}
