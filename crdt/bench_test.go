package crdt_test

import (
	"fmt"
	"testing"

	"github.com/edged-dev/edged/crdt"
)

// Benchmarks over sizes. Run them with
//
//	go test -run '^$' -bench . -benchmem -benchtime 200ms ./crdt
//
// Sizes count entries: elements of a set, fields of a map, readings of a
// reading set, and for counters, registers and the flag the replicas with
// an entry (concurrent values). Sets, maps and readings go to 100000
// entries; the others stop at 1000, more replicas than edged expects to
// write one value.

// Replica IDs use all 64 bits, as IDs derived from public keys do, so the
// encoded sizes are those of real deltas.
const (
	benchA crdt.ReplicaID = 0xa1b2c3d4e5f60718
	benchB crdt.ReplicaID = 0xb2c3d4e5f6071829
)

var (
	benchSmall = []int{10, 1000}
	benchLarge = []int{10, 1000, 100000}
)

// benchKind describes one CRDT type to the benchmarks.
type benchKind struct {
	name  string
	sizes []int
	// op names the operation of update.
	op string
	// entry returns the delta that adds entry i to x. Sets, maps and
	// readings make their entries at replica r; counters, registers and
	// the flag make entry i at replica benchReplica(i) over an empty
	// value, so n entries are n replicas' concurrent entries.
	entry func(x *crdt.Causal, r crdt.ReplicaID, i int) (crdt.Causal, error)
	// update returns the i-th single-entry delta that BenchmarkApplyDelta
	// applies, made on view at replica benchA (for the per-replica kinds
	// at benchReplica(0), the owner of entry 0).
	update func(view *crdt.Causal, i int) (crdt.Causal, error)
	// ownView: update's replica has seen only its own entry, not the other
	// replicas' concurrent ones (a register or flag written by one device
	// while the others' writes have not reached it). Otherwise it has seen
	// the whole state.
	ownView bool
}

// benchCur returns x's value, or the empty value of T's type.
func benchCur[T crdt.Value](x *crdt.Causal) T {
	if x.Value != nil {
		return x.Value.(T)
	}
	var zero T
	v, err := crdt.New(zero.Type())
	if err != nil {
		panic(err)
	}
	return v.(T)
}

// benchReplica returns the replica of entry i of the per-replica kinds.
func benchReplica(i int) crdt.ReplicaID { return crdt.ReplicaID(0xc3d4e5f607182930 + uint64(i)) }

func benchGen(x *crdt.Causal, r crdt.ReplicaID) *crdt.DotGen { return crdt.NewDotGen(&x.Ctx, r) }

func benchField(i int) crdt.Field {
	f := crdt.Field{Name: fmt.Sprintf("field-%07d", i), Type: crdt.TypeMVRegister}
	if i%2 == 1 {
		f.Type = crdt.TypePNCounter
	}
	return f
}

// benchMapOp updates field i of the map in x at replica r: a register
// write or a counter increment, by the field's type.
func benchMapOp(x *crdt.Causal, r crdt.ReplicaID, i int) (crdt.Causal, error) {
	g := benchGen(x, r)
	f := benchField(i)
	return benchCur[*crdt.ORMap](x).Update(f, func(v crdt.Value) (crdt.Causal, error) {
		if f.Type == crdt.TypePNCounter {
			return v.(*crdt.PNCounter).Add(g, 1)
		}
		return v.(*crdt.MVRegister).Set(g, []byte(fmt.Sprintf("value %d", i))), nil
	})
}

func benchReading(i int) crdt.Reading {
	return crdt.Reading{Time: 1_700_000_000_000_000_000 + int64(i)*1_000_000_000, Value: float64(i%400) / 4}
}

func benchStamp(i int) crdt.Timestamp {
	return crdt.Timestamp{Wall: 1_700_000_000_000_000_000 + int64(i)}
}

