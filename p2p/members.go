package p2p

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/discovery"
	"github.com/edged-dev/edged/membership"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// persistEvery is how often a live peer's last sighting is stored.
const persistEvery = time.Minute

// leaveTimeout bounds the goodbyes sent at shutdown.
const leaveTimeout = time.Second

// heard records a message from p: a heartbeat, or its goodbye (leave).
// It reports whether the message was a goodbye, which goes no further.
func (n *Node) heard(p replication.PeerID, leave bool, now time.Time) bool {
	var c membership.Change
	var changed bool
	if leave {
		c, changed = n.members.Leave(string(p), now)
	} else {
		c, changed = n.members.Heartbeat(string(p), now)
	}
	if n.forgotten[p] {
		// Back after being forgotten: it holds back the log again from
		// now on, and what it lacks comes by state transfer.
		delete(n.forgotten, p)
		n.setMark(p, crdt.VersionVector{})
	}
	if changed {
		n.changed(c, now)
		return leave
	}
	if id, err := peer.Decode(string(p)); err == nil {
		n.mu.Lock()
		if st := n.peerStats(id); st.State == "" {
			st.State, st.StateSince = membership.Alive.String(), now
		}
		n.mu.Unlock()
	}
	if now.Sub(n.persisted[p]) >= persistEvery {
		n.persist(p)
	}
	return leave
}

// judge runs the failure detector and forgets peers gone too long.
func (n *Node) judge(now time.Time) {
	for _, c := range n.members.Tick(now) {
		n.changed(c, now)
	}
	for _, m := range n.members.Members() {
		p := replication.PeerID(m.ID)
		if (m.State == membership.Dead || m.State == membership.Left) && now.Sub(m.LastSeen) >= n.cfg.ForgetAfter && !n.forgotten[p] {
			n.forgotten[p] = true
			delete(n.marks, p)
			if err := n.o.DB.RemoveWatermark(watermarkPrefix + m.ID); err != nil {
				n.o.Logger.Warn("p2p: remove watermark failed", "peer", m.ID, "err", err)
			}
			n.o.Logger.Warn("p2p: peer gone too long: it no longer holds back log collection, and will be caught up by state transfer if it returns",
				"peer", m.ID, "last_seen", m.LastSeen, "forget_after", n.cfg.ForgetAfter)
		}
	}
}

// changed logs a change of a peer's state, shows it and stores it.
func (n *Node) changed(c membership.Change, now time.Time) {
	level := n.o.Logger.Info
	if c.To == membership.Suspect || c.To == membership.Dead {
		level = n.o.Logger.Warn
	}
	m, _ := n.members.Get(c.ID)
	n.exchangeDue = n.exchangeDue || c.To == membership.Alive
	level("p2p: peer "+c.To.String(), "peer", c.ID, "was", c.From.String(), "last_seen", m.LastSeen, "phi", m.Phi)
	if id, err := peer.Decode(c.ID); err == nil {
		n.mu.Lock()
		st := n.peerStats(id)
		st.State, st.StateSince = c.To.String(), now
		n.mu.Unlock()
	}
	n.persist(replication.PeerID(c.ID))
}

// persist stores what is known of p: its addresses and last sighting.
func (n *Node) persist(p replication.PeerID) {
	m, ok := n.members.Get(string(p))
	id, err := peer.Decode(string(p))
	if !ok || err != nil {
		return
	}
	kp := store.KnownPeer{LastSeen: m.LastSeen.UnixMilli(), Left: m.State == membership.Left}
	for i, a := range n.host.Peerstore().Addrs(id) {
		if i == 8 {
			break
		}
		kp.Addrs = append(kp.Addrs, a.String())
	}
	if err := n.o.DB.SetKnownPeer(string(p), kp); err != nil {
		n.o.Logger.Warn("p2p: store known peer failed", "peer", p, "err", err)
		return
	}
	n.persisted[p] = m.LastSeen
}

