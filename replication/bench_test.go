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

// workload returns the operations node i makes in round r.
type workload struct {
	name string
	ops  func(i, r int, rng *rand.Rand) []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error)
}

var workloads = []workload{
	{"gset", func(i, r int, _ *rand.Rand) []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		elem := fmt.Sprintf("n%d-r%d", i, r)
		return []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error){func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: "set", Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.AWSet).Add(g, elem), nil })
		}}
	}},
	{"gcounter", func(int, int, *rand.Rand) []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		return []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error){func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: "counter", Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, 1) })
		}}
	}},
	// A map of 1,000 last-writer-wins registers of which 10% are updated
	// in a round, spread over the nodes.
	{"gmap-10%", func(i, r int, rng *rand.Rand) []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		var ops []func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error)
		for range 100 / 15 {
			key := fmt.Sprint("k", rng.IntN(1000))
			ts := crdt.Timestamp{Wall: int64(r), Logical: uint32(i)}
			ops = append(ops, func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: key, Type: crdt.TypeLWWRegister}, func(v crdt.Value) (crdt.Causal, error) {
					return v.(*crdt.LWWRegister).Set(g, ts, []byte("v")), nil
				})
			})
		}
		return ops
	}},
}

// BenchmarkSyncBytes runs the workloads of Enes et al. (ICDE 2019) on 15
// nodes for 100 rounds of updates (then until converged) and reports the
// bytes sent against a full-state sync baseline, in which every node sends
// its whole state to each neighbour every round.
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
							for _, op := range w.ops(i, r, rng) {
								if err := sim.Nodes[i].Write(op); err != nil {
									b.Fatal(err)
								}
							}
						}
						round()
					}
					extra := 0
					for ; !sim.Converged(); extra++ {
						if extra == 50 {
							b.Fatal("not converged")
						}
						round()
					}
					b.ReportMetric(float64(sim.Bytes)/float64(full), "ratio")
					b.ReportMetric(float64(sim.Bytes)/float64(fullZ), "ratio-vs-snappy")
					b.ReportMetric(float64(sim.Bytes), "bytes")
					b.ReportMetric(float64(full), "full-state-bytes")
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
