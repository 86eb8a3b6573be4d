package replication_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
)

// simSeeds overrides the number of seeds of the randomized simulations:
// make test runs them again at -sim.seeds=1000, without the race detector.
var simSeeds = flag.Int("sim.seeds", 0, "seeds per randomized simulation (0: each test's default)")

// seeds returns how many seeds a randomized simulation runs: n unless
// -sim.seeds says otherwise.
func seeds(n uint64) uint64 {
	if *simSeeds > 0 {
		return uint64(*simSeeds)
	}
	return n
}

// randomOp returns a random operation on a few keys of every kind.
func randomOp(rng *rand.Rand, wall int64) func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
	key := fmt.Sprint("k", rng.IntN(6))
	elem := fmt.Sprint("e", rng.IntN(4))
	switch rng.IntN(6) {
	case 0:
		return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: key, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.AWSet).Add(g, elem), nil })
		}
	case 1:
		return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: key, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.AWSet).Remove(elem), nil })
		}
	case 2:
		n := int64(rng.IntN(7)) - 3
		return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: key, Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, n) })
		}
	case 3:
		return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: key, Type: crdt.TypeLWWRegister}, func(v crdt.Value) (crdt.Causal, error) {
				return v.(*crdt.LWWRegister).Set(g, crdt.Timestamp{Wall: wall}, []byte(elem)), nil
			})
		}
	case 4:
		return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: key, Type: crdt.TypeMVRegister}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.MVRegister).Set(g, []byte(elem)), nil })
		}
	}
	return func(m *crdt.ORMap, _ *crdt.DotGen) (crdt.Causal, error) { return m.Remove(key), nil }
}

// TestConvergesUnderFaults runs random writes on five nodes while the
// network loses, duplicates and reorders messages, partitions come and go,
// nodes crash, and logs are collected or dropped whole. Once everything
// heals, every node must hold exactly the join of every write any node
// made (and so acknowledged): nothing lost, nothing left that a later
// write replaced. A harsh network (30% loss, long rounds) makes state
// transfers give up on silent servers.
func TestConvergesUnderFaults(t *testing.T) {
	for _, c := range []struct {
		name   string
		loss   float64
		ticks  int
		batch  int
		legacy map[int]bool
		dense  map[int]bool
	}{
		{"lossy", 0.1, 3, 2048, nil, nil},
		{"harsh", 0.3, 5, 1024, nil, nil},
		// Two nodes of a build from before compact vectors.
		{"mixed builds", 0.1, 3, 2048, map[int]bool{1: true, 3: true}, nil},
		// One of a build from before indexed origins, one from before
		// compact vectors.
		{"three builds", 0.1, 3, 2048, map[int]bool{4: true}, map[int]bool{2: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			unknownSets := convergesUnderFaults(t, simtest.Net{Loss: c.loss, Duplicate: c.loss, Legacy: c.legacy, Dense: c.dense}, c.ticks, c.batch)
			// New nodes, and logs dropped whole, leave peers knowing
			// different replicas for a while: the answer to a compact
			// vector over a set its receiver does not know is exercised.
			if unknownSets == 0 && !t.Failed() {
				t.Error("no compact vector came over an unknown replica set in any run")
			}
		})
	}
}

