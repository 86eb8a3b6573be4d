package p2p

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func (tn *testNode) id() string { return tn.p2p.host.ID().String() }

func stateOf(a, b *testNode) string { return a.p2p.Stats()[b.id()].State }

// TestMembership: a peer that shuts down says so (left); one that vanishes
// is suspected, then dead, and once gone longer than ForgetAfter no longer
// holds back the collection of the log; back, it holds it again.
func TestMembership(t *testing.T) {
	a := startBenchNode(t, nodeOpts{durability: store.None, forget: time.Second})
	b := startBenchNode(t, nodeOpts{durability: store.None}, a.p2p.Addrs()[0])
	c := startBenchNode(t, nodeOpts{durability: store.None}, a.p2p.Addrs()[0])
	a.eng.Do(context.Background(), engine.Add("x", 1))
	waitFor(t, "a to hear b and c", func() bool { return stateOf(a, b) == "alive" && stateOf(a, c) == "alive" })

	b.stop()
	waitFor(t, "b to have left", func() bool { return stateOf(a, b) == "left" })

	c.p2p.host.Close() // gone without a word
	waitFor(t, "c to be suspected", func() bool { s := stateOf(a, c); return s == "suspect" || s == "dead" })
	waitFor(t, "c to be dead", func() bool { return stateOf(a, c) == "dead" })
	waitFor(t, "c's watermark to go", func() bool {
		marks, _ := a.db.Watermarks()
		_, ok := marks["peer/"+c.id()]
		return !ok
	})
	known, err := a.db.KnownPeers()
	if err != nil || known[c.id()].LastSeen == 0 || !known[b.id()].Left {
		t.Errorf("known peers: %+v, %v", known, err)
	}
}

