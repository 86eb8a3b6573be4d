package p2p

import (
	"context"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Relay service limits. A relay serves its own fleet (only fleet members
// can connect at all), and a relayed connection carries the sync itself
// when hole punching fails, so it has no byte or time limit; the number of
// slots and circuits bounds what the relay spends.
const (
	relaySlots    = 64 // reservations: nodes behind NATs served at once
	relayCircuits = 16 // relayed connections per reserved node
	relayPerIP    = 16 // reservations from one address: one NAT, one site
	relayBuffer   = 4096
)

// natOptions returns the libp2p options for nodes behind NATs and for the
// relays that serve them: the relay transport (always on, so a relayed
// address learnt by peer exchange can be dialed), AutoRelay on the
// configured relays, hole punching, and the relay service with AutoNAT.
func natOptions(cfg Config, relays []peer.AddrInfo) []libp2p.Option {
	opts := []libp2p.Option{libp2p.EnableRelay()}
	if len(relays) > 0 {
		// Static relays need no search: reserve as soon as the node knows
		// it is unreachable.
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays,
			autorelay.WithBootDelay(0), autorelay.WithNumRelays(len(relays)), autorelay.WithBackoff(30*time.Second)))
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	reach := cfg.Reachability
	if cfg.RelayService {
		res := relayv2.DefaultResources()
		res.Limit = nil
		res.MaxReservations, res.MaxCircuits, res.MaxReservationsPerIP, res.BufferSize = relaySlots, relayCircuits, relayPerIP, relayBuffer
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(res)), libp2p.EnableNATService())
		if reach == config.ReachabilityAuto {
			// libp2p starts the service only once the host is public.
			reach = config.ReachabilityPublic
		}
	}
	switch reach {
	case config.ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	case config.ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	}
	return opts
}

// maxPunchWait bounds the wait between two hole punching retries.
const maxPunchWait = time.Hour

// punchRetry is when to try hole punching with a relayed peer again.
type punchRetry struct {
	at   time.Time
	wait time.Duration // the wait after the try at at
}

// punchSchedule holds the retries of the peers reachable only through a
// relay.
type punchSchedule map[peer.ID]punchRetry

// next returns the schedule after a tick at now, and the peers due for a
// retry. relayed are the peers reachable only through a relay that this
// node dials first; connected reports whether a peer has any connection;
// busy, a peer not to reconnect now. A peer relayed for the first time
// is due after first; each retry doubles its wait, up to maxPunchWait. A
// peer no longer relayed is forgotten, unless it has no connection at all
// for the moment (it is being reconnected, by a retry or by the peer) and
// its next try is still ahead: it keeps its wait, which would otherwise
// start again from first.
func (s punchSchedule) next(relayed []peer.ID, connected, busy func(peer.ID) bool, first time.Duration, now time.Time) (punchSchedule, []peer.ID) {
	out := make(punchSchedule, len(s))
	var due []peer.ID
	for _, id := range relayed {
		r, ok := s[id]
		if !ok {
			r = punchRetry{at: now.Add(first), wait: first}
		}
		if !now.Before(r.at) && !busy(id) {
			r.wait = min(2*r.wait, maxPunchWait)
			r.at = now.Add(r.wait)
			due = append(due, id)
		}
		out[id] = r
	}
	for id, r := range s {
		if _, ok := out[id]; !ok && now.Before(r.at) && !connected(id) {
			out[id] = r
		}
	}
	return out, due
}

// retryPunches makes peers that are still reachable only through a relay
// try hole punching again. libp2p starts a punch when a relayed
// connection comes in and never again on that connection, so a punch
// lost to timing, to packet loss or to a NAT that was full leaves the
// relay carrying the sync for good. After cfg.HolePunchRetry on relayed
// connections alone (doubling each time, up to maxPunchWait: see
// punchSchedule.next), the node that dials first (dialFirst: the lower
// peer ID) closes them and dials again through the relay: the new
// connection comes in at the peer, which punches. Not while this node
// catches up from the peer by state transfer, which the reconnection
// would interrupt.
func (n *Node) retryPunches(ctx context.Context, now time.Time) {
	if !n.cfg.HolePunching || n.cfg.HolePunchRetry <= 0 {
		return
	}
	net := n.host.Network()
	addrs := map[peer.ID]ma.Multiaddr{}
	var relayed []peer.ID
	for _, id := range net.Peers() {
		if addr := relayedOnly(net.ConnsToPeer(id)); addr != nil && n.host.ID() < id {
			addrs[id] = addr
			relayed = append(relayed, id)
		}
	}
	from, transferring := n.sync.Transferring()
	connected := func(id peer.ID) bool { return len(net.ConnsToPeer(id)) > 0 }
	busy := func(id peer.ID) bool { return transferring && string(from) == id.String() }
	var due []peer.ID
	n.punches, due = n.punches.next(relayed, connected, busy, n.cfg.HolePunchRetry, now)
	for _, id := range due {
		n.mu.Lock()
		n.peerStats(id).PunchRetries++
		n.mu.Unlock()
		n.o.Logger.Info("p2p: peer still reachable only through a relay: reconnecting, so that it tries hole punching again",
			"peer", id, "next_try_in", n.punches[id].wait)
		net.ClosePeer(id)
		n.dial(ctx, "p2p: reconnected through the relay", id, "", addrs[id])
	}
}

// relayedOnly returns the address of a relayed connection among conns if
// none is direct, else nil.
func relayedOnly(conns []network.Conn) ma.Multiaddr {
	var relayed ma.Multiaddr
	for _, c := range conns {
		if !isRelayed(c) {
			return nil
		}
		relayed = c.RemoteMultiaddr()
	}
	return relayed
}
