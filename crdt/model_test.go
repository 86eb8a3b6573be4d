package crdt_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/edged-dev/edged/crdt"
	"pgregory.net/rapid"
)

// The reference model: a replica's state is a function of the set of events
// it has seen, each event carrying the set of events its replica had seen
// when it happened (its causal past). Each type's meaning is written below
// directly over such sets, with no dots, contexts or joins, so it checks the
// implementation without sharing its ideas.

type event struct {
	id       int
	replica  int
	past     map[int]bool // events seen by the replica when this one happened
	field    crdt.Field   // ORMap events: the field updated or (kind rmfield) the name removed
	kind     string
	elems    []string
	n        int64
	val      string
	ts       crdt.Timestamp
	readings []crdt.Reading
	cum      int64 // counters: the replica's running total after this event
	delta    crdt.Causal
}

// maximal returns the events of h that no other event of h has in its past.
func maximal(h []*event) []*event {
	var out []*event
	for _, e := range h {
		covered := false
		for _, o := range h {
			if o.past[e.id] {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, e)
		}
	}
	return out
}

func modelFlag(h []*event) any {
	for _, e := range maximal(h) {
		if e.kind == "enable" {
			return true
		}
	}
	return false
}

func modelMV(h []*event) any {
	var vs []string
	for _, e := range maximal(h) {
		vs = append(vs, e.val)
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

func modelLWW(h []*event) any {
	var best *event
	for _, e := range maximal(h) {
		if best == nil || e.ts.Compare(best.ts) > 0 || (e.ts == best.ts && e.replica > best.replica) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return best.val
}

func modelSet(h []*event) any {
	touching := map[string][]*event{}
	for _, e := range h {
		for _, x := range e.elems {
			touching[x] = append(touching[x], e)
		}
	}
	var out []string
	for x, es := range touching {
		for _, e := range maximal(es) {
			if e.kind == "add" {
				out = append(out, x)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// modelCounter: deltas carry running totals, so a replica contributes the
// total of its latest event that was seen.
func modelCounter(h []*event) any {
	latest := map[int]*event{}
	for _, e := range h {
		if l := latest[e.replica]; l == nil || l.past[e.id] == false && e.past[l.id] {
			latest[e.replica] = e
		}
	}
	var sum int64
	for _, e := range latest {
		sum += e.cum
	}
	return sum
}

func modelReadings(h []*event) any {
	var rs []crdt.Reading
	for _, e := range h {
		rs = append(rs, e.readings...)
	}
	sortReadings(rs)
	return rs
}

func sortReadings(rs []crdt.Reading) {
	slices.SortFunc(rs, func(a, b crdt.Reading) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
}

// modelMap: a field's events, minus those a removal of its name observed,
// interpreted by the field type's model; a name shows its highest type.
func modelMap(h []*event) any {
	byField := map[crdt.Field][]*event{}
	for _, e := range h {
		if e.kind == "rmfield" {
			continue
		}
		removed := false
		for _, r := range h {
			if r.kind == "rmfield" && r.field.Name == e.field.Name && r.past[e.id] {
				removed = true
				break
			}
		}
		if !removed {
			byField[e.field] = append(byField[e.field], e)
		}
	}
	out := map[string]any{}
	for _, f := range slices.SortedFunc(maps.Keys(byField), crdt.Field.Compare) {
		v := specs[f.Type].model(byField[f])
		if !isZero(v) {
			out[f.Name] = fmt.Sprint(f.Type, "=", v) // later (higher) types overwrite
		}
	}
	return out
}

func isZero(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case []string:
		return len(v) == 0
	case string:
		return v == ""
	}
	return false
}

// spec describes one CRDT type to the property tests.
type spec struct {
	typ   crdt.Type
	op    func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal
	value func(v crdt.Value) any
	model func(h []*event) any
}

var specs map[crdt.Type]spec

func init() {
	specs = map[crdt.Type]spec{
		crdt.TypeEWFlag: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				f := cur.(*crdt.EWFlag)
				if rapid.Bool().Draw(t, "enable") {
					e.kind = "enable"
					return f.Enable(r.gen())
				}
				e.kind = "disable"
				return f.Disable()
			},
			value: func(v crdt.Value) any { return v.(*crdt.EWFlag).Enabled() },
			model: modelFlag,
		},
		crdt.TypeGCounter: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				e.kind, e.n = "inc", int64(rapid.IntRange(0, 5).Draw(t, "n"))
				d, err := cur.(*crdt.GCounter).Inc(r.gen(), uint64(e.n))
				must(t, err)
				return d
			},
			value: func(v crdt.Value) any { return int64(v.(*crdt.GCounter).Value()) },
			model: modelCounter,
		},
		crdt.TypePNCounter: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				e.kind, e.n = "add", int64(rapid.IntRange(-5, 5).Draw(t, "n"))
				d, err := cur.(*crdt.PNCounter).Add(r.gen(), e.n)
				must(t, err)
				return d
			},
			value: func(v crdt.Value) any { return v.(*crdt.PNCounter).Value() },
			model: modelCounter,
		},
		crdt.TypeLWWRegister: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				e.kind, e.val = "set", rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(t, "v")
				e.ts = r.now(t)
				return cur.(*crdt.LWWRegister).Set(r.gen(), e.ts, []byte(e.val))
			},
			value: func(v crdt.Value) any {
				b, _, _ := v.(*crdt.LWWRegister).Get()
				return string(b)
			},
			model: modelLWW,
		},
		crdt.TypeMVRegister: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				e.kind, e.val = "set", rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(t, "v")
				return cur.(*crdt.MVRegister).Set(r.gen(), []byte(e.val))
			},
			value: func(v crdt.Value) any {
				var vs []string
				for _, b := range v.(*crdt.MVRegister).Values() {
					vs = append(vs, string(b))
				}
				return vs
			},
			model: modelMV,
		},
		crdt.TypeAWSet: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				s := cur.(*crdt.AWSet)
				e.elems = rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"x", "y", "z"}), 1, 2, rapid.ID).Draw(t, "elems")
				if rapid.Bool().Draw(t, "add") {
					e.kind = "add"
					return s.Add(r.gen(), e.elems...)
				}
				e.kind = "remove"
				return s.Remove(e.elems...)
			},
			value: func(v crdt.Value) any { return v.(*crdt.AWSet).Elements() },
			model: modelSet,
		},
		crdt.TypeReadingSet: {
			op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
				e.kind = "add"
				e.readings = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) crdt.Reading {
					return crdt.Reading{
						Time:  rapid.Int64Range(0, 10).Draw(t, "time"),
						Value: float64(rapid.IntRange(-3, 3).Draw(t, "value")),
					}
				}), 1, 3).Draw(t, "readings")
				d, err := cur.(*crdt.ReadingSet).Add(r.gen(), e.readings...)
				must(t, err)
				return d
			},
			value: func(v crdt.Value) any {
				rs := v.(*crdt.ReadingSet).Readings()
				sortReadings(rs)
				return rs
			},
			model: modelReadings,
		},
	}
	mapFieldTypes := []crdt.Type{crdt.TypeEWFlag, crdt.TypeMVRegister, crdt.TypeAWSet}
	specs[crdt.TypeORMap] = spec{
		op: func(t *rapid.T, r *replica, cur crdt.Value, e *event) crdt.Causal {
			m := cur.(*crdt.ORMap)
			name := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "name")
			if rapid.IntRange(0, 4).Draw(t, "remove") == 0 {
				e.kind, e.field = "rmfield", crdt.Field{Name: name}
				return m.Remove(name)
			}
			e.field = crdt.Field{Name: name, Type: rapid.SampledFrom(mapFieldTypes).Draw(t, "type")}
			d, err := m.Update(e.field, func(v crdt.Value) (crdt.Causal, error) {
				return specs[e.field.Type].op(t, r, v, e), nil
			})
			must(t, err)
			return d
		},
		value: func(v crdt.Value) any {
			m := v.(*crdt.ORMap)
			out := map[string]any{}
			for _, f := range m.Fields() {
				got, _ := m.Get(f.Name)
				out[f.Name] = fmt.Sprint(got.Type(), "=", specs[got.Type()].value(got))
			}
			return out
		},
		model: modelMap,
	}
	for typ, s := range specs {
		s.typ = typ
		specs[typ] = s
	}
}

// replica is one simulated replica: its state, the events it has seen and
// a hybrid logical clock over a wandering fake physical clock.
type replica struct {
	id    crdt.ReplicaID
	state crdt.Causal
	seen  map[int]bool
	wall  int64
	hlc   *crdt.HLC
}

func newReplica(i int) *replica {
	r := &replica{id: crdt.ReplicaID(i + 1), seen: map[int]bool{}}
	r.hlc = crdt.NewHLC(func() time.Time { return time.Unix(0, r.wall) }, time.Hour)
	return r
}

func (r *replica) gen() *crdt.DotGen { return crdt.NewDotGen(&r.state.Ctx, r.id) }

// now reads the HLC after the fake wall clock moved by -1…+2 ns, so
// timestamps tie across replicas and clocks run backwards at times.
func (r *replica) now(t *rapid.T) crdt.Timestamp {
	r.wall += int64(rapid.IntRange(-1, 2).Draw(t, "tick"))
	return r.hlc.Now()
}

func must(t interface{ Fatalf(string, ...any) }, err error) {
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}
