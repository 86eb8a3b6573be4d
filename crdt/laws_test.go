package crdt_test

import (
	"bytes"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
	"pgregory.net/rapid"
)

// world runs replicas of one type through random operations and deliveries,
// checking every replica against the model after each step.
type world struct {
	spec     spec
	replicas []*replica
	events   []*event
	totals   map[int]int64 // counters: each replica's running total
	// causal limits deliveries to those the replication protocol makes:
	// deltas whose causal past the receiver has seen (or has already
	// applied), groups of such deltas, and joins of whole states.
	causal bool
}

func newWorld(t *rapid.T, typ crdt.Type, causal bool) *world {
	w := &world{spec: specs[typ], totals: map[int]int64{}, causal: causal}
	for i := range rapid.IntRange(2, 4).Draw(t, "replicas") {
		w.replicas = append(w.replicas, newReplica(i))
	}
	return w
}

func (w *world) pick(t *rapid.T, label string) (int, *replica) {
	i := rapid.IntRange(0, len(w.replicas)-1).Draw(t, label)
	return i, w.replicas[i]
}

// step makes one random move: a local operation, a delta delivery, a delta
// group delivery or a full-state join.
func (w *world) step(t *rapid.T) {
	switch k := rapid.IntRange(0, 9).Draw(t, "move"); {
	case k < 5 || len(w.events) == 0:
		w.operate(t)
	case k < 8:
		_, r := w.pick(t, "to")
		e := rapid.SampledFrom(w.deliverable(r)).Draw(t, "delta")
		must(t, r.state.Apply(e.delta))
		r.seen[e.id] = true
	case k < 9:
		_, r := w.pick(t, "to")
		var group crdt.Causal
		for _, e := range rapid.SliceOfN(rapid.SampledFrom(w.deliverable(r)), 1, 5).Draw(t, "group") {
			must(t, group.JoinDelta(e.delta))
			r.seen[e.id] = true
		}
		must(t, r.state.Apply(group))
	default:
		_, from := w.pick(t, "from")
		_, to := w.pick(t, "to")
		must(t, to.state.Join(from.state.Clone()))
		for id := range from.seen {
			to.seen[id] = true
		}
	}
}

func (w *world) operate(t *rapid.T) {
	i, r := w.pick(t, "at")
	cur := r.state.Value
	if cur == nil {
		v, err := crdt.New(w.spec.typ)
		must(t, err)
		cur = v
	}
	e := &event{id: len(w.events), replica: i, past: map[int]bool{}}
	for id := range r.seen {
		e.past[id] = true
	}
	e.delta = w.spec.op(t, r, cur, e)
	w.totals[i] += e.n
	e.cum = w.totals[i]

	// Applying a delta sparsely must equal joining it as a state.
	viaJoin := r.state.Clone()
	must(t, viaJoin.Join(e.delta))
	must(t, r.state.Apply(e.delta))
	if !equal(t, viaJoin, r.state) {
		t.Fatalf("Apply and Join of delta differ:\n apply %s\n join  %s", enc(t, r.state), enc(t, viaJoin))
	}
	r.seen[e.id] = true
	w.events = append(w.events, e)
}

// deliverable returns the deltas r may be sent: any of them, or in a causal
// world those already applied (duplicates) and those whose causal past r
// has seen. It never returns an empty list.
func (w *world) deliverable(r *replica) []*event {
	if !w.causal {
		return w.events
	}
	var ok []*event
	for _, e := range w.events {
		if r.seen[e.id] || closed(r.seen, e) {
			ok = append(ok, e)
		}
	}
	return ok
}

// closed reports whether seen holds the causal past of e.
func closed(seen map[int]bool, e *event) bool {
	for id := range e.past {
		if !seen[id] {
			return false
		}
	}
	return true
}

// check compares each replica with the model. It is meaningful only in a
// causal world: a delta carries just the dots its operation overwrote, not
// their causal past, so out-of-order deltas converge (TestDeltaDelivery) but
// may show intermediate states no causal history explains.
func (w *world) check(t *rapid.T) {
	for i, r := range w.replicas {
		var h []*event
		for _, e := range w.events {
			if r.seen[e.id] {
				h = append(h, e)
			}
		}
		want := w.spec.model(h)
		got := w.spec.model(nil)
		if r.state.Value != nil {
			got = w.spec.value(r.state.Value)
		}
		if !equalAny(got, want) {
			t.Fatalf("replica %d: value %#v, model says %#v", i, got, want)
		}
	}
}

var detEnc, _ = cbor.CoreDetEncOptions().EncMode()

func equalAny(a, b any) bool {
	ea, err1 := detEnc.Marshal(a)
	eb, err2 := detEnc.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func enc(t interface{ Fatalf(string, ...any) }, x crdt.Causal) []byte {
	b, err := x.MarshalCBOR()
	must(t, err)
	return b
}

// equal compares states by their deterministic encoding.
func equal(t interface{ Fatalf(string, ...any) }, a, b crdt.Causal) bool {
	return bytes.Equal(enc(t, a), enc(t, b))
}

func forEachType(t *testing.T, f func(*rapid.T, crdt.Type)) {
	for typ := crdt.TypeEWFlag; typ <= crdt.TypeORMap; typ++ {
		t.Run(typ.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { f(rt, typ) })
		})
	}
}

// TestModel: every replica's value equals the reference model's value for
// the events it has seen, after every operation, causal delta delivery
// (with duplicates), delta group and full-state join.
func TestModel(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, true)
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			w.step(t)
			w.check(t)
		}
	})
}

