// Package simtest is a deterministic simulator of edged nodes syncing with
// the replication engine: an in-memory store per node (state, context,
// delta log, GC watermarks and state transfer progress, kept across
// crashes), and a network that loses, duplicates, reorders and partitions
// messages, all driven by one seeded source and no wall clock. Tests and
// benchmarks of package replication use it.
package simtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
)

// Node is one simulated node.
type Node struct {
	ID    crdt.ReplicaID
	Peer  replication.PeerID
	State crdt.Causal // the whole key space (an ORMap) with its context
	log   map[crdt.ReplicaID][]replication.Entry
	logvv crdt.VersionVector // per origin, the end of the entries received
	// marks are the peers' acknowledged vectors: the GC watermarks.
	marks map[replication.PeerID]crdt.VersionVector
	// xfer is the persisted progress of a state transfer.
	xfer  *replication.Page
	Sync  *replication.Sync
	peers []replication.PeerID
	cfg   replication.Config
	down  bool
	// legacy: it stands for a build from before compact vectors and
	// relative entries (see Net.Legacy); dense, for one from before
	// indexed origins (Net.Dense).
	legacy, dense bool
	// busy: it sheds load, and its engine is not ticked (see SetBusy).
	busy bool
}

var _ replication.Log = (*Node)(nil)

// Vector implements replication.Log.
func (n *Node) Vector() crdt.VersionVector { return n.logvv.Clone() }

// Context implements replication.Log.
func (n *Node) Context() crdt.Context { return n.State.Ctx.Clone() }

// records returns the node's fields by name.
func (n *Node) records() map[string]map[crdt.Field]crdt.Value {
	out := map[string]map[crdt.Field]crdt.Value{}
	if m, ok := n.State.Value.(*crdt.ORMap); ok {
		for _, f := range m.Fields() {
			if out[f.Name] == nil {
				out[f.Name] = map[crdt.Field]crdt.Value{}
			}
			out[f.Name][f] = m.Field(f)
		}
	}
	return out
}

// States implements replication.Log: a name's record is the encoding of
// the map of its fields.
func (n *Node) States(after, upto string, maxBytes int) ([]replication.State, bool, error) {
	recs := n.records()
	var names []string
	for name := range recs {
		if name > after && (upto == "" || name <= upto) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []replication.State
	size := 0
	for _, name := range names {
		b, err := crdt.MarshalValue(crdt.NewORMap(recs[name]))
		if err != nil {
			return nil, false, err
		}
		if maxBytes > 0 && len(out) > 0 && size+len(b) > maxBytes {
			return out, false, nil
		}
		out = append(out, replication.State{Name: name, Record: b})
		size += len(b)
	}
	return out, true, nil
}

// join joins a page of a state transfer into the node's state, as the
// store does: each name in the page's range with the page's context.
func (n *Node) join(p *replication.Page) error {
	in := func(name string) bool { return name > p.After && (p.Last == "" || name <= p.Last) }
	remote := map[string]map[crdt.Field]crdt.Value{}
	for _, st := range p.States {
		v, err := crdt.UnmarshalValue(st.Record)
		if err != nil {
			return err
		}
		m := v.(*crdt.ORMap)
		remote[st.Name] = map[crdt.Field]crdt.Value{}
		for _, f := range m.Fields() {
			remote[st.Name][f] = m.Field(f)
		}
	}
	fields := map[crdt.Field]crdt.Value{}
	for name, fs := range n.records() {
		for f, v := range fs {
			if !in(name) {
				fields[f] = v
			} else if remote[name] == nil {
				remote[name] = map[crdt.Field]crdt.Value{f: nil}
			} else if _, ok := remote[name][f]; !ok {
				remote[name][f] = nil
			}
		}
	}
	local := n.records()
	for name, fs := range remote {
		for f, d := range fs {
			v, err := crdt.JoinValue(local[name][f], &n.State.Ctx, d, &p.Ctx)
			if err != nil {
				return err
			}
			if v != nil {
				fields[f] = v
			}
		}
	}
	n.State.Value = nil
	if len(fields) > 0 {
		n.State.Value = crdt.NewORMap(fields)
	}
	n.xfer = p
	if p.Done {
		n.State.Ctx.Merge(&p.Base)
		n.logvv.Merge(p.BaseVector)
		n.xfer = nil
	}
	return nil
}

// Collect deletes the log entries that every peer has acknowledged, as
// the store's GC does, and returns how many.
func (n *Node) Collect() int {
	for _, p := range n.peers {
		if n.marks[p] == nil {
			return 0 // a peer not heard from yet holds everything
		}
	}
	dropped := 0
	for o, es := range n.log {
		n.log[o] = slices.DeleteFunc(es, func(e replication.Entry) bool {
			for _, vv := range n.marks {
				if vv[o] < e.Last {
					return false
				}
			}
			dropped++
			return true
		})
	}
	return dropped
}

// Mark records a destination's acknowledged vector (the cloud's, say) as
// a watermark that Collect honours, like a peer's.
func (n *Node) Mark(dest replication.PeerID, vv crdt.VersionVector) { n.marks[dest] = vv.Clone() }

// Truncate deletes the whole log, as the store's data budget may.
func (n *Node) Truncate() { n.log = map[crdt.ReplicaID][]replication.Entry{} }

// LogLen returns the number of entries in the node's log.
func (n *Node) LogLen() int {
	l := 0
	for _, es := range n.log {
		l += len(es)
	}
	return l
}

// Entries implements replication.Log.
func (n *Node) Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	es := n.log[origin]
	i := sort.Search(len(es), func(i int) bool { return es[i].Last > after })
	var out []replication.Entry
	size := 0
	for ; i < len(es); i++ {
		b, err := es[i].Delta.MarshalCBOR()
		if err != nil {
			return nil, 0, err
		}
		if len(out) > 0 && size+len(b) > maxBytes {
			break
		}
		out = append(out, es[i])
		size += len(b)
	}
	return out, size, nil
}

