package cloud

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// seededKey returns an Ed25519 key drawn from rng, so runs repeat.
func seededKey(t testing.TB, rng *rand.Rand) crypto.PrivKey {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(readerOf(rng))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

type rngReader struct{ rng *rand.Rand }

func readerOf(rng *rand.Rand) rngReader { return rngReader{rng} }

func (r rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.rng.Uint32())
	}
	return len(p), nil
}

// cloudMsg is a cloud message in flight: to the aggregator (to < 0) or
// to node to.
type cloudMsg struct {
	to   int
	data []byte
}

// cloudSim is nodes syncing with each other (package replication) and
// with an aggregator through a broker that loses, duplicates and
// reorders, their uplinks crashing and restarting.
type cloudSim struct {
	t       *testing.T
	rng     *rand.Rand
	sim     *simtest.Sim
	agg     *simtest.Node
	aggKey  crypto.PrivKey
	aggID   crdt.ReplicaID
	keys    []crypto.PrivKey
	ids     []crdt.ReplicaID
	marks   []crdt.VersionVector // the persisted cloud watermarks
	boxes   []*Outbox            // nil while a node's uplink is down
	flight  []cloudMsg
	loss    float64
	cfg     OutboxConfig
	refused int // batches the aggregator refused (after a gap)
}

func newCloudSim(t *testing.T, seed uint64, nodes int) *cloudSim {
	rng := rand.New(rand.NewPCG(seed, 11))
	c := &cloudSim{t: t, rng: rng, agg: simtest.NewNode(1000),
		sim:  simtest.New(nodes, seed, simtest.Net{Loss: 0.1, Duplicate: 0.05}, replication.Config{RoundTicks: 2, MaxBatchBytes: 4096}),
		loss: 0.2, cfg: OutboxConfig{MaxBatchBytes: 1024, Window: 3, RetryTicks: 6}}
	c.aggKey = seededKey(t, rng)
	c.aggID = replicaOf(t, c.aggKey)
	for range nodes {
		k := seededKey(t, rng)
		c.keys = append(c.keys, k)
		c.ids = append(c.ids, replicaOf(t, k))
		c.marks = append(c.marks, crdt.VersionVector{})
		c.boxes = append(c.boxes, nil)
	}
	for i := range nodes {
		c.startUplink(i)
	}
	return c
}

