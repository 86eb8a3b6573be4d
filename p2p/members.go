package p2p

import (
	"context"
	"net"
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

// leave tells the connected peers that this node is shutting down, so they
// do not suspect it; best effort, within leaveTimeout.
func (n *Node) leave() {
	b, err := replication.Encode(replication.Message{Version: replication.Version, Kind: replication.KindLeave, Fleet: n.cfg.Fleet})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range n.sync.Peers() {
		id, err := peer.Decode(string(p))
		if err != nil || n.host.Network().Connectedness(id) != network.Connected {
			continue
		}
		wg.Go(func() { n.write(ctx, id, b) })
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

// dial connects to a discovered candidate that is not a peer yet. The
// host authenticates it (Noise, fleet key, allowlist); once connected it
// becomes a peer.
func (n *Node) dial(ctx context.Context, c discovery.Candidate) {
	id, err := peer.Decode(c.PeerID)
	if err != nil || id == n.host.ID() {
		return
	}
	// A known peer that is not connected is dialed too: it may be back
	// at a new address.
	if n.host.Network().Connectedness(id) == network.Connected || n.dials.Load() >= maxDials {
		return
	}
	addr, err := manet.FromNetAddr(&net.TCPAddr{IP: c.IP, Port: c.Port})
	if err != nil {
		return
	}
	n.dials.Add(1)
	n.senders.Go(func() {
		defer n.dials.Add(-1)
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := n.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}); err != nil {
			n.o.Logger.Debug("p2p: discovered peer not reached", "peer", c.PeerID, "addr", addr, "err", err)
			return
		}
		n.o.Logger.Info("p2p: discovered peer", "peer", c.PeerID, "name", c.Name, "addr", addr)
		select {
		case n.dialed <- id:
		case <-ctx.Done():
		}
	})
}
