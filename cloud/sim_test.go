package cloud

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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

// cloudMsg is a cloud message in flight: to the aggregator (to < 0; a
// batch of the readings stream when readings is set) or to node to.
type cloudMsg struct {
	to       int
	readings bool
	data     []byte
}

// bulk says which names hold raw readings.
func bulk(name string) bool { return strings.HasPrefix(name, "_r/") }

// view is a node's log as one stream reads it: only the names keep keeps.
type view struct {
	n    *simtest.Node
	keep func(string) bool
}

func (v view) Vector() crdt.VersionVector { return v.n.Vector() }

func (v view) Entries(o crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	es, n, err := v.n.Entries(o, after, maxBytes)
	for i := range es {
		es[i] = replication.Restrict(es[i], v.keep)
	}
	return es, n, err
}

func (v view) EntriesDown(o crdt.ReplicaID, upto crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	all, _, err := v.n.Entries(o, 0, math.MaxInt)
	var out []replication.Entry
	size := 0
	for i := len(all) - 1; i >= 0 && err == nil; i-- {
		if all[i].First > upto {
			continue
		}
		b, _ := all[i].Delta.MarshalCBOR()
		if len(out) > 0 && size+len(b) > maxBytes {
			break
		}
		out = append(out, replication.Restrict(all[i], v.keep))
		size += len(b)
	}
	return out, size, err
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
	rmarks  []crdt.VersionVector // the persisted readings watermarks
	boxes   []*Streams           // nil while a node's uplink is down
	flight  []cloudMsg
	loss    float64
	cfg     OutboxConfig
	newest  bool // readings newest first
	refused int  // batches the aggregator refused (after a gap)
	// The aggregator's readings, as engine.Readings keeps them: the
	// entries held per origin, and how often each reading was stored;
	// and every reading the nodes wrote.
	held    map[crdt.ReplicaID]crdt.Ranges
	stored  map[crdt.Dot]int
	written map[crdt.Dot]bool
	clock   int64
}