// convergesUnderFaults runs the randomized scenarios on net and returns
// how many compact vectors came over a replica set their receiver did not
// know.
func convergesUnderFaults(t *testing.T, net simtest.Net, ticks, batch int) (unknownSets uint64) {
	for seed := range seeds(60) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			sim := simtest.New(5, seed, net, replication.Config{RoundTicks: ticks, MaxBatchBytes: batch})
			rng := rand.New(rand.NewPCG(seed, 99))
			// want is the join of every write made: what every node
			// must hold in the end.
			var want crdt.Causal
			dots := 0
			for step := range 400 {
				switch r := rng.IntN(100); {
				case r < 40:
					i := rng.IntN(5)
					n := sim.Nodes[i]
					before := n.State.Ctx.Max(n.ID)
					if err := sim.Write(i, randomOp(rng, int64(step))); err != nil {
						t.Fatal(err)
					}
					es, _, err := n.Entries(n.ID, before, math.MaxInt)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range es {
						if err := want.Apply(e.Delta.Clone()); err != nil {
							t.Fatal(err)
						}
						dots += int(e.Last - e.First + 1)
					}
				case r < 43:
					sim.Partition([]int{0, 1}, []int{2, 3, 4})
				case r < 46:
					sim.Heal()
				case r < 48:
					sim.Crash(rng.IntN(5))
				case r < 52:
					sim.Restart(rng.IntN(5))
				case r < 54:
					sim.Nodes[rng.IntN(5)].Collect()
				case r < 55:
					// A data budget drops a whole log: what it held reaches
					// the others only by state transfer.
					sim.Nodes[rng.IntN(5)].Truncate()
				case r < 70:
					if err := sim.Tick(); err != nil {
						t.Fatal(err)
					}
				default:
					if _, err := sim.Deliver(); err != nil {
						t.Fatal(err)
					}
				}
			}
			sim.Heal()
			for i := range sim.Nodes {
				sim.Restart(i)
			}
			rounds := 0
			for ; !sim.Converged() || sim.InFlight() > 0; rounds++ {
				if rounds == 300 {
					t.Fatalf("not converged after %d rounds", rounds)
				}
				if err := sim.Round(); err != nil {
					t.Fatal(err)
				}
			}
			wantEnc, err := want.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range sim.Nodes {
				if n.Encoded() != string(wantEnc) {
					t.Fatalf("node %s holds a state other than the join of every write made", n.ID)
				}
			}
			transfers := uint64(0)
			for _, n := range sim.Nodes {
				transfers += n.Sync.Stats().TransfersDone
				unknownSets += n.Sync.Stats().UnknownSets
			}
			t.Logf("converged %d rounds after healing; %d dots written, %d messages, %d bytes, %d state transfers", rounds, dots, sim.Sent, sim.Bytes, transfers)
		})
	}
	return unknownSets
}