// NewNode returns a node with no engine and no peers: a store that
// entries are applied to, and whose log is read.
func NewNode(id crdt.ReplicaID) *Node {
	return &Node{ID: id, Peer: replication.PeerID(fmt.Sprintf("n%016x", uint64(id))), log: map[crdt.ReplicaID][]replication.Entry{},
		logvv: crdt.VersionVector{}, marks: map[replication.PeerID]crdt.VersionVector{}}
}

// Apply merges entries into the node's store, as the engine's write path
// does: in order, skipping those it holds; an entry after a gap is an
// error.
func (n *Node) Apply(es []replication.Entry) error { return n.apply(es) }

// apply merges entries into the node's store, as the engine's write path
// does: in order, skipping those it holds.
func (n *Node) apply(es []replication.Entry) error {
	for _, e := range es {
		have := n.logvv[e.Origin]
		if e.Last <= have {
			continue
		}
		if e.First > have+1 {
			return fmt.Errorf("node %s: entry %s:%d-%d after %d", n.ID, e.Origin, e.First, e.Last, have)
		}
		if !e.Delta.Ctx.ContainsRange(e.Origin, have+1, e.Last) {
			return fmt.Errorf("node %s: entry %s:%d-%d lacks dots after %d", n.ID, e.Origin, e.First, e.Last, have)
		}
		e.First = have + 1 // logged from its first new dot, as the engine does
		if err := n.State.Apply(e.Delta.Clone()); err != nil {
			return err
		}
		n.log[e.Origin] = append(n.log[e.Origin], e)
		n.logvv[e.Origin] = e.Last
	}
	return nil
}

// Write performs a local operation: mutate gets the key space's map and
// a dot generator and returns the delta. Every operation takes at least
// one dot, like the engine's.
func (n *Node) Write(mutate func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error)) error {
	m, _ := n.State.Value.(*crdt.ORMap)
	if m == nil {
		m = crdt.NewORMap(nil)
	}
	before := n.State.Ctx.Max(n.ID)
	d, err := mutate(m, crdt.NewDotGen(&n.State.Ctx, n.ID))
	if err != nil {
		return err
	}
	if d.Ctx.Max(n.ID) <= before {
		d.Ctx.Add(crdt.Dot{Replica: n.ID, Seq: before + 1})
	}
	e := replication.Entry{Origin: n.ID, First: before + 1, Last: d.Ctx.Max(n.ID), Delta: d}
	return n.apply([]replication.Entry{e})
}

// Encoded returns the node's state encoded: equal states, equal bytes.
func (n *Node) Encoded() string {
	b, err := n.State.MarshalCBOR()
	if err != nil {
		panic(err)
	}
	return string(b)
}

// message is a message in flight.
type message struct {
	from, to replication.PeerID
	data     []byte
}