func newCloudSim(t *testing.T, seed uint64, nodes int) *cloudSim {
	rng := rand.New(rand.NewPCG(seed, 11))
	c := &cloudSim{t: t, rng: rng, agg: simtest.NewNode(1000),
		sim:  simtest.New(nodes, seed, simtest.Net{Loss: 0.1, Duplicate: 0.05}, replication.Config{RoundTicks: 2, MaxBatchBytes: 4096}),
		loss: 0.2, cfg: OutboxConfig{MaxBatchBytes: 1024, Window: 3, RetryTicks: 6}, newest: seed%2 == 1,
		held: map[crdt.ReplicaID]crdt.Ranges{}, stored: map[crdt.Dot]int{}, written: map[crdt.Dot]bool{}}
	c.aggKey = seededKey(t, rng)
	c.aggID = replicaOf(t, c.aggKey)
	for range nodes {
		k := seededKey(t, rng)
		c.keys = append(c.keys, k)
		c.ids = append(c.ids, replicaOf(t, k))
		c.marks = append(c.marks, crdt.VersionVector{})
		c.rmarks = append(c.rmarks, crdt.VersionVector{})
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

// startUplink starts node i's uplink from its persisted watermarks.
func (c *cloudSim) startUplink(i int) {
	n := c.sim.Nodes[i]
	c.boxes[i] = NewStreams(view{n, func(name string) bool { return !bulk(name) }}, view{n, bulk}, c.marks[i], c.rmarks[i], c.cfg, c.newest)
}

// pump publishes what node i's outbox lets out.
func (c *cloudSim) pump(i int) {
	ob := c.boxes[i]
	if ob == nil {
		return
	}
	// The readings watermark moves when the outbox finds entries its log
	// no longer holds, too, not only with acks.
	defer func() { c.rmarks[i] = ob.Readings.Watermark() }()
	for {
		b, readings, err := ob.Next()
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
		c.send(cloudMsg{to: -1, readings: readings, data: data})
	}
}

func (c *cloudSim) send(m cloudMsg) {
	if c.rng.Float64() < c.loss {
		return
	}
	c.flight = append(c.flight, m)
	if c.rng.Float64() < c.loss/2 {
		c.flight = append(c.flight, m)
	}
}

// storeReadings is the aggregator's engine.Readings.
func (c *cloudSim) storeReadings(es []replication.Entry) {
	for _, e := range es {
		have := c.held[e.Origin]
		if m, ok := e.Delta.Value.(*crdt.ORMap); ok {
			for _, f := range m.Fields() {
				rs, ok := m.Field(f).(*crdt.ReadingSet)
				if !ok {
					c.t.Fatalf("a readings batch holds %s", f.Name)
				}
				rs.Each(func(d crdt.Dot, _ crdt.Reading) {
					if d.Replica == e.Origin && d.Seq >= e.First && d.Seq <= e.Last && !have.Contains(d.Seq) {
						c.stored[d]++
					}
				})
			}
		}
		c.held[e.Origin] = have.Add(e.First, e.Last)
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
		if m.readings {
			c.storeReadings(msg.Batch.Entries)
		} else if err := c.agg.Apply(msg.Batch.Entries); err != nil {
			c.refused++ // a batch overtook the one before it: sent again later
		}
		held := map[crdt.ReplicaID]crdt.Ranges{}
		for r, rs := range c.held {
			held[r] = slices.Clone(rs)
		}
		ack, err := EncodeAck(c.aggKey, Ack{Node: msg.From, Seq: msg.Batch.Seq, Vector: c.agg.Vector(), Readings: held})
		if err != nil {
			c.t.Fatal(err)
		}
		c.send(cloudMsg{to: i, data: ack})
		return
	}
	if msg.Kind != KindAck || msg.From != c.aggID || msg.Ack.Node != c.ids[m.to] {
		c.t.Fatalf("node %d got a %d from %s for %s", m.to, msg.Kind, msg.From, msg.Ack.Node)
	}
	if ob := c.boxes[m.to]; ob != nil {
		if ob.Acked(*msg.Ack) {
			c.marks[m.to] = ob.State.AckedVector()
		}
		c.rmarks[m.to] = ob.Readings.Watermark()
	}
}

// writeReadings writes one to three raw readings on node i.
func (c *cloudSim) writeReadings(i int, name string) {
	var rs []crdt.Reading
	for range c.rng.IntN(3) + 1 {
		c.clock++
		rs = append(rs, crdt.Reading{Time: c.clock, Value: float64(c.rng.IntN(100))})
	}
	err := c.sim.Write(i, func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		return m.Update(crdt.Field{Name: name, Type: crdt.TypeReadingSet}, func(v crdt.Value) (crdt.Causal, error) {
			d, err := v.(*crdt.ReadingSet).Add(g, rs...)
			if err == nil {
				d.Value.(*crdt.ReadingSet).Each(func(dot crdt.Dot, _ crdt.Reading) { c.written[dot] = true })
			}
			return d, err
		})
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// mark gives node i's log its cloud watermarks, and collects it.
func (c *cloudSim) mark(i int) {
	c.sim.Nodes[i].Mark("cloud", c.marks[i])
	c.sim.Nodes[i].Mark("cloud/readings", c.rmarks[i])
	c.sim.Nodes[i].Collect()
}

// stateOf returns a node's state without its raw readings, encoded: what
// the aggregator holds as state.
func stateOf(t *testing.T, n *simtest.Node) string {
	e := replication.Restrict(replication.Entry{Delta: n.State}, func(name string) bool { return !bulk(name) })
	b, err := e.Delta.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
		if c.rng.IntN(3) == 0 {
			c.writeReadings(i, fmt.Sprintf("_r/s%d", c.rng.IntN(3)))
		} else {
			c.write(i, fmt.Sprintf("k%d", c.rng.IntN(5)), int64(c.rng.IntN(9)+1))
		}
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
		c.mark(c.rng.IntN(n))
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
				c.t.Logf("node %d: backlog %d and %d, in flight %d, acked %v, log %v", i, ob.State.Backlog(), ob.ReadingsBacklog(), ob.InFlight(), ob.State.AckedVector(), c.sim.Nodes[i].Vector())
			}
			c.t.Fatalf("no convergence: aggregator %v, nodes %v; p2p in flight %d, equal %v", c.agg.Vector(), c.sim.Nodes[0].Vector(), c.sim.InFlight(), c.agg.Encoded() == stateOf(c.t, c.sim.Nodes[0]))
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
			done = done && ob.State.Backlog() == 0 && ob.ReadingsBacklog() == 0 && ob.InFlight() == 0 && stateOf(c.t, c.sim.Nodes[i]) == c.agg.Encoded()
		}
		if done {
			return
		}
	}
}

// TestCloudSimulation: whatever the broker loses, duplicates or reorders,
// and however often uplinks restart, the aggregator ends up with the
// nodes' state exactly (counters not double counted) and every raw reading
// once (oldest first in even seeds, newest first in odd ones), every
// node's cloud watermarks cover its log, and the logs are collected.
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
			if got := stateOf(t, n); got != c.agg.Encoded() {
				t.Fatalf("seed %d: node %d and the aggregator differ", seed, i)
			}
			for r, s := range n.Vector() {
				if c.marks[i][r] < s || c.rmarks[i][r] < s {
					t.Fatalf("seed %d: node %d's cloud watermarks %v and %v do not cover its log %v", seed, i, c.marks[i], c.rmarks[i], n.Vector())
				}
			}
		}
		for d := range c.written {
			if c.stored[d] != 1 {
				t.Fatalf("seed %d: reading %v stored %d times", seed, d, c.stored[d])
			}
		}
		if len(c.stored) != len(c.written) {
			t.Fatalf("seed %d: %d readings stored, %d written", seed, len(c.stored), len(c.written))
		}
		// With every peer's and the cloud's ack in, the logs go.
		for range 20 {
			if err := c.sim.Round(); err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range c.sim.Nodes {
			c.mark(i)
			if l := n.LogLen(); l != 0 {
				t.Fatalf("seed %d: node %d keeps %d log entries the cloud and its peers hold", seed, i, l)
			}
		}
	}
	t.Logf("%d batches refused after a gap (sent again)", refused)
}