// TestCountersHoldEveryIncrement runs increments of one counter on three
// nodes while they crash and restart, are cut off, collect their logs and
// drop them whole (so state transfers leave gaps in the logs that relay
// an origin). Once healed, every node's counter must equal the number of
// increments made: a lost one, or one counted twice, shows a node whose
// vector holds dots its state lacks.
func TestCountersHoldEveryIncrement(t *testing.T) {
	field := crdt.Field{Name: "hits", Type: crdt.TypePNCounter}
	inc := func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		return m.Update(field, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, 1) })
	}
	for seed := range seeds(120) {
		sim := simtest.New(3, seed, simtest.Net{Loss: 0.05, Duplicate: 0.05}, replication.Config{RoundTicks: 3, MaxBatchBytes: 2048})
		rng := rand.New(rand.NewPCG(seed, 1))
		incs := int64(0)
		for range 500 {
			var err error
			switch r, i := rng.IntN(100), rng.IntN(3); {
			case r < 40:
				before := sim.Nodes[i].State.Ctx.Max(sim.Nodes[i].ID)
				err = sim.Write(i, inc)
				if sim.Nodes[i].State.Ctx.Max(sim.Nodes[i].ID) > before { // not down
					incs++
				}
			case r < 41:
				sim.Crash(i)
			case r < 44:
				sim.Restart(i)
			case r < 45:
				sim.Partition([]int{i}, []int{0, 1, 2})
			case r < 47:
				sim.Heal()
			case r < 49:
				sim.Nodes[i].Collect()
			case r < 50:
				sim.Nodes[i].Truncate()
			case r < 60:
				err = sim.Tick()
			default:
				_, err = sim.Deliver()
			}
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		sim.Heal()
		for i := range sim.Nodes {
			sim.Restart(i)
		}
		for r := 0; !sim.Converged() || sim.InFlight() > 0; r++ {
			if r == 300 {
				for _, n := range sim.Nodes {
					ctx := n.Context()
					t.Logf("node %s: counter %v, vector %v, context %v", n.ID, n.State.Value.(*crdt.ORMap).Field(field), n.Vector(), &ctx)
				}
				t.Fatalf("seed %d: not converged after %d rounds", seed, r)
			}
			if err := sim.Round(); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		for _, n := range sim.Nodes {
			if got := n.State.Value.(*crdt.ORMap).Field(field).(*crdt.PNCounter).Value(); got != incs {
				t.Fatalf("seed %d: node %s counts %d increments of %d", seed, n.ID, got, incs)
			}
		}
	}
}

// TestIdleRoundsAreSmall: once converged, a round costs a digest per
// peer pair and nothing more.
func TestIdleRoundsAreSmall(t *testing.T) {
	sim := simtest.New(4, 1, simtest.Net{}, replication.Config{RoundTicks: 1})
	for i := range 4 {
		sim.Write(i, randomOp(rand.New(rand.NewPCG(uint64(i), 1)), 1))
	}
	for range 10 {
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
	if !sim.Converged() {
		t.Fatal("not converged")
	}
	before := sim.Bytes
	const rounds = 20
	for range rounds {
		sim.Round()
	}
	pairs := 4 * 3 // each node starts a round with each peer
	perPair := float64(sim.Bytes-before) / float64(rounds*pairs)
	if perPair > 100 {
		t.Errorf("idle round: %.0f bytes per peer pair, want ≤ 100", perPair)
	}
	t.Logf("idle round: %.0f bytes per peer pair", perPair)
}

// TestARoundWithNewsStartsWithTheVector: a node that holds something its
// peer lacks (as far as it knows) starts their round with its vector and
// Pull, since the digests would differ; otherwise with a digest.
//   - A peer that lacks the news answers with its own vector, and puts its
//     own round off by an interval, as it does on a differing digest.
//   - A peer that got the news already (by a push: the node's word of it
//     is stale) has nothing to say. The node starts its next rounds with a
//     digest until the peer speaks, and the peer keeps its own round, a
//     digest, which tells the node they are in step.
func TestARoundWithNewsStartsWithTheVector(t *testing.T) {
	const roundTicks = 4
	for _, pushed := range []bool{false, true} {
		for seed := range seeds(20) {
			sim := simtest.New(2, seed, simtest.Net{}, replication.Config{RoundTicks: roundTicks})
			a, b := sim.Nodes[0], sim.Nodes[1]
			rng := rand.New(rand.NewPCG(seed, 3))
			sim.Write(0, randomOp(rng, 1))
			sim.Write(1, randomOp(rng, 2))
			for range 10 {
				if err := sim.Round(); err != nil {
					t.Fatal(err)
				}
			}
			if !sim.Converged() {
				t.Fatalf("seed %d: not converged", seed)
			}
			// startRound ticks n (its messages go nowhere) until it
			// starts a round, and returns its first message.
			startRound := func(n *simtest.Node) replication.Message {
				for range 2 * roundTicks {
					if outs := n.Sync.Tick(); len(outs) > 0 {
						return outs[0].Msg
					}
				}
				t.Fatalf("seed %d: %s started no round", seed, n.ID)
				return replication.Message{}
			}
			// b's digest, equal to a's, tells a that b holds what it holds.
			m := startRound(b)
			if m.Kind != replication.KindDigest {
				t.Fatalf("seed %d: in step, b's round starts with a %s", seed, m.Kind)
			}
			if _, err := a.Sync.Step(b.Peer, m); err != nil {
				t.Fatal(err)
			}
			if m := startRound(a); m.Kind != replication.KindDigest {
				t.Fatalf("seed %d: in step, a round starts with a %s", seed, m.Kind)
			}
			if pushed {
				// b gets the write at once: a sends it, but that is
				// not b's word that it holds it.
				if err := sim.Write(0, randomOp(rng, 3)); err != nil {
					t.Fatal(err)
				}
				for more := true; more; {
					var err error
					if more, err = sim.Deliver(); err != nil {
						t.Fatal(err)
					}
				}
			} else if err := a.Write(randomOp(rng, 3)); err != nil {
				t.Fatal(err)
			}
			// b's next round is due in one to three ticks: it started
			// one (startRound above), and the soonest is three ticks
			// later.
			quiet := roundTicks - roundTicks/4 - 1
			for range quiet {
				b.Sync.Tick()
			}
			m = startRound(a)
			if m.Kind != replication.KindVector || !m.Pull || vectorOf(m, a.Vector()).Compare(a.Vector()) != crdt.Equal {
				t.Fatalf("seed %d: with news, a round starts with %+v", seed, m)
			}
			res, err := b.Sync.Step(a.Peer, m)
			if err != nil {
				t.Fatal(err)
			}
			if !pushed {
				if len(res.Out) != 1 || res.Out[0].Msg.Kind != replication.KindVector || res.Out[0].Msg.Pull {
					t.Fatalf("seed %d: b answers %+v; want its vector, without Pull", seed, res.Out)
				}
				// Put off: three quarters of an interval away at the
				// soonest.
				for i := range quiet {
					if outs := b.Sync.Tick(); len(outs) > 0 {
						t.Fatalf("seed %d: b started a round %d ticks after a's", seed, i+1)
					}
				}
				continue
			}
			if len(res.Out) != 0 {
				t.Fatalf("seed %d: b, in step, answers %+v", seed, res.Out)
			}
			// Unanswered, a does not send its vector again: one stale
			// word costs one vector, not one a round.
			if m := startRound(a); m.Kind != replication.KindDigest {
				t.Fatalf("seed %d: after an unanswered vector, a's round starts with a %s", seed, m.Kind)
			}
			// Not put off: due within three ticks, and a digest.
			var outs []replication.Out
			for range quiet + 1 {
				if outs = b.Sync.Tick(); len(outs) > 0 {
					break
				}
			}
			if len(outs) == 0 || outs[0].Msg.Kind != replication.KindDigest {
				t.Fatalf("seed %d: b's own round, due within %d ticks, starts with %+v", seed, quiet+1, outs)
			}
			if _, err := a.Sync.Step(b.Peer, outs[0].Msg); err != nil {
				t.Fatal(err)
			}
			if m := startRound(a); m.Kind != replication.KindDigest {
				t.Fatalf("seed %d: told b is in step, a's round starts with a %s", seed, m.Kind)
			}
		}
	}
}

// TestNoBackPropagation: on a line a–b–c, a's write reaches c through b,
// and nothing of it comes back to a.
func TestNoBackPropagation(t *testing.T) {
	sim := simtest.New(3, 1, simtest.Net{}, replication.Config{RoundTicks: 1})
	sim.SetPeers(0, 1)
	sim.SetPeers(1, 0, 2)
	sim.SetPeers(2, 1)
	for k := range 20 {
		sim.Write(0, randomOp(rand.New(rand.NewPCG(uint64(k), 2)), int64(k)))
	}
	for range 10 {
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
	if !sim.Converged() {
		t.Fatal("not converged")
	}
	if st := sim.Nodes[0].Sync.Stats(); st.EntriesReceived != 0 {
		t.Errorf("a received %d entries back (%d redundant)", st.EntriesReceived, st.Redundant)
	}
	if st := sim.Nodes[2].Sync.Stats(); st.Redundant != 0 {
		t.Errorf("c received %d redundant entries", st.Redundant)
	}
}

func TestStepRefusesBadMessages(t *testing.T) {
	sim := simtest.New(2, 1, simtest.Net{}, replication.Config{})
	s := sim.Nodes[0].Sync
	var ctx crdt.Context
	ctx.Add(crdt.Dot{Replica: 9, Seq: 1})
	for _, c := range []struct {
		name string
		from replication.PeerID
		msg  replication.Message
	}{
		{"unknown peer", "stranger", replication.Message{Version: 1, Kind: replication.KindAck}},
		{"newer version", "p02", replication.Message{Version: 2, Kind: replication.KindAck}},
		{"unknown kind", "p02", replication.Message{Version: 1, Kind: 99}},
		{"short digest", "p02", replication.Message{Version: 1, Kind: replication.KindDigest, Hash: []byte{1}}},
		{"entry without origin", "p02", replication.Message{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{First: 1, Last: 1}}}},
		{"entry whose delta lacks its dots", "p02", replication.Message{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{Origin: 9, First: 1, Last: 2, Delta: crdt.Causal{Ctx: ctx}}}}},
	} {
		res, err := s.Step(c.from, c.msg)
		if !errors.Is(err, replication.ErrInvalid) || len(res.Out)+len(res.Apply) != 0 || res.Page != nil {
			t.Errorf("%s: %v, %+v", c.name, err, res)
		}
	}
	// An entry after a gap is dropped (it will come again), not applied.
	res, err := s.Step("p02", replication.Message{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{Origin: 9, First: 1, Last: 1, Delta: crdt.Causal{Ctx: ctx}}}})
	if err != nil || len(res.Apply) != 1 {
		t.Fatalf("a good entry: %v, %d to apply", err, len(res.Apply))
	}
	var ctx3 crdt.Context
	ctx3.Add(crdt.Dot{Replica: 9, Seq: 3})
	res, _ = s.Step("p02", replication.Message{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{Origin: 9, First: 3, Last: 3, Delta: crdt.Causal{Ctx: ctx3}}}})
	if len(res.Apply) != 0 {
		t.Error("an entry after a gap was accepted")
	}
	if s.Stats().Invalid < 7 {
		t.Errorf("Invalid = %d, want every bad message counted", s.Stats().Invalid)
	}
}