// goodbye sends a sender's last message at shutdown on its kept stream,
// after all it sent before, so that the peer cannot read the goodbye
// first, and waits for the peer to have read it (see outStream.finish);
// best effort, within leaveTimeout.
func (n *Node) goodbye(out *outStream) {
	if out.s == nil || !kept(out.s.Protocol()) {
		return // leave sends it
	}
	ctx, cancel := context.WithTimeout(network.WithNoDial(context.Background(), "goodbye"), leaveTimeout)
	defer cancel()
	if _, err := out.write(ctx, n.goodbyeMsg()); err == nil {
		n.mu.Lock()
		n.saidBye[out.peer] = true
		n.mu.Unlock()
		out.finish(ctx)
	}
}

func (n *Node) goodbyeMsg() replication.Message {
	return replication.Message{Version: replication.Version, Kind: replication.KindLeave, Fleet: n.cfg.Fleet}
}

// leave tells the connected peers that this node is shutting down, so they
// do not suspect it; best effort, within leaveTimeout. It runs after the
// senders stopped, for the peers they did not tell (see goodbye).
func (n *Node) leave() {
	bye := n.goodbyeMsg()
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range n.sync.Peers() {
		id, err := peer.Decode(string(p))
		if err != nil || n.saidBye[id] || n.host.Network().Connectedness(id) != network.Connected {
			continue
		}
		wg.Go(func() {
			o := outStream{host: n.host, peer: id}
			if _, err := o.write(ctx, bye); err == nil {
				o.finish(ctx)
			}
			o.close(nil)
		})
	}
	wg.Wait()
}

// dialTimeout bounds a dial of a discovered candidate, and maxDials the
// dials under way.
const (
	dialTimeout = 10 * time.Second
	maxDials    = 4
)

// discover runs mDNS until ctx is done; without a usable interface it
// logs why and gives up (static and known peers still work).
func (n *Node) discover(ctx context.Context) {
	port := 0
	for _, a := range n.host.Addrs() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			port, _ = strconv.Atoi(p)
			break
		}
	}
	self := discovery.Self{PeerID: n.host.ID().String(), Fleet: n.fleetTag, Name: n.cfg.Name, Port: port}
	err := discovery.Run(ctx, *n.cfg.MDNS, self, func(c discovery.Candidate) {
		select {
		case n.found <- c:
		default: // Run is behind: the next browse finds it again
		}
	}, n.o.Logger)
	if err != nil {
		n.o.Logger.Warn("p2p: mDNS discovery is off", "err", err)
	}
}

// dialCandidate dials a peer found by mDNS.
func (n *Node) dialCandidate(ctx context.Context, c discovery.Candidate) {
	id, err := peer.Decode(c.PeerID)
	if err != nil {
		return
	}
	addr, err := manet.FromNetAddr(&net.TCPAddr{IP: c.IP, Port: c.Port})
	if err != nil {
		return
	}
	n.dial(ctx, "p2p: found peer", id, c.Name, addr)
}

// dial connects to a found peer that is not connected, and logs msg when
// it is. The host authenticates it (Noise, fleet key, allowlist); once
// connected it becomes a peer.
func (n *Node) dial(ctx context.Context, msg string, id peer.ID, name string, addrs ...ma.Multiaddr) {
	// A known peer that is not connected is dialed too: it may be back
	// at a new address.
	if id == n.host.ID() || n.host.Network().Connectedness(id) == network.Connected || n.dials.Load() >= maxDials {
		return
	}
	n.dials.Add(1)
	n.senders.Go(func() {
		defer n.dials.Add(-1)
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := n.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}); err != nil {
			n.o.Logger.Debug("p2p: found peer not reached", "peer", id, "addrs", addrs, "err", err)
			return
		}
		n.o.Logger.Info(msg, "peer", id, "name", name, "addrs", addrs)
		select {
		case n.dialed <- id:
		case <-ctx.Done():
		}
	})
}

// exchangeTicks is how many ticks apart a node tells its peers about its
// other peers (peer exchange).
const exchangeTicks = 30