// Net configures the network's faults, as probabilities per message.
type Net struct {
	Loss, Duplicate float64
	// Ordered delivers each link's messages in the order they were sent,
	// as a kept stream does; links still interleave at random. Without
	// it, any message in flight may come next.
	Ordered bool
	// Legacy lists nodes that stand for builds from before compact
	// vectors and relative entries: messages from and to them are
	// encoded whole (Encode), the others dense (EncodeDense), as their
	// streams' protocols would have it.
	Legacy map[int]bool
	// Dense lists nodes that stand for builds of /edged/sync/3, from
	// before indexed origins: messages from and to them are encoded
	// with EncodeDense (or whole, with a Legacy node), the others with
	// EncodeIndexed.
	Dense map[int]bool
}

// Sim is a set of nodes and the network between them.
type Sim struct {
	Nodes  []*Node
	byPeer map[replication.PeerID]*Node
	rng    *rand.Rand
	net    Net
	flight []message
	cut    map[[2]replication.PeerID]bool
	Bytes  uint64 // bytes sent on the wire, delivered or lost
	Sent   uint64 // messages sent
	// ByKind splits Bytes by message kind.
	ByKind map[replication.Kind]uint64
}

// New returns n nodes, each a peer of every other (a mesh), seeded.
func New(n int, seed uint64, net Net, cfg replication.Config) *Sim {
	s := &Sim{byPeer: map[replication.PeerID]*Node{}, rng: rand.New(rand.NewPCG(seed, 7)), net: net, cut: map[[2]replication.PeerID]bool{}, ByKind: map[replication.Kind]uint64{}}
	for i := range n {
		// Replica IDs spread over 64 bits, as real ones (derived from
		// node keys) are: small ones would encode in one byte of CBOR,
		// not nine, and undercount every vector, dot and entry.
		node := NewNode(crdt.ReplicaID(uint64(i+1) * 0x9E3779B97F4A7C15))
		node.Peer = replication.PeerID(fmt.Sprintf("p%02d", i+1))
		node.legacy, node.dense = net.Legacy[i], net.Dense[i]
		s.Nodes = append(s.Nodes, node)
		s.byPeer[node.Peer] = node
	}
	for i, node := range s.Nodes {
		for _, o := range s.Nodes {
			if o != node {
				node.peers = append(node.peers, o.Peer)
			}
		}
		c := cfg
		c.Seed = seed*1000 + uint64(i)
		node.cfg = c
		s.start(node)
	}
	return s
}

// start gives n a fresh engine with its peers. A restarted engine has the
// seed it had, so it draws the same numbers again (the driver seeds it from
// the clock): a harsher network than the real one, where late answers to
// an earlier engine's requests can carry the numbers of the new one's.
func (s *Sim) start(n *Node) {
	n.Sync = replication.New(n, n.cfg)
	for _, p := range n.peers {
		n.Sync.AddPeer(p)
	}
	if n.xfer != nil {
		n.Sync.Resume(n.xfer.From, n.xfer.Last, n.xfer.Base, n.xfer.BaseVector)
	}
}

// mark records the peers' acknowledged vectors as watermarks, as the
// driver does.
func (n *Node) mark() {
	for _, p := range n.peers {
		if k := n.Sync.Known(p); k != nil {
			n.marks[p] = k
		}
	}
}

// SetPeers replaces the peers of node i (for topologies other than a mesh).
func (s *Sim) SetPeers(i int, peers ...int) {
	n := s.Nodes[i]
	for _, p := range n.Sync.Peers() {
		n.Sync.RemovePeer(p)
	}
	n.peers = nil
	for _, j := range peers {
		n.peers = append(n.peers, s.Nodes[j].Peer)
		n.Sync.AddPeer(s.Nodes[j].Peer)
	}
}

// Partition cuts the links between the groups (node indexes); nodes not
// listed keep their links.
func (s *Sim) Partition(groups ...[]int) {
	for a, ga := range groups {
		for b, gb := range groups {
			if a == b {
				continue
			}
			for _, i := range ga {
				for _, j := range gb {
					s.cut[[2]replication.PeerID{s.Nodes[i].Peer, s.Nodes[j].Peer}] = true
				}
			}
		}
	}
}

// Heal restores every link.
func (s *Sim) Heal() { s.cut = map[[2]replication.PeerID]bool{} }

// Crash stops node i: its engine's memory and the messages to it are
// lost; its store is kept.
func (s *Sim) Crash(i int) {
	n := s.Nodes[i]
	n.down = true
	s.flight = slices.DeleteFunc(s.flight, func(m message) bool { return m.to == n.Peer })
}

// Restart starts node i again with a fresh engine over its store.
func (s *Sim) Restart(i int) {
	n := s.Nodes[i]
	n.down = false
	s.start(n)
}