func replicaOf(t testing.TB, key crypto.PrivKey) crdt.ReplicaID {
	b, err := EncodeAck(key, Ack{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m.From
}

// startUplink starts node i's uplink from its persisted watermark.
func (c *cloudSim) startUplink(i int) {
	c.boxes[i] = NewOutbox(c.sim.Nodes[i], c.marks[i], c.cfg)
}

// pump publishes what node i's outbox lets out.
func (c *cloudSim) pump(i int) {
	ob := c.boxes[i]
	if ob == nil {
		return
	}
	for {
		b, err := ob.Next()
		if err != nil {
			c.t.Fatal(err)
		}
		if b == nil {
			return
		}
		data, err := EncodeBatch(c.keys[i], *b, c.rng.IntN(2) == 0)
		if err != nil {
			c.t.Fatal(err)
		}
		c.send(-1, data)
	}
}

func (c *cloudSim) send(to int, data []byte) {
	if c.rng.Float64() < c.loss {
		return
	}
	c.flight = append(c.flight, cloudMsg{to, data})
	if c.rng.Float64() < c.loss/2 {
		c.flight = append(c.flight, cloudMsg{to, data})
	}
}

// deliver delivers one cloud message at random.
func (c *cloudSim) deliver() {
	if len(c.flight) == 0 {
		return
	}
	k := c.rng.IntN(len(c.flight))
	m := c.flight[k]
	c.flight = slices.Delete(c.flight, k, k+1)
	msg, err := Decode(m.data)
	if err != nil {
		c.t.Fatal(err)
	}
	if m.to < 0 {
		i := slices.Index(c.ids, msg.From)
		if msg.Kind != KindBatch || i < 0 {
			c.t.Fatalf("the aggregator got a %d from %s", msg.Kind, msg.From)
		}
		if err := c.agg.Apply(msg.Batch.Entries); err != nil {
			c.refused++ // a batch overtook the one before it: sent again later
		}
		ack, err := EncodeAck(c.aggKey, Ack{Node: msg.From, Seq: msg.Batch.Seq, Vector: c.agg.Vector()})
		if err != nil {
			c.t.Fatal(err)
		}
		c.send(i, ack)
		return
	}
	if msg.Kind != KindAck || msg.From != c.aggID || msg.Ack.Node != c.ids[m.to] {
		c.t.Fatalf("node %d got a %d from %s for %s", m.to, msg.Kind, msg.From, msg.Ack.Node)
	}
	if ob := c.boxes[m.to]; ob != nil && ob.Acked(msg.Ack.Vector) {
		c.marks[m.to] = ob.AckedVector()
	}
}

func (c *cloudSim) write(i int, name string, by int64) {
	err := c.sim.Write(i, func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		return m.Update(crdt.Field{Name: name, Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, by) })
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// step does one random thing.
func (c *cloudSim) step() {
	n := len(c.ids)
	switch r := c.rng.IntN(100); {
	case r < 25:
		i := c.rng.IntN(n)
		c.write(i, fmt.Sprintf("k%d", c.rng.IntN(5)), int64(c.rng.IntN(9)+1))
		c.pump(i)
	case r < 40:
		if err := c.sim.Tick(); err != nil {
			c.t.Fatal(err)
		}
		for i, ob := range c.boxes {
			if ob != nil {
				ob.Tick()
				c.pump(i)
			}
		}
	case r < 60:
		if _, err := c.sim.Deliver(); err != nil {
			c.t.Fatal(err)
		}
	case r < 90:
		c.deliver()
	case r < 93:
		c.boxes[c.rng.IntN(n)] = nil // the uplink crashed: what it sent and its acks are forgotten
	case r < 96:
		if i := c.rng.IntN(n); c.boxes[i] == nil {
			c.startUplink(i)
		}
	default:
		i := c.rng.IntN(n)
		c.sim.Nodes[i].Mark("cloud", c.marks[i])
		c.sim.Nodes[i].Collect()
	}
}

// settle runs without loss until the aggregator holds every node's log
// and every outbox knows it.
func (c *cloudSim) settle() {
	c.loss = 0
	for i := range c.boxes {
		if c.boxes[i] == nil {
			c.startUplink(i)
		}
	}
	for round := 0; ; round++ {
		if round > 5000 {
			for i, ob := range c.boxes {
				c.t.Logf("node %d: backlog %d, in flight %d, acked %v, log %v", i, ob.Backlog(), ob.InFlight(), ob.AckedVector(), c.sim.Nodes[i].Vector())
			}
			c.t.Fatalf("no convergence: aggregator %v, nodes %v; p2p in flight %d, equal %v", c.agg.Vector(), c.sim.Nodes[0].Vector(), c.sim.InFlight(), c.agg.Encoded() == c.sim.Nodes[0].Encoded())
		}
		if err := c.sim.Round(); err != nil {
			c.t.Fatal(err)
		}
		for i, ob := range c.boxes {
			ob.Tick()
			c.pump(i)
		}
		for len(c.flight) > 0 {
			c.deliver()
		}
		done := c.sim.InFlight() == 0
		for i, ob := range c.boxes {
			done = done && ob.Backlog() == 0 && ob.InFlight() == 0 && c.sim.Nodes[i].Encoded() == c.agg.Encoded()
		}
		if done {
			return
		}
	}
}

// TestCloudSimulation: whatever the broker loses, duplicates or reorders,
// and however often uplinks restart, the aggregator ends up with the
// nodes' state exactly (counters not double counted), every node's cloud
// watermark covers its log, and the logs are collected.
func TestCloudSimulation(t *testing.T) {
	seeds := uint64(150)
	if testing.Short() {
		seeds = 20
	}
	refused := 0
	for seed := range seeds {
		c := newCloudSim(t, seed, 3)
		for range 400 {
			c.step()
		}
		c.settle()
		refused += c.refused
		for i, n := range c.sim.Nodes {
			if got := n.Encoded(); got != c.agg.Encoded() {
				t.Fatalf("seed %d: node %d and the aggregator differ", seed, i)
			}
			for r, s := range n.Vector() {
				if c.marks[i][r] < s {
					t.Fatalf("seed %d: node %d's cloud watermark %v does not cover its log %v", seed, i, c.marks[i], n.Vector())
				}
			}
		}
		// With every peer's and the cloud's ack in, the logs go.
		for range 20 {
			if err := c.sim.Round(); err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range c.sim.Nodes {
			n.Mark("cloud", c.marks[i])
			n.Collect()
			if l := n.LogLen(); l != 0 {
				t.Fatalf("seed %d: node %d keeps %d log entries the cloud and its peers hold", seed, i, l)
			}
		}
	}
	t.Logf("%d batches refused after a gap (sent again)", refused)
}