var benchKinds = []benchKind{
	{
		name: "EWFlag", op: "enable", sizes: benchSmall, ownView: true,
		entry: func(x *crdt.Causal, _ crdt.ReplicaID, i int) (crdt.Causal, error) {
			return new(crdt.EWFlag).Enable(benchGen(x, benchReplica(i))), nil
		},
		update: func(v *crdt.Causal, _ int) (crdt.Causal, error) {
			return benchCur[*crdt.EWFlag](v).Enable(benchGen(v, benchReplica(0))), nil
		},
	},
	{
		name: "GCounter", op: "inc", sizes: benchSmall,
		entry: func(x *crdt.Causal, _ crdt.ReplicaID, i int) (crdt.Causal, error) {
			return new(crdt.GCounter).Inc(benchGen(x, benchReplica(i)), uint64(i+1))
		},
		update: func(v *crdt.Causal, _ int) (crdt.Causal, error) {
			return benchCur[*crdt.GCounter](v).Inc(benchGen(v, benchReplica(0)), 1)
		},
	},
	{
		name: "PNCounter", op: "add", sizes: benchSmall,
		entry: func(x *crdt.Causal, _ crdt.ReplicaID, i int) (crdt.Causal, error) {
			return new(crdt.PNCounter).Add(benchGen(x, benchReplica(i)), int64(i%7)-3)
		},
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			return benchCur[*crdt.PNCounter](v).Add(benchGen(v, benchReplica(0)), int64(i%2*2-1))
		},
	},
	{
		name: "LWWRegister", op: "set", sizes: benchSmall, ownView: true,
		entry: func(x *crdt.Causal, _ crdt.ReplicaID, i int) (crdt.Causal, error) {
			return new(crdt.LWWRegister).Set(benchGen(x, benchReplica(i)), benchStamp(i), []byte("21.5")), nil
		},
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			return benchCur[*crdt.LWWRegister](v).Set(benchGen(v, benchReplica(0)), benchStamp(1_000_000+i), []byte("22.0")), nil
		},
	},
	{
		name: "MVRegister", op: "set", sizes: benchSmall, ownView: true,
		entry: func(x *crdt.Causal, _ crdt.ReplicaID, i int) (crdt.Causal, error) {
			return new(crdt.MVRegister).Set(benchGen(x, benchReplica(i)), []byte(fmt.Sprintf("value %d", i))), nil
		},
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			return benchCur[*crdt.MVRegister](v).Set(benchGen(v, benchReplica(0)), []byte(fmt.Sprintf("update %d", i))), nil
		},
	},
	{
		name: "AWSet", op: "add", sizes: benchLarge,
		entry: func(x *crdt.Causal, r crdt.ReplicaID, i int) (crdt.Causal, error) {
			return benchCur[*crdt.AWSet](x).Add(benchGen(x, r), fmt.Sprintf("element-%07d", i)), nil
		},
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			return benchCur[*crdt.AWSet](v).Add(benchGen(v, benchA), fmt.Sprintf("added-%07d", i)), nil
		},
	},
	{
		name: "ORMap", op: "update", sizes: benchLarge,
		entry: benchMapOp,
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			// Update existing fields, registers and counters in turn.
			return benchMapOp(v, benchA, i)
		},
	},
	{
		name: "ReadingSet", op: "add", sizes: benchLarge,
		entry: func(x *crdt.Causal, r crdt.ReplicaID, i int) (crdt.Causal, error) {
			return benchCur[*crdt.ReadingSet](x).Add(benchGen(x, r), benchReading(i))
		},
		update: func(v *crdt.Causal, i int) (crdt.Causal, error) {
			return benchCur[*crdt.ReadingSet](v).Add(benchGen(v, benchA), benchReading(1_000_000+i))
		},
	},
}

// benchApply applies to x a delta and the error of the mutator that made it.
func benchApply(b *testing.B, x *crdt.Causal, d crdt.Causal, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	if err := x.Apply(d); err != nil {
		b.Fatal(err)
	}
}