// TestRestartedNodeReconnectsToKnownPeers: a node restarted without any
// configured peer dials the peers it knew.
func TestRestartedNodeReconnectsToKnownPeers(t *testing.T) {
	a := startBenchNode(t, nodeOpts{durability: store.None})
	dir := t.TempDir()
	b := startBenchNode(t, nodeOpts{durability: store.None, dir: dir}, a.p2p.Addrs()[0])
	waitFor(t, "b to know a", func() bool {
		known, _ := b.db.KnownPeers()
		return len(known[a.id()].Addrs) > 0
	})
	b.stop()
	b = startBenchNode(t, nodeOpts{durability: store.None, dir: dir}) // no peers configured
	if _, err := a.eng.Do(context.Background(), engine.Add("after", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's write at the restarted b", func() bool { return counter(b.db, "after") == 1 })
}

// TestPeerExchange: a and c, each configured with b alone, learn of each
// other from b and connect.
func TestPeerExchange(t *testing.T) {
	b := startBenchNode(t, nodeOpts{durability: store.None})
	a := startBenchNode(t, nodeOpts{durability: store.None}, b.p2p.Addrs()[0])
	c := startBenchNode(t, nodeOpts{durability: store.None}, b.p2p.Addrs()[0])
	waitFor(t, "a and c to meet", func() bool { return stateOf(a, c) == "alive" && stateOf(c, a) == "alive" })
}

// TestOneOfTwoRelayedPeersDialsFirst: of two nodes that know each other
// only by relayed addresses, one dials at once and the other only after
// relayDialGrace, so that just one of them starts a hole punch; a direct
// address is dialed at once by either.
func TestOneOfTwoRelayedPeersDialsFirst(t *testing.T) {
	lo, hi := peer.ID("\x00\x01"), peer.ID("\x00\x02")
	relayed := ma.StringCast("/ip4/11.0.0.10/tcp/4001/p2p/12D3KooWS7ETjzoV3JgbXxnV6kskmtZ9987iALNSpTAqP9dWEuMi/p2p-circuit")
	private := ma.StringCast("/ip4/192.168.1.10/tcp/4001")
	public := ma.StringCast("/ip4/11.0.0.1/tcp/4001")
	for _, c := range []struct {
		name        string
		self, other peer.ID
		addrs       []ma.Multiaddr
		waited      time.Duration
		want        bool
	}{
		{"lower, relayed", lo, hi, []ma.Multiaddr{relayed}, 0, true},
		{"higher, relayed", hi, lo, []ma.Multiaddr{relayed}, 0, false},
		{"higher, relayed, just under the grace", hi, lo, []ma.Multiaddr{relayed}, relayDialGrace - time.Millisecond, false},
		{"higher, relayed, after the grace", hi, lo, []ma.Multiaddr{relayed}, relayDialGrace, true},
		{"higher, relayed and private", hi, lo, []ma.Multiaddr{private, relayed}, 0, false},
		{"higher, relayed and public (its NAT)", hi, lo, []ma.Multiaddr{relayed, public}, 0, false},
		{"higher, public only", hi, lo, []ma.Multiaddr{public}, 0, true},
		{"higher, private only", hi, lo, []ma.Multiaddr{private}, 0, true},
	} {
		if got := dialFirst(c.self, c.other, c.addrs, c.waited); got != c.want {
			t.Errorf("%s: dialFirst = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSendLeavesTheRelayedDialToTheLowerPeer checks the rule of dialFirst
// on the send path: of two peers known to each other only through a
// relay, a send from the higher one does not dial within relayDialGrace,
// so that a retried hole punch (the lower one reconnecting) is not met by
// a second dial from the other side.
func TestSendLeavesTheRelayedDialToTheLowerPeer(t *testing.T) {
	a, b := startTestNode(t, ""), startTestNode(t, "")
	lo, hi := a.p2p, b.p2p
	if hi.host.ID() < lo.host.ID() {
		lo, hi = hi, lo
	}
	relayed := ma.StringCast("/ip4/11.0.0.10/tcp/4001/p2p/12D3KooWS7ETjzoV3JgbXxnV6kskmtZ9987iALNSpTAqP9dWEuMi/p2p-circuit")
	lo.host.Peerstore().AddAddr(hi.host.ID(), relayed, time.Hour)
	hi.host.Peerstore().AddAddr(lo.host.ID(), relayed, time.Hour)
	t0 := time.Now()

	var since time.Time
	if !lo.mayDial(hi.host.ID(), &since, t0) {
		t.Error("the lower peer may not dial")
	}
	since = time.Time{}
	if hi.mayDial(lo.host.ID(), &since, t0) || hi.mayDial(lo.host.ID(), &since, t0.Add(relayDialGrace-time.Millisecond)) {
		t.Error("the higher peer dials within the grace")
	}
	if !hi.mayDial(lo.host.ID(), &since, t0.Add(relayDialGrace)) {
		t.Error("the higher peer may not dial after the grace")
	}

	// Connected, a send goes ahead and the wait starts afresh next time.
	if err := hi.host.Connect(context.Background(), peer.AddrInfo{ID: lo.host.ID(), Addrs: lo.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if !hi.mayDial(lo.host.ID(), &since, t0.Add(relayDialGrace)) || !since.IsZero() {
		t.Errorf("connected: send refused, or the wait kept (%v)", since)
	}
}

// TestPunchSchedule: a relayed peer is retried after the first wait, then
// after doubling waits up to maxPunchWait; not while it is busy; it keeps
// its wait while it has no connection at all for a moment (being
// reconnected), and is forgotten once it has a direct one.
func TestPunchSchedule(t *testing.T) {
	p := peer.ID("\x00\x02")
	const first = 15 * time.Second
	t0 := time.Now()
	var conns, busy bool
	connected := func(peer.ID) bool { return conns }
	isBusy := func(peer.ID) bool { return busy }
	var s punchSchedule
	// tick advances the schedule at t, with p relayed or not, and reports
	// whether p was due.
	tick := func(t time.Time, relayed bool) bool {
		var ps []peer.ID
		if relayed {
			ps = []peer.ID{p}
		}
		var due []peer.ID
		s, due = s.next(ps, connected, isBusy, first, t)
		return len(due) == 1
	}
	conns = true
	if tick(t0, true) || tick(t0.Add(first-time.Second), true) {
		t.Fatal("retried before the first wait")
	}
	// Retries at first, then after 2·first, 4·first, … up to the cap.
	at, wait := t0.Add(first), first
	for range 12 {
		if !tick(at, true) {
			t.Fatalf("not retried at %s", at.Sub(t0))
		}
		wait = min(2*wait, maxPunchWait)
		if tick(at.Add(wait-time.Second), true) {
			t.Fatalf("retried %s after the retry at %s, before its wait of %s", wait-time.Second, at.Sub(t0), wait)
		}
		at = at.Add(wait)
	}
	if wait != maxPunchWait {
		t.Fatalf("wait %s after 12 retries, want the cap %s", wait, maxPunchWait)
	}

	// Busy (this node catches up from it): not retried until it is not.
	busy = true
	if tick(at, true) {
		t.Error("retried while busy")
	}
	busy = false
	if !tick(at.Add(time.Second), true) {
		t.Error("not retried once no longer busy")
	}
	at = at.Add(time.Second + maxPunchWait)

	// Reconnecting: no connection at all for a moment. It keeps its wait.
	conns = false
	if tick(at.Add(-time.Minute), false) {
		t.Error("retried while unconnected")
	}
	conns = true
	if tick(at.Add(-time.Second), true) {
		t.Error("the wait started again from the first after a moment without connections")
	}
	if !tick(at, true) {
		t.Error("not retried when its kept wait ended")
	}

	// A direct connection: forgotten. Relayed again later, it starts
	// from the first wait.
	later := at.Add(time.Minute)
	if tick(later, false) || len(s) != 0 {
		t.Fatalf("a directly connected peer is still scheduled: %v", s)
	}
	if tick(later.Add(time.Second), true) || !tick(later.Add(time.Second+first), true) {
		t.Error("relayed again: not retried after the first wait")
	}
}

// TestToldOfIsBounded: a peer that names many peers behind NATs (IDs that
// sort below this node's, so it waits for them to dial) makes the node
// remember at most maxToldOf of them, and forget those not told of again
// for toldOfKept; a peer that needs no wait is dialed all the same.
func TestToldOfIsBounded(t *testing.T) {
	n := startTestNode(t, "").p2p
	relayed := "/ip4/11.0.0.10/tcp/4001/p2p/12D3KooWS7ETjzoV3JgbXxnV6kskmtZ9987iALNSpTAqP9dWEuMi/p2p-circuit"
	var names []replication.PeerAddrs
	for len(names) < 2*maxToldOf {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if id < n.host.ID() {
			names = append(names, replication.PeerAddrs{ID: id.String(), Addrs: []string{relayed}})
		}
	}
	t0 := time.Now()
	for i := 0; i < len(names); i += 64 {
		n.exchanged(context.Background(), names[i:i+64], t0)
	}
	if len(n.toldOf) != maxToldOf {
		t.Errorf("%d peers waited for, want the first %d", len(n.toldOf), maxToldOf)
	}
	// A full map does not stop a peer that needs no wait from being
	// dialed: one with a direct address.
	other := startTestNode(t, "")
	direct := replication.PeerAddrs{ID: other.id(), Addrs: other.p2p.Addrs()[:1]}
	direct.Addrs[0] = strings.TrimSuffix(direct.Addrs[0], "/p2p/"+other.id())
	n.exchanged(context.Background(), []replication.PeerAddrs{direct}, t0)
	waitFor(t, "the directly reachable peer dialed", func() bool {
		return n.host.Network().Connectedness(other.p2p.host.ID()) == network.Connected
	})
	// Told of again (within the grace, or it would be dialed), an entry
	// stays; not told of for toldOfKept, it goes.
	n.exchanged(context.Background(), names[:1], t0.Add(relayDialGrace-time.Second))
	n.exchanged(context.Background(), nil, t0.Add(toldOfKept+time.Second))
	if len(n.toldOf) != 1 {
		t.Errorf("%d peers still waited for after %s, want the one told of again", len(n.toldOf), toldOfKept)
	}
}

// TestGoodbyeWaitsForTheDriver: a goodbye that finds the driver's inbox
// full waits for room, since no round repairs a lost goodbye; another
// message is dropped.
func TestGoodbyeWaitsForTheDriver(t *testing.T) {
	a := startBenchNode(t, nodeOpts{durability: store.None, idle: true})
	h, ctx := rawPeer(t, a)
	s, err := h.NewStream(ctx, a.p2p.host.ID(), IndexedProtocol)
	if err != nil {
		t.Fatal(err)
	}
	var frames []byte
	payload := 0 // what the node counts received: the frames less their lengths
	add := func(m replication.Message) {
		b, err := replication.EncodeIndexed(m)
		if err != nil {
			t.Fatal(err)
		}
		frames = binary.AppendUvarint(frames, uint64(len(b)))
		frames = append(frames, b...)
		payload += len(b)
	}
	vector := replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: crdt.VersionVector{1: 1}}
	for range inboxLen + 1 { // the last finds the inbox full
		add(vector)
	}
	add(replication.Message{Version: replication.Version, Kind: replication.KindLeave})
	if _, err := s.Write(frames); err != nil {
		t.Fatal(err)
	}
	// Every frame read: the goodbye has been offered to the full inbox.
	waitFor(t, "the node to read every frame", func() bool {
		return a.p2p.Stats()[h.ID().String()].BytesReceived == uint64(payload)
	})
	for i := range inboxLen {
		if m := <-a.p2p.in; m.msg.Kind != replication.KindVector {
			t.Fatalf("message %d: %s, want a vector", i, m.msg.Kind)
		}
	}
	select {
	case m := <-a.p2p.in:
		if m.msg.Kind != replication.KindLeave {
			t.Fatalf("after the inbox's vectors: %s, want the goodbye (the vector over the inbox dropped)", m.msg.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the goodbye that found the inbox full was dropped")
	}
}