// TestJoinLaws: join is commutative, associative and idempotent on
// reachable states.
func TestJoinLaws(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, false)
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			w.step(t)
		}
		_, ra := w.pick(t, "a")
		_, rb := w.pick(t, "b")
		_, rc := w.pick(t, "c")
		a, b, c := ra.state, rb.state, rc.state
		join := func(x, y crdt.Causal) crdt.Causal {
			z := x.Clone()
			must(t, z.Join(y))
			return z
		}
		if !equal(t, join(a, b), join(b, a)) {
			t.Fatalf("not commutative")
		}
		if !equal(t, join(join(a, b), c), join(a, join(b, c))) {
			t.Fatalf("not associative")
		}
		if !equal(t, join(a, a), a) {
			t.Fatalf("not idempotent")
		}
	})
}

// TestDeltaDelivery: any subset of deltas delivered in any order with
// duplicates yields one state, and all deltas yield the full-state join of
// all replicas.
func TestDeltaDelivery(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, false)
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			w.operate(t)
		}
		deliver := func(label string, events []*event) crdt.Causal {
			var x crdt.Causal
			order := rapid.Permutation(append(events, rapid.SliceOfN(rapid.SampledFrom(w.events), 0, 5).Draw(t, label+" dups")...)).Draw(t, label)
			for _, e := range order {
				must(t, x.Apply(e.delta))
			}
			return x
		}
		subset := rapid.SliceOfNDistinct(rapid.SampledFrom(w.events), 0, -1, func(e *event) int { return e.id }).Draw(t, "subset")
		// Duplicates drawn from all events would change the subset; use the
		// subset's own events as duplicates for this comparison.
		x1, x2 := crdt.Causal{}, crdt.Causal{}
		for _, e := range rapid.Permutation(subset).Draw(t, "order1") {
			must(t, x1.Apply(e.delta))
		}
		for _, e := range rapid.Permutation(append(subset, subset...)).Draw(t, "order2") {
			must(t, x2.Apply(e.delta))
		}
		if !equal(t, x1, x2) {
			t.Fatalf("delivery order changed the state")
		}

		all := deliver("all", w.events)
		var joined crdt.Causal
		for _, r := range w.replicas {
			must(t, joined.Join(r.state))
		}
		if !equal(t, all, joined) {
			t.Fatalf("deltas and full-state join differ:\n deltas %x\n joined %x", enc(t, all), enc(t, joined))
		}
	})
}

// TestRoundTrip: decoding an encoding yields an equal state.
func TestRoundTrip(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, false)
		for range rapid.IntRange(0, 30).Draw(t, "steps") {
			w.step(t)
		}
		_, r := w.pick(t, "replica")
		for _, x := range []crdt.Causal{r.state, rapid.SampledFrom(append(w.events, &event{})).Draw(t, "delta").delta} {
			b := enc(t, x)
			var y crdt.Causal
			if err := y.UnmarshalCBOR(b); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(enc(t, y), b) {
				t.Fatalf("round trip changed the encoding")
			}
		}
	})
}

// TestRelativeRoundTrip: a delta encoded relative to a replica and a run
// of its dots that its context holds decodes to the same delta; relative
// to a run it does not hold, it is not encoded.
func TestRelativeRoundTrip(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, false)
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			w.step(t)
		}
		x := rapid.SampledFrom(append(w.events, &event{})).Draw(t, "delta").delta
		for _, r := range w.replicas {
			last := x.Ctx.Max(r.id)
			if last == 0 {
				if _, err := x.MarshalCBORRelative(r.id, 1, 1); err == nil {
					t.Fatalf("encoded relative to %v:1, which the context lacks", r.id)
				}
				continue
			}
			first := last
			for first > 1 && x.Ctx.Contains(crdt.Dot{Replica: r.id, Seq: first - 1}) && rapid.Bool().Draw(t, "longer") {
				first--
			}
			b, err := x.MarshalCBORRelative(r.id, first, last)
			if err != nil {
				t.Fatalf("relative to %v:%d-%d: %v", r.id, first, last, err)
			}
			var y crdt.Causal
			if err := y.UnmarshalCBORRelative(b, r.id, first, last); err != nil {
				t.Fatalf("decode relative to %v:%d-%d: %v", r.id, first, last, err)
			}
			if !equal(t, x, y) {
				t.Fatalf("relative to %v:%d-%d, the round trip changed the delta", r.id, first, last)
			}
			if len(b) > len(enc(t, x)) {
				t.Fatalf("relative encoding of %d bytes, whole %d", len(b), len(enc(t, x)))
			}
		}
	})
}

// TestProject: the projections of a state over its replicas hold only
// their replica's dots, and together they are the state: joined, they
// give it back.
func TestProject(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ crdt.Type) {
		w := newWorld(t, typ, false)
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			w.step(t)
		}
		_, r := w.pick(t, "replica")
		if r.state.Value == nil {
			return
		}
		var joined crdt.Causal
		for _, o := range w.replicas {
			p := crdt.Project(r.state.Value, func(d crdt.Dot) bool { return d.Replica == o.id })
			dots := crdt.Dots(p)
			for rep := range dots.VersionVector() {
				if rep != o.id {
					t.Fatalf("projection on %v holds dots of %v", o.id, rep)
				}
			}
			for _, d := range dots.Cloud() {
				if d.Replica != o.id {
					t.Fatalf("projection on %v holds dot %v", o.id, d)
				}
			}
			must(t, joined.Join(crdt.Causal{Value: p, Ctx: dots}))
		}
		whole := crdt.Causal{Value: r.state.Value, Ctx: crdt.Dots(r.state.Value)}
		if !equal(t, joined, whole) {
			t.Fatalf("the projections joined are not the state:\n%x\n%x", enc(t, joined), enc(t, whole))
		}
	})
}