// benchPair returns two replicas' states of n entries each: 90% of them
// shared (made at benchA and seen by both), 10% made at each replica
// alone and not yet seen by the other.
func benchPair(b *testing.B, k benchKind, n int) (a, o crdt.Causal) {
	b.Helper()
	shared := n - n/10
	var base crdt.Causal
	for i := range shared {
		d, err := k.entry(&base, benchA, i)
		benchApply(b, &base, d, err)
	}
	a, o = base.Clone(), base.Clone()
	for i := shared; i < n; i++ {
		d, err := k.entry(&a, benchA, i)
		benchApply(b, &a, d, err)
	}
	for i := n; i < n+n/10; i++ {
		d, err := k.entry(&o, benchB, i)
		benchApply(b, &o, d, err)
	}
	return a, o
}

// BenchmarkJoin: the full-state join of two replicas' states of n entries
// each, overlapping 90%. Join merges into its receiver, so each iteration
// of clone+join clones the receiver first; clone-only times that clone
// alone, and the cost of the join itself is the difference of the two.
func BenchmarkJoin(b *testing.B) {
	for _, k := range benchKinds {
		for _, n := range k.sizes {
			b.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(b *testing.B) {
				x, y := benchPair(b, k, n)
				b.Run("clone+join", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						z := x.Clone()
						if err := z.Join(y); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("clone-only", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						_ = x.Clone()
					}
				})
			})
		}
	}
}

// benchDeltas returns m consecutive single-entry deltas made at one replica
// whose view is the state x (or its own entry of x, for ownView kinds).
func benchDeltas(b *testing.B, k benchKind, x crdt.Causal, m int) []crdt.Causal {
	b.Helper()
	view := x.Clone()
	if k.ownView {
		view = crdt.Causal{}
		d, err := k.entry(&view, benchA, 0)
		benchApply(b, &view, d, err)
	}
	ds := make([]crdt.Causal, m)
	for i := range ds {
		d, err := k.update(&view, i)
		benchApply(b, &view, d, err)
		ds[i] = d
	}
	return ds
}

// BenchmarkApplyDelta: applying one single-entry delta (a set add, a map
// field update, a reading, a counter increment, a register write) to a
// state of n entries. Apply touches only what the delta lists, so the time
// per delta should not grow with n.
//
// A delta applies once; applied again it changes nothing. So the deltas are
// made beforehand, in batches of max(16, n/10) consecutive ones, and before
// each batch the state is restored from a clone with the timer stopped.
// Adds grow the state by up to a batch while it runs (at most 10% for
// large n).
func BenchmarkApplyDelta(b *testing.B) {
	for _, k := range benchKinds {
		for _, n := range k.sizes {
			b.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(b *testing.B) {
				x, _ := benchPair(b, k, n)
				ds := benchDeltas(b, k, x, max(16, n/10))
				var z crdt.Causal
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i%len(ds) == 0 {
						b.StopTimer()
						z = x.Clone()
						b.StartTimer()
					}
					if err := z.Apply(ds[i%len(ds)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkDeltaBytes: the encoded size of one typical delta of each type
// (bytes/delta) and the time to encode and decode it. The delta is the
// first of BenchmarkApplyDelta's at n=10: its dots carry small sequence
// numbers and 64-bit replica IDs.
func BenchmarkDeltaBytes(b *testing.B) {
	for _, k := range benchKinds {
		x, _ := benchPair(b, k, 10)
		type delta struct {
			op string
			d  crdt.Causal
		}
		deltas := []delta{{k.op, benchDeltas(b, k, x, 1)[0]}}
		switch k.name {
		case "AWSet":
			deltas = append(deltas, delta{"remove", benchCur[*crdt.AWSet](&x).Remove("element-0000003")})
		case "ORMap":
			deltas = append(deltas, delta{"remove", benchCur[*crdt.ORMap](&x).Remove(benchField(3).Name)})
		}
		for _, d := range deltas {
			b.Run(fmt.Sprintf("%s/%s", k.name, d.op), func(b *testing.B) {
				enc, err := d.d.MarshalCBOR()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					enc, err = d.d.MarshalCBOR()
					if err != nil {
						b.Fatal(err)
					}
					var y crdt.Causal
					if err := y.UnmarshalCBOR(enc); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(enc)), "bytes/delta")
			})
		}
	}
}