// FuzzDecode: Decode and then Step refuse what is malformed with
// ErrInvalid and never panic; what Decode takes encodes and decodes again
// (entries with indexed origins once Step has read them).
func FuzzDecode(f *testing.F) {
	var ctx crdt.Context
	ctx.Add(crdt.Dot{Replica: 1, Seq: 1})
	// Two origins with real, 64-bit IDs: entries of both go indexed.
	const a, b = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9
	set := crdt.VersionVector{a: 1, b: 1}
	var ca, cb crdt.Context
	ca.Add(crdt.Dot{Replica: a, Seq: 1})
	cb.Add(crdt.Dot{Replica: b, Seq: 1})
	two := []replication.Entry{{Origin: a, First: 1, Last: 1, Delta: crdt.Causal{Ctx: ca}}, {Origin: b, First: 1, Last: 1, Delta: crdt.Causal{Ctx: cb}}}
	for _, m := range []replication.Message{
		{Version: 1, Kind: replication.KindDigest, Hash: replication.Digest(crdt.VersionVector{1: 2})},
		{Version: 1, Kind: replication.KindVector, Vector: crdt.VersionVector{1: 2, 3: 4}, Pull: true},
		{Version: 1, Kind: replication.KindVector, Vector: crdt.VersionVector{1: 2, 3: 4}, Set: replication.SetHash(crdt.VersionVector{1: 2, 3: 4})},
		{Version: 1, Kind: replication.KindAck, Set: replication.SetHash(crdt.VersionVector{1: 2, 3: 4}), Seqs: []crdt.Seq{2, 4}},
		{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{Origin: 1, First: 1, Last: 1, Delta: crdt.Causal{Ctx: ctx}}}},
		{Version: 1, Kind: replication.KindRangeReq, After: "a", Last: "b", Full: true},
		{Version: 1, Kind: replication.KindRange, After: "a", Last: "b", Hash: make([]byte, 32), Ctx: &ctx, Vector: crdt.VersionVector{1: 1}},
		{Version: 1, Kind: replication.KindStates, Done: true, Ctx: &ctx, States: []replication.State{{Name: "k", Record: []byte{0xa0}}}},
		{Version: 1, Kind: replication.KindPeers, Peers: []replication.PeerAddrs{{ID: "12D3KooW", Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}}},
		{Version: 1, Kind: replication.KindEntries, Entries: two, Origins: set},
		{Version: 1, Kind: replication.KindAck, Vector: crdt.VersionVector{a: 3, b: 1}, Base: set},
	} {
		m.Compact = true
		for _, encode := range []func(replication.Message) ([]byte, error){replication.Encode, replication.EncodeDense, replication.EncodeIndexed} {
			b, err := encode(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Arrays far over the protocol's limits, of one-byte items: refused
	// before they are decoded (TestDecodeAmplification).
	f.Add(replication.AmplificationFrame())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := replication.Decode(b)
		if err != nil {
			if !errors.Is(err, replication.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// An engine whose peer has named the replicas of set: it reads
		// entries indexed in it, and vectors relative to it.
		s := replication.New(simtest.NewNode(5), replication.Config{})
		s.AddPeer("p")
		if _, err := s.Step("p", replication.Message{Version: 1, Kind: replication.KindVector, Vector: set}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step("p", m); err != nil && !errors.Is(err, replication.ErrInvalid) {
			t.Fatalf("Step: error %v does not wrap ErrInvalid", err)
		}
		if m.Kind == replication.KindEntries && m.Set != nil {
			return // indexed: whole only once Step has read them
		}
		again, err := replication.Encode(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := replication.Decode(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// TestOneWriteReachesAFiftyNodeMeshQuickly: a write spreads through a
// 50-node mesh within 2·log2(50) ≈ 11 rounds (here 4 ticks each), by
// eager push to three peers and then anti-entropy rounds.
func TestOneWriteReachesAFiftyNodeMeshQuickly(t *testing.T) {
	const n, roundTicks = 50, 4
	for seed := range uint64(5) {
		sim := simtest.New(n, seed, simtest.Net{}, replication.Config{RoundTicks: roundTicks})
		if err := sim.Write(0, randomOp(rand.New(rand.NewPCG(seed, 3)), 1)); err != nil {
			t.Fatal(err)
		}
		dot := crdt.Dot{Replica: sim.Nodes[0].ID, Seq: 1}
		ticks := 0
		for {
			all := true
			for _, node := range sim.Nodes {
				all = all && node.State.Ctx.Contains(dot)
			}
			if all {
				break
			}
			if err := sim.Round(); err != nil { // one tick, then every message
				t.Fatal(err)
			}
			ticks++
		}
		if rounds := float64(ticks) / roundTicks; rounds > 2*math.Log2(n) {
			t.Errorf("seed %d: %.1f rounds to reach every node, want ≤ %.1f", seed, rounds, 2*math.Log2(n))
		}
	}
}

// gappyLog is a log whose entries of origin 9 start at 5: the first four
// were collected.
type gappyLog struct{ noStates }

// noStates gives a test log an empty key space.
type noStates struct{}

func (noStates) Context() crdt.Context { return crdt.Context{} }
func (noStates) States(string, string, int) ([]replication.State, bool, error) {
	return nil, true, nil
}

func (gappyLog) Vector() crdt.VersionVector { return crdt.VersionVector{9: 6} }
func (gappyLog) Entries(origin crdt.ReplicaID, after crdt.Seq, _ int) ([]replication.Entry, int, error) {
	var ctx crdt.Context
	ctx.AddRange(9, 5, 6)
	return []replication.Entry{{Origin: 9, First: 5, Last: 6, Delta: crdt.Causal{Ctx: ctx}}}, 10, nil
}

func TestEntriesPastAGapAreNotSent(t *testing.T) {
	s := replication.New(gappyLog{}, replication.Config{})
	s.AddPeer("p")
	res, err := s.Step("p", replication.Message{Version: 1, Kind: replication.KindVector, Vector: crdt.VersionVector{7: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Out {
		if o.Msg.Kind == replication.KindEntries {
			t.Errorf("sent entries %d-%d to a peer that lacks 1-4", o.Msg.Entries[0].First, o.Msg.Entries[0].Last)
		}
	}
	if s.Stats().Unservable != 1 {
		t.Errorf("Unservable = %d, want 1", s.Stats().Unservable)
	}
}

// wideLog is a log that already has entries from MaxReplicas origins.
type wideLog struct {
	noStates
	vv crdt.VersionVector
}

func (l wideLog) Vector() crdt.VersionVector { return l.vv }
func (wideLog) Entries(crdt.ReplicaID, crdt.Seq, int) ([]replication.Entry, int, error) {
	return nil, 0, nil
}

func TestHostileEntriesAreRefused(t *testing.T) {
	one := func(origin crdt.ReplicaID, first, last crdt.Seq, cloud int) replication.Message {
		var c crdt.Context
		c.Add(crdt.Dot{Replica: origin, Seq: first})
		if last <= crdt.MaxSeq {
			c.Add(crdt.Dot{Replica: origin, Seq: last})
		}
		for i := range cloud {
			c.Add(crdt.Dot{Replica: 77, Seq: crdt.Seq(2*i + 3)}) // out of order: a cloud
		}
		return replication.Message{Version: 1, Kind: replication.KindEntries, Entries: []replication.Entry{{Origin: origin, First: first, Last: last, Delta: crdt.Causal{Ctx: c}}}}
	}
	vv := crdt.VersionVector{}
	for i := range replication.MaxReplicas {
		vv[crdt.ReplicaID(i+1)] = 1
	}
	s := replication.New(wideLog{vv: vv}, replication.Config{})
	s.AddPeer("p")
	// Dots near the end of the sequence space.
	if _, err := s.Step("p", one(5, 2, replication.MaxSeqAccepted+1, 0)); !errors.Is(err, replication.ErrInvalid) {
		t.Errorf("an entry up to the end of the sequence space: %v", err)
	}
	// A context cloud too large to keep.
	if _, err := s.Step("p", one(5, 2, 2, replication.MaxCloudDots+1)); !errors.Is(err, replication.ErrInvalid) {
		t.Errorf("an entry with a huge context: %v", err)
	}
	// One origin more than any vector may hold.
	if res, err := s.Step("p", one(crdt.ReplicaID(replication.MaxReplicas+1), 1, 1, 0)); err != nil || len(res.Apply) != 0 {
		t.Errorf("an entry from origin number %d: %v, %d to apply", replication.MaxReplicas+1, err, len(res.Apply))
	}
	// A group whose delta lacks dots inside its range (2 and 4 only).
	if res, err := s.Step("p", one(5, 2, 4, 0)); err != nil || len(res.Apply) != 0 {
		t.Errorf("a group lacking dot 5:3: %v, %d to apply", err, len(res.Apply))
	}
	// Known origins still sync.
	if res, _ := s.Step("p", one(5, 2, 2, 0)); len(res.Apply) != 1 {
		t.Error("an entry from a known origin was refused")
	}
}

func TestPeersAheadOnOwnWritesAreNoticed(t *testing.T) {
	s := replication.New(wideLog{vv: crdt.VersionVector{7: 3}}, replication.Config{Self: 7})
	s.AddPeer("p")
	s.Step("p", replication.Message{Version: 1, Kind: replication.KindVector, Vector: crdt.VersionVector{7: 3}})
	if s.Stats().OwnAhead != 0 {
		t.Fatal("a peer level with this node counted as ahead")
	}
	s.Step("p", replication.Message{Version: 1, Kind: replication.KindVector, Vector: crdt.VersionVector{7: 5}})
	if s.Stats().OwnAhead != 1 {
		t.Fatal("a peer holding more of this node's writes went unnoticed")
	}
}

// TestLongRunsAreSentWhole: a long run of one origin's entries, joined
// into a group (or one write of many readings), has one out-of-order dot
// per write in its context; those are the entry's own dots, which the
// receiver's limit on out-of-order dots does not count, so the run goes
// in one message and is accepted.
func TestLongRunsAreSentWhole(t *testing.T) {
	sim := simtest.New(1, 1, simtest.Net{}, replication.Config{})
	const writes = 3 * replication.MaxCloudDots
	for i := range writes {
		err := sim.Nodes[0].Write(func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: "s", Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
				return v.(*crdt.AWSet).Add(g, fmt.Sprint(i)), nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := replication.New(sim.Nodes[0], replication.Config{MaxBatchBytes: 64 << 20})
	s.AddPeer("p")
	res, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: crdt.VersionVector{sim.Nodes[0].ID: 10}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Out {
		if o.Msg.Kind != replication.KindEntries {
			continue
		}
		b, err := replication.Encode(o.Msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replication.Decode(b); err != nil {
			t.Fatalf("the receiver refuses the message: %v", err)
		}
		if e := o.Msg.Entries[0]; e.First != 11 || e.Last != writes {
			t.Errorf("sent %d-%d of 11-%d", e.First, e.Last, writes)
		}
		return
	}
	t.Fatal("no entries sent")
}

// vectorOf returns the vector m carries, whole or compact; a compact one
// is read over the replicas of set.
func vectorOf(m replication.Message, set crdt.VersionVector) crdt.VersionVector {
	if m.Seqs == nil {
		return m.Vector
	}
	if !bytes.Equal(m.Set, replication.SetHash(set)) {
		return nil
	}
	rs := set.Replicas()
	slices.Sort(rs)
	vv := crdt.VersionVector{}
	for i, r := range rs {
		if i < len(m.Seqs) {
			vv[r] = m.Seqs[i]
		}
	}
	return vv
}
