package replication_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
	"github.com/klauspost/compress/snappy"
)

// topology wires n nodes: each gets the peers returned for its index.
type topology struct {
	name  string
	peers func(i, n int) []int
}

var topologies = []topology{
	// A partial mesh: each node links to the next 2 and previous 2 on a
	// ring, 4 neighbours each, as in the paper's mesh.
	{"mesh", func(i, n int) []int { return []int{(i + 1) % n, (i + 2) % n, (i + n - 1) % n, (i + n - 2) % n} }},
	// A full mesh, as on a site where every node finds every other by
	// mDNS.
	{"full", func(i, n int) []int {
		var ps []int
		for j := range n {
			if j != i {
				ps = append(ps, j)
			}
		}
		return ps
	}},
	// A binary tree.
	{"tree", func(i, n int) []int {
		var ps []int
		if i > 0 {
			ps = append(ps, (i-1)/2)
		}
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < n {
				ps = append(ps, c)
			}
		}
		return ps
	}},
}

// workload is what node i updates in round r: the keys it touches, drawn
// from rng, and how an update is made on edged's state (op) and on the
// plain state-based CRDT of the baseline (bump, see bprr_test.go).
type workload struct {
	name string
	keys func(i, r int, rng *rand.Rand) []string
	op   func(key string, i, r int) func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error)
	bump func(s plainState, key string, id crdt.ReplicaID, i, r int) (string, plainValue)
	// encode writes a plain state (or delta) as the baseline sends it.
	encode func(s plainState) []byte
}

var workloads = []workload{
	// A grow-only set: each node adds an element of its own per round.
	{
		name: "gset",
		keys: func(i, r int, _ *rand.Rand) []string { return []string{fmt.Sprintf("n%d-r%d", i, r)} },
		op: func(elem string, _, _ int) func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: "set", Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.AWSet).Add(g, elem), nil })
			}
		},
		bump: func(_ plainState, elem string, _ crdt.ReplicaID, _, _ int) (string, plainValue) {
			return elem, plainValue{}
		},
		encode: encodeSet,
	},
	// A counter: each node increments it once per round.
	{
		name: "gcounter",
		keys: func(int, int, *rand.Rand) []string { return []string{"counter"} },
		op: func(string, int, int) func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: "counter", Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, 1) })
			}
		},
		bump: func(s plainState, _ string, id crdt.ReplicaID, _, _ int) (string, plainValue) {
			key := fmt.Sprint(uint64(id))
			return key, plainValue{N: s[key].N + 1, ID: uint64(id)}
		},
		encode: encodeCounter,
	},
	// A map of 1,000 last-writer-wins registers of which 10% are updated
	// in a round, spread over the nodes.
	{
		name: "gmap-10%",
		keys: func(_, _ int, rng *rand.Rand) []string {
			var keys []string
			for range 100 / 15 {
				keys = append(keys, fmt.Sprint("k", rng.IntN(1000)))
			}
			return keys
		},
		op: func(key string, i, r int) func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			ts := crdt.Timestamp{Wall: int64(r), Logical: uint32(i)}
			return func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: key, Type: crdt.TypeLWWRegister}, func(v crdt.Value) (crdt.Causal, error) {
					return v.(*crdt.LWWRegister).Set(g, ts, []byte("v")), nil
				})
			}
		},
		bump: func(_ plainState, key string, _ crdt.ReplicaID, i, r int) (string, plainValue) {
			return key, plainValue{TS: crdt.Timestamp{Wall: int64(r), Logical: uint32(i)}, V: "v"}
		},
		encode: encodeRegisters,
	},
}

// BenchmarkSyncBytes runs the workloads of Enes et al. (ICDE 2019) on 15
// nodes for 100 rounds of updates (then until converged) and reports the
// bytes sent against a full-state sync baseline, in which every node sends
// its whole state to each neighbour every round. The same updates also run
// through the paper's own algorithm (BP+RR, bprr_test.go): bprr-ratio is
// its bytes against its full state, bytes-vs-bprr edged's bytes against
// its bytes.
//
//	go test -run '^$' -bench SyncBytes -benchtime 1x ./replication
func BenchmarkSyncBytes(b *testing.B) {
	// A round is RoundTicks ticks: each node syncs with each neighbour
	// once a round, at a jittered tick, as deployed (not all at once).
	const nodes, rounds, roundTicks = 15, 100, 4
	for _, top := range topologies {
		for _, w := range workloads {
			b.Run(top.name+"/"+w.name, func(b *testing.B) {
				for b.Loop() {
					// Ordered: each link's messages come in order, as on the
					// kept streams peers use.
					sim := simtest.New(nodes, 1, simtest.Net{Ordered: true}, replication.Config{RoundTicks: roundTicks, MaxBatchBytes: 1 << 20})
					for i := range nodes {
						sim.SetPeers(i, top.peers(i, nodes)...)
					}
					ids := make([]crdt.ReplicaID, nodes)
					for i, n := range sim.Nodes {
						ids[i] = n.ID
					}
					base := newBPRR(w, ids, top.peers)
					rng := rand.New(rand.NewPCG(1, 2))
					var full, fullZ uint64 // full state as is, and Snappy-compressed
					round := func() {
						for i, n := range sim.Nodes {
							enc, _ := n.State.MarshalCBOR()
							full += uint64(len(enc) * len(top.peers(i, nodes)))
							fullZ += uint64(len(snappy.Encode(nil, enc)) * len(top.peers(i, nodes)))
						}
						for range roundTicks {
							if err := sim.Round(); err != nil {
								b.Fatal(err)
							}
						}
					}
					for r := range rounds {
						for i := range nodes {
							for _, key := range w.keys(i, r, rng) {
								if err := sim.Nodes[i].Write(w.op(key, i, r)); err != nil {
									b.Fatal(err)
								}
								base.update(i, r, key)
							}
						}
						round()
						base.round()
					}
					for extra := 0; !sim.Converged(); extra++ {
						if extra == 50 {
							b.Fatal("not converged")
						}
						round()
					}
					for extra := 0; !base.converged(); extra++ {
						if extra == 50 {
							b.Fatal("baseline not converged")
						}
						base.round()
					}
					b.ReportMetric(float64(sim.Bytes)/float64(full), "ratio")
					b.ReportMetric(float64(sim.Bytes)/float64(fullZ), "ratio-vs-snappy")
					b.ReportMetric(float64(sim.Bytes), "bytes")
					b.ReportMetric(float64(full), "full-state-bytes")
					b.ReportMetric(float64(base.Raw)/float64(base.Full), "bprr-ratio")
					b.ReportMetric(float64(sim.Bytes)/float64(base.Snappy), "bytes-vs-bprr")
					b.ReportMetric(float64(sim.Bytes)/float64(base.Raw), "bytes-vs-bprr-raw")
					var recv, redundant uint64
					for _, n := range sim.Nodes {
						recv += n.Sync.Stats().EntriesReceived
						redundant += n.Sync.Stats().Redundant
					}
					b.ReportMetric(float64(redundant)/float64(recv), "redundant-share")
					for k, n := range sim.ByKind {
						b.ReportMetric(float64(n)/float64(sim.Bytes), k.String()+"-share")
					}
				}
			})
		}
	}
}