// send puts messages in flight, checking that every entry sent holds the
// dots it covers: an honest node never sends one that does not.
func (s *Sim) send(from *Node, outs []replication.Out) error {
	for _, o := range outs {
		for _, e := range o.Msg.Entries {
			if !e.Delta.Ctx.ContainsRange(e.Origin, e.First, e.Last) {
				return fmt.Errorf("node %s sent entry %s:%d-%d lacking some of its dots", from.ID, e.Origin, e.First, e.Last)
			}
		}
		encode := replication.EncodeIndexed
		switch to := s.byPeer[o.To]; {
		case from.legacy || to != nil && to.legacy:
			encode = replication.Encode
		case from.dense || to != nil && to.dense:
			encode = replication.EncodeDense
		}
		b, err := encode(o.Msg)
		if err != nil {
			return err
		}
		s.Sent++
		s.Bytes += uint64(len(b))
		s.ByKind[o.Msg.Kind] += uint64(len(b))
		if s.cut[[2]replication.PeerID{from.Peer, o.To}] || s.rng.Float64() < s.net.Loss {
			continue
		}
		s.flight = append(s.flight, message{from: from.Peer, to: o.To, data: b})
		if s.rng.Float64() < s.net.Duplicate {
			s.flight = append(s.flight, message{from: from.Peer, to: o.To, data: b})
		}
	}
	return nil
}

// Write has node i perform a local operation and push it eagerly.
func (s *Sim) Write(i int, mutate func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error)) error {
	n := s.Nodes[i]
	if n.down {
		return nil
	}
	if err := n.Write(mutate); err != nil {
		return err
	}
	outs, err := n.Sync.Push()
	if err != nil {
		return err
	}
	return s.send(n, outs)
}

// SetBusy marks node i as shedding load or not. As the p2p driver does
// then, Tick leaves it out: it starts no rounds, and answers what comes.
func (s *Sim) SetBusy(i int, busy bool) { s.Nodes[i].busy = busy }

// Tick ticks every running node once, but busy ones. A node whose engine gave up a
// state transfer deletes its stored progress, as the driver does.
func (s *Sim) Tick() error {
	for _, n := range s.Nodes {
		if !n.down && !n.busy {
			abandoned := n.Sync.Stats().TransfersAbandoned
			if err := s.send(n, n.Sync.Tick()); err != nil {
				return err
			}
			if n.Sync.Stats().TransfersAbandoned > abandoned {
				n.xfer = nil
			}
		}
	}
	return nil
}

// Deliver delivers one message in flight, chosen at random (so messages
// are reordered), and reports whether there was one.
func (s *Sim) Deliver() (bool, error) {
	if len(s.flight) == 0 {
		return false, nil
	}
	i := s.rng.IntN(len(s.flight))
	if s.net.Ordered {
		i = s.firstOnLink(i)
	}
	m := s.flight[i]
	s.flight = slices.Delete(s.flight, i, i+1)
	to := s.byPeer[m.to]
	if to.down {
		return true, nil
	}
	msg, err := replication.Decode(m.data)
	if err != nil {
		return true, err
	}
	res, err := to.Sync.Step(m.from, msg)
	if err != nil {
		return true, err
	}
	if err := s.send(to, res.Out); err != nil {
		return true, err
	}
	if len(res.Apply) > 0 {
		if err := to.apply(res.Apply); err != nil {
			return true, err
		}
		if err := s.send(to, to.Sync.Committed(m.from)); err != nil {
			return true, err
		}
	}
	if res.Page != nil {
		if err := to.join(res.Page); err != nil {
			return true, err
		}
		if err := s.send(to, to.Sync.PageCommitted(m.from)); err != nil {
			return true, err
		}
	}
	to.mark()
	return true, nil
}

// firstOnLink returns the index of the oldest message in flight on the
// link of message i.
func (s *Sim) firstOnLink(i int) int {
	for j, m := range s.flight[:i] {
		if m.from == s.flight[i].from && m.to == s.flight[i].to {
			return j
		}
	}
	return i
}

// InFlight returns the number of messages in flight.
func (s *Sim) InFlight() int { return len(s.flight) }

// Round ticks every node and then delivers every message in flight,
// including those sent in reply, until none is left.
func (s *Sim) Round() error {
	if err := s.Tick(); err != nil {
		return err
	}
	for {
		more, err := s.Deliver()
		if err != nil || !more {
			return err
		}
	}
}

// Converged reports whether every running node holds the same state.
func (s *Sim) Converged() bool {
	var first string
	for i, n := range s.Nodes {
		if i == 0 {
			first = n.Encoded()
		} else if n.Encoded() != first {
			return false
		}
	}
	return true
}
