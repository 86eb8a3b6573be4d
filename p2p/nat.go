package p2p

import (
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
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