// exchange returns, for each alive peer, a message with the addresses of
// the node's other alive peers: peers beyond the LAN (or with mDNS off)
// learn of each other through any peer they share.
func (n *Node) exchange() []replication.Out {
	var alive []replication.PeerAddrs
	for _, m := range n.members.Members() {
		id, err := peer.Decode(m.ID)
		if err != nil || m.State != membership.Alive {
			continue
		}
		pa := replication.PeerAddrs{ID: m.ID}
		for _, a := range n.host.Peerstore().Addrs(id) {
			if len(pa.Addrs) < 8 {
				pa.Addrs = append(pa.Addrs, a.String())
			}
		}
		if len(pa.Addrs) > 0 && len(alive) < replication.MaxExchangedPeers {
			alive = append(alive, pa)
		}
	}
	if len(alive) < 2 {
		return nil // a peer learns nothing from its own address
	}
	var outs []replication.Out
	for _, pa := range alive {
		others := make([]replication.PeerAddrs, 0, len(alive)-1)
		for _, o := range alive {
			if o.ID != pa.ID {
				others = append(others, o)
			}
		}
		outs = append(outs, replication.Out{To: replication.PeerID(pa.ID),
			Msg: replication.Message{Version: replication.Version, Kind: replication.KindPeers, Peers: others}})
	}
	return outs
}

// exchanged dials the peers another peer told of that this node is not
// connected to; as with mDNS, the host authenticates them.
func (n *Node) exchanged(ctx context.Context, peers []replication.PeerAddrs, now time.Time) {
	// A peer waited for and not told of again for two exchanges (at
	// least toldOfKept) is forgotten: if it is told of later, the wait
	// starts afresh.
	keep := max(toldOfKept, 2*exchangeTicks*n.cfg.Tick)
	for id, t := range n.toldOf {
		if now.Sub(t.last) > keep {
			delete(n.toldOf, id)
		}
	}
	for _, pa := range peers {
		id, err := peer.Decode(pa.ID)
		if err != nil {
			continue
		}
		if n.host.Network().Connectedness(id) == network.Connected {
			delete(n.toldOf, id)
			continue
		}
		var addrs []ma.Multiaddr
		for _, s := range pa.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		t, waiting := n.toldOf[id]
		if !waiting {
			t.first = now
		}
		if dialFirst(n.host.ID(), id, addrs, now.Sub(t.first)) {
			delete(n.toldOf, id)
			n.dial(ctx, "p2p: found peer", id, "", addrs...)
			continue
		}
		// Waited for, unless a flood of names has filled the map: then
		// the peer, which sorts lower, is left to dial this node.
		if waiting || len(n.toldOf) < maxToldOf {
			t.last = now
			n.toldOf[id] = t
		}
	}
}

// told is when peer exchange first and last told of a peer that this node
// waits for.
type told struct{ first, last time.Time }

// relayDialGrace is how long the node that does not dial first waits for
// the other to dial it through a relay.
const relayDialGrace = 5 * time.Second

// toldOfKept is the least time a peer told of stays waited for without
// being told of again, and maxToldOf bounds how many are: those behind
// NATs whose IDs sort below this node's are few, but a buggy or hostile
// fleet peer may name any number (64 a message).
const (
	toldOfKept = 12 * relayDialGrace
	maxToldOf  = 256
)

// dialFirst reports whether self dials other now, told of its addresses
// addrs waited ago. Two nodes behind NATs learn of each other at the same
// moment, from the relay's peer exchange. If both dialed, each would hold
// an inbound relayed connection and start a hole punch; the two punches
// collide on the same pair of ports, both fail, and the ports stay in
// TIME_WAIT for libp2p's retries. So of two nodes known to each other by
// relayed addresses, the one whose peer ID sorts lower dials at once; the
// other dials only if still unconnected after relayDialGrace (the first
// may not have heard yet). The connection is then inbound on one side,
// which alone starts the hole punch. A peer with a relayed address is
// behind a NAT even when it also lists a public address (its NAT's
// mapping, which drops what the peer did not send for), so such a dial
// would end on the relay too. A peer without one is dialed at once.
func dialFirst(self, other peer.ID, addrs []ma.Multiaddr, waited time.Duration) bool {
	relayed := slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool {
		_, err := a.ValueForProtocol(ma.P_CIRCUIT)
		return err == nil
	})
	return !relayed || self < other || waited >= relayDialGrace
}
