// Package p2p connects a node to its peers over libp2p and drives the
// replication engine: it is the I/O around the pure protocol of package
// replication.
//
// The host speaks TCP with Noise and yamux, and QUIC on the same port
// number (UDP) where no fleet key is set: libp2p private networks work over
// TCP only. With a fleet key it only talks to hosts that hold the same key,
// and with an allowlist only to those peer IDs. Protocol messages travel
// as frames, a uvarint length and then the message, each within a
// deadline: one after another on a stream kept open per peer and direction
// under /edged/sync/4 (with compact vectors, relative entries and indexed
// origins) or, with peers of earlier builds, /edged/sync/3 (without
// indexed origins) or /edged/sync/2 (whole); or one per stream under
// /edged/sync/1 with peers older still.
//
// One goroutine (Run) owns the engine. It ticks it, hands it received
// messages, sends what it returns, applies received entries through the
// node's write path (engine.Apply) and acknowledges them once they are
// durable, joins pages of state transfer (engine.Join) with their
// progress, and pushes local writes eagerly. It also keeps each peer's
// acknowledged vector as the store's GC watermark "peer/<peer ID>", so the
// log keeps what some peer still lacks; a peer behind what the log holds
// is caught up by state transfer.
package p2p

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/storelog"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/discovery"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/membership"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// The stream protocols of anti-entropy messages. Under IndexedProtocol,
// DenseProtocol and StreamProtocol a sender keeps one stream to a peer and
// sends its messages on it one after another; under Protocol each message
// has a stream of its own, which costs a stream's opening, negotiation and
// closing per message (about 280 bytes on the wire, against a 41-byte
// digest). Under IndexedProtocol messages are encoded with indexed origins
// (replication.EncodeIndexed), under DenseProtocol dense (compact vectors,
// relative entries: replication.EncodeDense), under the others whole.
// Nodes speak all four and open streams under the first the peer has:
// earlier builds know only DenseProtocol and those after it, only
// StreamProtocol and Protocol, or only Protocol. A message is encoded for
// the stream it goes on, so a peer that comes back as an earlier build, on
// a new stream, gets what it reads.
const (
	Protocol        protocol.ID = "/edged/sync/1"
	StreamProtocol  protocol.ID = "/edged/sync/2"
	DenseProtocol   protocol.ID = "/edged/sync/3"
	IndexedProtocol protocol.ID = "/edged/sync/4"
)

// kept reports whether messages on a stream of protocol p are many, one
// after another.
func kept(p protocol.ID) bool { return p != Protocol }

// streamTimeout bounds the exchange of one message on a stream.
const streamTimeout = 10 * time.Second

// Config configures the peer-to-peer side of a node.
type Config struct {
	// Addr is the multiaddr to listen on, e.g. /ip4/0.0.0.0/tcp/4001
	// (port 0 picks one).
	Addr string
	// Peers are static peers, as /ip4/…/tcp/…/p2p/<peer ID>.
	Peers []string
	// FleetKeyFile holds the fleet's pre-shared key (32 bytes, hex): only
	// hosts with the same key can connect. Empty means none.
	FleetKeyFile string
	// Allow, when not empty, lists the only peer IDs the host talks to.
	Allow []string
	// Tick is the period of the engine's ticks; rounds start every few.
	Tick time.Duration
	// NoQUIC turns off the QUIC listener that a host without a fleet key
	// adds to a TCP Addr.
	NoQUIC bool
	// Fleet is the fleet name sent with every message; messages of another
	// fleet are dropped.
	Fleet string
	// MDNS, when set, advertises the node and finds peers on the LAN.
	MDNS *discovery.Config
	// Busy, when set and true, holds sync rounds and eager pushes back:
	// the node sheds load.
	Busy func() bool
	// Name is the node's name, advertised by mDNS.
	Name string
	// ForgetAfter is how long a dead (or departed) peer keeps holding back
	// the collection of the log with its watermark; after that it is
	// caught up by state transfer when it returns. Zero means 24 hours.
	ForgetAfter time.Duration
	// Relays are fleet nodes, /ip4/…/tcp/…/p2p/<peer ID>, that relay for
	// this node behind a NAT; they are synced with like static peers.
	Relays []string
	// RelayService makes the node a relay for its fleet's nodes.
	RelayService bool
	// Reachability is config.P2PConfig's: auto, private or public.
	Reachability string
	// HolePunching upgrades relayed connections to direct ones (DCUtR).
	HolePunching bool
	// HolePunchRetry is how long a peer may stay reachable only through a
	// relay before the node reconnects to make it punch again (doubling
	// up to maxPunchWait); 0: never.
	HolePunchRetry time.Duration
}

// Options are the node's parts the driver works with.
type Options struct {
	Key    crypto.PrivKey
	DB     *store.DB
	Engine *engine.Engine
	// Scope says where a key name's data goes; only Fleet fields are
	// sent to peers. Nil means every key is Fleet.
	Scope  func(name string) replication.Scope
	Logger *slog.Logger
}

// Node is a node's peer-to-peer side. Create it with New, start it with
// Run.
type Node struct {
	cfg   Config
	o     Options
	host  host.Host
	sync  *replication.Sync
	in    chan inbound
	local chan struct{}
	// found carries mDNS candidates, and dialed the peers reached by
	// dialing them, to Run.
	found  chan discovery.Candidate
	dialed chan peer.ID
	// fleetTag marks this fleet's mDNS records.
	fleetTag string
	peers    []peer.AddrInfo

	queued atomic.Int64 // bytes held for received messages (inboxBytes)
	dials  atomic.Int64 // dials of discovered peers under way
	ticks  uint64       // ticks of Run, for peer exchange
	// exchangeDue is set when a peer turned alive or told its addresses
	// (a node behind a NAT, its relayed ones): the next tick exchanges
	// peers, so that they learn of each other at once.
	exchangeDue bool

	// outboxes and senders belong to Run's goroutine.
	outboxes map[peer.ID]*outbox
	senders  sync.WaitGroup

	// marks are the watermarks as last stored; they belong to Run's
	// goroutine, as do the membership fields below.
	marks map[replication.PeerID]crdt.VersionVector
	// members judges peers alive, suspect, dead or left.
	members *membership.Table
	// persisted is when each peer's KnownPeer was last stored.
	persisted map[replication.PeerID]time.Time
	// forgotten are the peers whose watermark was dropped (ForgetAfter).
	forgotten map[replication.PeerID]bool
	// kept is each peer's inbound kept stream: one a peer, as its sender
	// has one (a new one resets the old). Guarded by mu, as is saidBye:
	// the peers whose senders sent the goodbye on their kept streams.
	kept    map[peer.ID]network.Stream
	saidBye map[peer.ID]bool
	// toldOf is when peer exchange first and last told of each peer that
	// this node waits for (see dialFirst), since its last message.
	toldOf map[peer.ID]told
	// punches are the peers reachable only through a relay, with when to
	// try hole punching again (retryPunches).
	punches punchSchedule

	mu        sync.Mutex
	stats     map[peer.ID]*PeerStats
	syncStats replication.Stats // a copy, refreshed by Run
}

// PeerStats is what /v1/status shows of a peer.
type PeerStats struct {
	// Addr is the address of the connection the peer's last message came
	// on: relayed ones hold /p2p-circuit. Before that, a static peer's
	// configured address.
	Addr          string    `json:"addr,omitempty"`
	LastMessage   time.Time `json:"last_message,omitzero"`
	BytesSent     uint64    `json:"bytes_sent"`
	BytesReceived uint64    `json:"bytes_received"`
	Errors        uint64    `json:"errors"`
	// Lag is how many of this node's dots the peer is not known to hold,
	// as of the last tick.
	Lag uint64 `json:"lag_deltas"`
	// InStepAt is when the peer was last known to hold everything this
	// node holds (Lag 0): how old its lag is.
	InStepAt time.Time `json:"in_step_at,omitzero"`
	// State is what the failure detector makes of the peer: alive,
	// suspect, dead or left; StateSince is when it became so.
	State      string    `json:"state,omitempty"`
	StateSince time.Time `json:"state_since,omitzero"`
	// StateTransfer: this node is catching up from the peer by state
	// transfer.
	StateTransfer bool `json:"state_transfer,omitempty"`
	// OtherFleet is the fleet of a peer whose messages are dropped because
	// it is not this node's.
	OtherFleet *string `json:"other_fleet,omitempty"`
	// PunchRetries counts the reconnections through the relay made to
	// retry hole punching with the peer.
	PunchRetries uint64 `json:"hole_punch_retries,omitempty"`
}

type inbound struct {
	from peer.ID
	msg  replication.Message
	size int64 // its CBOR's bytes (replication.DecodedLen), held in queued
}

// New creates the libp2p host and listens; it connects to nobody yet.
func New(cfg Config, o Options) (*Node, error) {
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	listen := []string{cfg.Addr}
	opts := []libp2p.Option{
		libp2p.Identity(o.Key),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent("edged"),
	}
	var psk pnet.PSK
	if cfg.FleetKeyFile != "" {
		var err error
		if psk, err = readPSK(cfg.FleetKeyFile); err != nil {
			return nil, fmt.Errorf("p2p: fleet_key_file: %w", err)
		}
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else if !cfg.NoQUIC {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
		if q, ok := quicAddr(cfg.Addr); ok {
			listen = append(listen, q)
		}
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if len(cfg.Allow) > 0 {
		gater, err := newAllowlist(cfg.Allow)
		if err != nil {
			return nil, fmt.Errorf("p2p: %w", err)
		}
		opts = append(opts, libp2p.ConnectionGater(gater))
	}
	rm, err := resourceManager()
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connManager()
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts = append(opts, libp2p.ResourceManager(rm), libp2p.ConnectionManager(cm))
	infos, err := addrInfos("peers", cfg.Peers)
	if err != nil {
		return nil, err
	}
	relays, err := addrInfos("relays", cfg.Relays)
	if err != nil {
		return nil, err
	}
	infos = append(infos, relays...)
	opts = append(opts, natOptions(cfg, relays)...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: addr %q: %w", cfg.Addr, err)
	}
	n := &Node{cfg: cfg, o: o, host: h, in: make(chan inbound, inboxLen), local: make(chan struct{}, 1), peers: infos,
		found: make(chan discovery.Candidate, 64), dialed: make(chan peer.ID, 64), fleetTag: discovery.FleetTag(psk, cfg.Fleet),
		outboxes: map[peer.ID]*outbox{}, stats: map[peer.ID]*PeerStats{}}
	n.sync = replication.New(storelog.Log{DB: o.DB, Keep: fleetOnly(o.Scope)}, replication.Config{Seed: uint64(time.Now().UnixNano()), Self: o.Engine.Replica(), RoundTicks: roundTicks})
	mc := membership.DefaultConfig()
	mc.Interval = roundTicks * cfg.Tick
	n.members, n.persisted, n.forgotten = membership.New(mc), map[replication.PeerID]time.Time{}, map[replication.PeerID]bool{}
	n.toldOf = map[peer.ID]told{}
	n.kept, n.saidBye = map[peer.ID]network.Stream{}, map[peer.ID]bool{}
	if err := n.restore(); err != nil {
		h.Close()
		return nil, err
	}
	h.SetStreamHandler(Protocol, n.receive)
	h.SetStreamHandler(StreamProtocol, n.receive)
	h.SetStreamHandler(DenseProtocol, n.receive)
	h.SetStreamHandler(IndexedProtocol, n.receive)
	return n, nil
}

// addrInfos parses the peer addresses of a Config field.
func addrInfos(field string, addrs []string) ([]peer.AddrInfo, error) {
	var infos []peer.AddrInfo
	for i, s := range addrs {
		info, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: %s[%d]: %q: %w (want /ip4/HOST/tcp/PORT/p2p/PEER-ID)", field, i, s, err)
		}
		infos = append(infos, *info)
	}
	return infos, nil
}

// roundTicks is how many ticks apart sync rounds with a peer start.
const roundTicks = 4

// watermarkPrefix prefixes the store's watermark of each peer.
const watermarkPrefix = "peer/"

// restore loads the peers' watermarks and resumes an interrupted state
// transfer.
func (n *Node) restore() error {
	marks, err := n.o.DB.Watermarks()
	if err != nil {
		return fmt.Errorf("p2p: watermarks: %w", err)
	}
	n.marks = map[replication.PeerID]crdt.VersionVector{}
	for dest, vv := range marks {
		if p, ok := strings.CutPrefix(dest, watermarkPrefix); ok {
			n.marks[replication.PeerID(p)] = vv
		}
	}
	known, err := n.o.DB.KnownPeers()
	if err != nil {
		return fmt.Errorf("p2p: known peers: %w", err)
	}
	now := time.Now()
	for id, kp := range known {
		pid, err := peer.Decode(id)
		if err != nil {
			continue
		}
		for _, s := range kp.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				n.host.Peerstore().AddAddr(pid, a, peerstore.PermanentAddrTTL)
			}
		}
		n.addPeer(replication.PeerID(id))
		n.members.Add(id, time.UnixMilli(kp.LastSeen), now)
		if kp.Left {
			n.members.Leave(id, time.UnixMilli(kp.LastSeen))
		}
	}
	t, err := n.o.DB.Transfer()
	if err != nil {
		return fmt.Errorf("p2p: state transfer progress: %w", err)
	}
	if t != nil {
		n.sync.Resume(replication.PeerID(t.From), t.Cursor, t.Base, t.BaseVector)
		n.o.Logger.Info("p2p: resuming state transfer", "from", t.From, "after", t.Cursor)
	}
	return nil
}

// addPeer starts syncing with p. A peer new to this node gets an empty
// watermark at once: until it acknowledges something, the log keeps
// everything for it.
func (n *Node) addPeer(p replication.PeerID) {
	n.sync.AddPeer(p)
	if _, ok := n.marks[p]; ok {
		return
	}
	n.setMark(p, crdt.VersionVector{})
}

func (n *Node) setMark(p replication.PeerID, vv crdt.VersionVector) {
	if err := n.o.DB.SetWatermark(watermarkPrefix+string(p), vv); err != nil {
		n.o.Logger.Warn("p2p: store watermark failed", "peer", p, "err", err)
		return
	}
	n.marks[p] = vv
}

// updateMarks stores the watermarks of the peers whose acknowledged
// vector changed.
func (n *Node) updateMarks() {
	for _, p := range n.sync.Peers() {
		known := n.sync.Known(p)
		if known == nil || n.forgotten[p] || known.Compare(n.marks[p]) == crdt.Equal {
			continue
		}
		n.setMark(p, known)
	}
}

// Addrs returns the addresses the host listens on, with its peer ID.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.host.ID().String())
	}
	return out
}

// Notify tells the driver that local writes happened; it never blocks.
func (n *Node) Notify() {
	select {
	case n.local <- struct{}{}:
	default:
	}
}

// Stats returns each peer's statistics.
func (n *Node) Stats() map[string]PeerStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]PeerStats{}
	for p, s := range n.stats {
		out[p.String()] = *s
	}
	return out
}

func (n *Node) peerStats(p peer.ID) *PeerStats {
	s := n.stats[p]
	if s == nil {
		s = &PeerStats{}
		n.stats[p] = s
	}
	return s
}

// Run connects to the static peers and drives the engine until ctx is
// done; it then closes the host.
func (n *Node) Run(ctx context.Context) error {
	defer n.host.Close()
	// The senders stop with ctx; the host closes after them.
	defer n.senders.Wait()
	for _, info := range n.peers {
		n.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
		n.host.ConnManager().Protect(info.ID, "static-peer")
		n.addPeer(replication.PeerID(info.ID.String()))
		n.members.Add(info.ID.String(), time.Time{}, time.Now())
		n.mu.Lock()
		n.peerStats(info.ID).Addr = addrString(info.Addrs)
		n.mu.Unlock()
	}
	sub, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("p2p: %w", err)
	}
	defer sub.Close()
	// libp2p's identify waits while the subscription is full, and Run may
	// be in a commit for a while: a goroutine of its own takes the events.
	identified := make(chan struct{}, 1)
	n.senders.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.Out():
				select {
				case identified <- struct{}{}:
				default:
				}
			}
		}
	})
	if n.cfg.MDNS != nil {
		n.senders.Go(func() { n.discover(ctx) })
	}
	tick := time.NewTicker(n.cfg.Tick)
	defer tick.Stop()
	// Eager pushes go at once, but at most one per pushEvery: the writes
	// of a burst share the next push, so that its messages carry many
	// entries (joined per origin, and compressed) rather than one each.
	var lastPush time.Time
	pushTimer := time.NewTimer(0)
	<-pushTimer.C
	pushArmed := false
	for {
		var outs []replication.Out
		var err error
		select {
		case <-ctx.Done():
			// The goodbye goes last, after every other message, or a
			// late one would make the peer think this node is back.
			n.senders.Wait()
			n.leave()
			return nil
		case <-tick.C:
			if !n.busy() {
				outs = n.sync.Tick()
			}
			n.measureLag()
			n.updateMarks()
			n.judge(time.Now())
			n.retryPunches(ctx, time.Now())
			if n.ticks++; n.ticks%exchangeTicks == 0 || n.exchangeDue {
				n.exchangeDue = false
				outs = append(outs, n.exchange()...)
			}
		case <-identified:
			n.exchangeDue = true
		case <-n.local:
			if wait := pushEvery - time.Since(lastPush); wait > 0 {
				if !pushArmed {
					pushTimer.Reset(wait)
					pushArmed = true
				}
				continue
			}
			lastPush = time.Now()
			if !n.busy() {
				outs, err = n.sync.Push()
			}
		case <-pushTimer.C:
			pushArmed, lastPush = false, time.Now()
			if !n.busy() {
				outs, err = n.sync.Push()
			}
		case c := <-n.found:
			n.dialCandidate(ctx, c)
		case id := <-n.dialed:
			p := replication.PeerID(id.String())
			n.addPeer(p)
			n.members.Add(string(p), time.Time{}, time.Now())
		case m := <-n.in:
			n.queued.Add(-m.size)
			outs, err = n.step(ctx, m)
		}
		if err != nil {
			n.o.Logger.Warn("p2p: sync step failed", "err", err)
		}
		for _, o := range outs {
			n.send(ctx, o)
		}
		st := n.sync.Stats()
		if st.TransfersAbandoned > n.syncStats.TransfersAbandoned { // Run alone writes syncStats
			n.o.Logger.Warn("p2p: state transfer given up: the serving peer went silent; the next offer starts a new one")
			if err := n.o.Engine.ForgetTransfer(ctx); err != nil {
				n.o.Logger.Warn("p2p: deleting the state transfer progress failed", "err", err)
			}
		}
		n.mu.Lock()
		if st.OwnAhead > n.syncStats.OwnAhead {
			n.o.Logger.Error("p2p: peers hold writes of this node that it lacks: it was restored from a backup with its old identity; its new writes reuse their dots and peers drop them. Stop it and start it with a new identity.key (docs/OPERATIONS.md, Backup and restore)")
		}
		n.syncStats = st
		from, transferring := n.sync.Transferring()
		for id, ps := range n.stats {
			ps.StateTransfer = transferring && string(from) == id.String()
		}
		n.mu.Unlock()
	}
}

// pushEvery is the shortest time between two eager pushes.
const pushEvery = 5 * time.Millisecond

// busy reports whether the node sheds load: then rounds and eager pushes
// wait (the next round after it catches up).
func (n *Node) busy() bool { return n.cfg.Busy != nil && n.cfg.Busy() }

// measureLag records, for each peer, how far behind this node it is known
// to be.
func (n *Node) measureLag() {
	mine := n.sync.Vector()
	lags := map[peer.ID]uint64{}
	for _, p := range n.sync.Peers() {
		id, err := peer.Decode(string(p))
		if err != nil {
			continue
		}
		known := n.sync.Known(p)
		var lag uint64
		for o, s := range mine {
			if s > known[o] {
				lag += uint64(s - known[o])
			}
		}
		lags[id] = lag
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, lag := range lags {
		st := n.peerStats(id)
		st.Lag = lag
		if lag == 0 {
			st.InStepAt = now
		}
	}
}

// SyncStats returns the replication engine's counters.
func (n *Node) SyncStats() replication.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.syncStats
}

// step hands a message to the engine and applies what it accepts.
func (n *Node) step(ctx context.Context, m inbound) ([]replication.Out, error) {
	from := replication.PeerID(m.from.String())
	// A host that got through the fleet key (and the allowlist) is a
	// peer: one that dials us is synced with from then on.
	n.addPeer(from)
	delete(n.toldOf, m.from) // in touch: a later word of it waits afresh
	if n.heard(from, m.msg.Kind == replication.KindLeave, time.Now()) {
		return nil, nil
	}
	if m.msg.Kind == replication.KindPeers {
		n.exchanged(ctx, m.msg.Peers, time.Now())
		return nil, nil
	}
	res, err := n.sync.Step(from, m.msg)
	outs := res.Out
	if errors.Is(err, replication.ErrInvalid) {
		// A bad message, as one that does not decode (receive): dropped
		// and counted, quietly, so a hostile peer cannot flood the log.
		n.mu.Lock()
		n.peerStats(m.from).Errors++
		n.mu.Unlock()
		n.o.Logger.Debug("p2p: bad message dropped", "peer", m.from, "err", err)
		return outs, nil
	}
	if err != nil {
		return outs, err
	}
	if len(res.Apply) > 0 {
		es := make([]store.Entry, len(res.Apply))
		for i, e := range res.Apply {
			es[i] = store.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta}
		}
		if err := n.o.Engine.Apply(ctx, es); err != nil {
			return outs, fmt.Errorf("apply %d entries from %s: %w", len(es), m.from, err)
		}
		outs = append(outs, n.sync.Committed(from)...)
	}
	if p := res.Page; p != nil {
		if err := n.o.Engine.Join(ctx, n.page(p)); err != nil {
			n.sync.PageFailed(from)
			return outs, fmt.Errorf("state transfer from %s: join %d states after %q: %w", m.from, len(p.States), p.After, err)
		}
		if p.Done {
			n.o.Logger.Info("p2p: state transfer done", "from", m.from)
		}
		outs = append(outs, n.sync.PageCommitted(from)...)
	}
	return outs, nil
}

// page converts a page of state transfer for the engine.
func (n *Node) page(p *replication.Page) *engine.Page {
	recs := make([]store.Record, len(p.States))
	for i, st := range p.States {
		recs[i] = store.Record{Name: st.Name, Enc: st.Record}
	}
	keep := fleetOnly(n.o.Scope)
	if keep == nil {
		keep = func(string) bool { return true }
	}
	return &engine.Page{After: p.After, Last: p.Last, Records: recs, Ctx: p.Ctx, Keep: keep, Done: p.Done,
		Progress: store.Transfer{Version: 1, From: string(p.From), Cursor: p.Last, Base: p.Base, BaseVector: p.BaseVector}}
}

// inboxLen bounds the received messages waiting for the driver, and
// inboxBytes the bytes the node holds for received messages, across all
// streams and peers, from the moment a frame is read until the driver
// takes its message: the frame's wire bytes while it is read, those and
// its CBOR's (replication.DecodedLen, Snappy undone) while it is decoded,
// then its CBOR's while it waits. A frame that does not fit is dropped
// (anti-entropy repairs it); twice the largest frame, the bound lets one
// in whenever nothing else is held. Counting the CBOR, not the wire bytes
// that Snappy may shrink twentyfold, and counting frames before they are
// decoded, bound the memory of receiving per node, whatever the number of
// peers and streams: decoding allocates up to about 15 times the CBOR of
// the messages nodes send, so receiving takes at most about 8 MiB × 15 =
// 120 MiB; a fleet peer's hostile deltas, decoded by crdt, up to about
// 105 times (840 MiB: crdt's bound to lower; docs/PROTOCOL.md, Decoding
// limits). A peer that trickles a frame holds its bytes for up to
// streamTimeout.
const (
	inboxLen   = 16
	inboxBytes = 2 * (replication.MaxMessageBytes + 1)
)

// errInboxFull: a received frame that does not fit under inboxBytes; it
// is dropped, and anti-entropy repairs it.
var errInboxFull = errors.New("p2p: inbox full: message dropped")

// hold adds b bytes to those held for received messages, if they fit
// under inboxBytes, and reports whether they did.
func (n *Node) hold(b int64) bool {
	for {
		q := n.queued.Load()
		if q+b > inboxBytes {
			return false
		}
		if n.queued.CompareAndSwap(q, q+b) {
			return true
		}
	}
}

// outboxLen bounds the messages waiting for one peer, and outboxBytes
// their deltas (as the engine counted them encoded: Message.Size; decoded,
// they take about two to three times that). More are dropped (anti-entropy
// repairs that), so a slow or unreachable peer never holds up the driver
// or the other peers, nor fills the memory. A message waits encoded no
// longer: it is encoded when it is written, for its stream.
const (
	outboxLen   = 64
	outboxBytes = 1 << 20
)

// outbox is the queue of one peer's sender.
type outbox struct {
	ch    chan replication.Message
	bytes atomic.Int64 // the Size of the messages in ch
}

// send queues one message for its peer's sender goroutine, started on
// first use; it never blocks.
func (n *Node) send(ctx context.Context, o replication.Out) {
	id, err := peer.Decode(string(o.To))
	if err != nil {
		return
	}
	o.Msg.Fleet = n.cfg.Fleet
	box := n.outboxes[id]
	if box == nil {
		box = &outbox{ch: make(chan replication.Message, outboxLen)}
		n.outboxes[id] = box
		n.senders.Go(func() { n.sender(ctx, id, box) })
	}
	if !box.put(o.Msg) {
		n.mu.Lock()
		n.peerStats(id).Errors++
		n.mu.Unlock()
	}
}

// put queues m unless the queue is full, by count or by bytes; a message
// alone in the queue may be as big as it likes.
func (b *outbox) put(m replication.Message) bool {
	size := int64(m.Size)
	if len(b.ch) > 0 && b.bytes.Load()+size > outboxBytes {
		return false
	}
	b.bytes.Add(size)
	select {
	case b.ch <- m:
		return true
	default:
		b.bytes.Add(-size)
		return false
	}
}

// take returns the next message, or false once ctx is done.
func (b *outbox) take(ctx context.Context) (replication.Message, bool) {
	select {
	case <-ctx.Done():
		return replication.Message{}, false
	case m := <-b.ch:
		b.bytes.Add(-int64(m.Size))
		return m, true
	}
}

// sender delivers a peer's messages in order, on one stream (see
// outStream). A peer that does not answer costs its own queue at most
// streamTimeout per message; what is lost, the next round repairs.
func (n *Node) sender(ctx context.Context, id peer.ID, box *outbox) {
	var unconnected time.Time // since when sends have found id unconnected
	out := outStream{host: n.host, peer: id}
	defer out.close(nil)
	for {
		m, ok := box.take(ctx)
		if !ok {
			n.goodbye(&out)
			return
		}
		if !n.mayDial(id, &unconnected, time.Now()) {
			n.o.Logger.Debug("p2p: send dropped while the peer dials first", "peer", id)
			continue
		}
		size, err := out.write(ctx, m)
		if errors.Is(err, errEncode) {
			n.o.Logger.Warn("p2p: message dropped", "peer", id, "kind", m.Kind.String(), "err", err)
			continue
		}
		n.mu.Lock()
		st := n.peerStats(id)
		if err != nil {
			st.Errors++
			n.mu.Unlock()
			n.o.Logger.Debug("p2p: send failed", "peer", id, "err", err)
			// The connection may be dead without either side knowing
			// (a partition drops packets, it does not close sockets):
			// close it, so the next send dials afresh.
			if ctx.Err() == nil {
				n.host.Network().ClosePeer(id)
			}
			continue
		}
		st.BytesSent += uint64(size)
		n.mu.Unlock()
	}
}

// mayDial reports whether a send to id may go ahead, dialing id if it is
// not connected. *since is when sends began to find id unconnected (zero:
// connected); mayDial keeps it. The rule is dialFirst's, with the wait
// counted from *since: of two peers known to each other by relayed
// addresses, the one whose ID sorts higher leaves the dialing to the other
// for relayDialGrace. Otherwise, when the lower one closes their relayed
// connections to retry hole punching (retryPunches) and dials again, a
// send from this side in the gap dials too; each side then holds an
// inbound relayed connection and starts a punch, and the punches collide.
// A message not sent is repaired by the next round.
func (n *Node) mayDial(id peer.ID, since *time.Time, now time.Time) bool {
	if len(n.host.Network().ConnsToPeer(id)) > 0 {
		*since = time.Time{}
		return true
	}
	if since.IsZero() {
		*since = now
	}
	return dialFirst(n.host.ID(), id, n.host.Peerstore().Addrs(id), now.Sub(*since))
}

// outStream is the stream a sender writes one peer's messages on: kept
// for them all under IndexedProtocol, DenseProtocol or StreamProtocol, one
// for each under Protocol (a peer of an earlier build).
type outStream struct {
	host host.Host
	peer peer.ID
	s    network.Stream
	w    *bufio.Writer
}

// errEncode: a message that does not encode (the engine bounds them, so
// this is a bug); it is dropped, and the stream and connection stay.
var errEncode = errors.New("p2p: encode failed")

// write sends one framed message, encoded for its stream's protocol, and
// returns its encoded size. A stream opened on a relayed connection is
// given up for a new one once a direct connection has come up (hole
// punching), so that messages take the direct path. A kept stream that
// fails (the peer restarted, or reset it) is given one retry on a fresh
// stream: only a fresh stream's failure is the peer's.
func (o *outStream) write(ctx context.Context, m replication.Message) (int, error) {
	if o.s != nil && isRelayed(o.s.Conn()) && slices.ContainsFunc(o.host.Network().ConnsToPeer(o.peer), isDirect) {
		o.close(nil)
	}
	wasKept := o.s != nil
	n, err := o.send(ctx, m)
	if err != nil && wasKept && !errors.Is(err, errEncode) {
		// Not dialing: whether to dial is the sender's to decide
		// (mayDial), and its next message will.
		n, err = o.send(network.WithNoDial(ctx, "retry on a new stream"), m)
	}
	return n, err
}

func (o *outStream) send(ctx context.Context, m replication.Message) (int, error) {
	if o.s == nil {
		ctx, cancel := context.WithTimeout(ctx, streamTimeout)
		defer cancel()
		s, err := o.host.NewStream(ctx, o.peer, IndexedProtocol, DenseProtocol, StreamProtocol, Protocol)
		if err != nil {
			return 0, err
		}
		o.s, o.w = s, bufio.NewWriter(s)
	}
	encode := replication.Encode
	switch o.s.Protocol() {
	case IndexedProtocol:
		encode = replication.EncodeIndexed
	case DenseProtocol:
		encode = replication.EncodeDense
	}
	b, err := encode(m)
	if err != nil {
		if !kept(o.s.Protocol()) {
			o.close(nil) // a stream of its own: nothing else goes on it
		}
		return 0, fmt.Errorf("%w: %v", errEncode, err) // the message's fault: a kept stream stays
	}
	o.s.SetWriteDeadline(time.Now().Add(streamTimeout))
	var l [binary.MaxVarintLen64]byte
	o.w.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))])
	o.w.Write(b)
	err = o.w.Flush()
	if err != nil || !kept(o.s.Protocol()) {
		o.close(err)
	}
	return len(b), err
}

// finish closes a kept stream after its last message and waits, until
// ctx is done, for the peer to have read it all: its end closes or resets
// once it reads the close (receive). A node that closes its connections
// right after writing loses what they had not sent yet, and what a
// shutdown sends last (the goodbye) is not repaired by a later round.
func (o *outStream) finish(ctx context.Context) {
	if o.s == nil {
		return
	}
	if err := o.s.CloseWrite(); err == nil {
		if d, ok := ctx.Deadline(); ok {
			o.s.SetReadDeadline(d)
		}
		io.Copy(io.Discard, o.s) // the peer writes nothing on it: until EOF, a reset or the deadline
	}
	o.close(nil)
}

// close closes the stream, or resets it after a failure (err != nil).
func (o *outStream) close(err error) {
	if o.s == nil {
		return
	}
	if err != nil {
		o.s.Reset()
	} else {
		o.s.Close()
	}
	o.s, o.w = nil, nil
}

// isRelayed reports whether c runs through a relay; isDirect the converse.
func isRelayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func isDirect(c network.Conn) bool { return !isRelayed(c) }

// receive reads the messages of an inbound stream, one under Protocol and
// any number under the others, and queues them for
// the driver. A peer
// has one kept stream: a new one resets the one before. Between messages a
// kept stream may stay idle for three round intervals, at least a minute
// (then it is reset, and the sender opens a new one when it next writes);
// each message must arrive whole within streamTimeout of its first byte.
func (n *Node) receive(s network.Stream) {
	defer s.Close()
	isKept := kept(s.Protocol())
	if isKept {
		from := s.Conn().RemotePeer()
		n.mu.Lock()
		old := n.kept[from]
		n.kept[from] = s
		n.mu.Unlock()
		if old != nil {
			old.Reset()
		}
		defer func() {
			n.mu.Lock()
			if n.kept[from] == s {
				delete(n.kept, from)
			}
			n.mu.Unlock()
		}()
	}
	idle := max(time.Minute, 3*roundTicks*n.cfg.Tick)
	r := bufio.NewReader(s)
	for {
		if isKept {
			s.SetReadDeadline(time.Now().Add(idle))
			if _, err := r.Peek(1); err != nil {
				s.Reset()
				return
			}
		}
		s.SetDeadline(time.Now().Add(streamTimeout))
		if err := n.receiveOne(s, r); err != nil {
			// The frame was not read whole: the stream is out of step.
			s.Reset()
			return
		}
		if !isKept {
			return
		}
	}
}

// receiveOne reads one framed message from s and queues it for the driver,
// or drops and counts it if it is invalid or the driver's inbox is full.
// It returns an error only when the stream cannot go on: the frame was not
// read whole.
func (n *Node) receiveOne(s network.Stream, r *bufio.Reader) error {
	from := s.Conn().RemotePeer()
	size, err := binary.ReadUvarint(r)
	if err == nil && size > replication.MaxMessageBytes+1 {
		err = fmt.Errorf("message of %d bytes, limit %d", size, replication.MaxMessageBytes)
	}
	var msg replication.Message
	var broken, dropped error // broken: the stream cannot go on
	var held, cborLen int64   // bytes held in queued (inboxBytes); the message's CBOR
	switch {
	case err != nil:
		broken = err
	case !n.hold(int64(size)):
		dropped = errInboxFull
		if _, err := io.CopyN(io.Discard, r, int64(size)); err != nil {
			broken = err
		}
	default:
		held = int64(size)
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			broken = err
			break
		}
		l, err := replication.DecodedLen(b)
		switch {
		case err != nil:
			dropped = err
		case !n.hold(int64(l)):
			dropped = errInboxFull
		default:
			held += int64(l)
			msg, dropped = replication.Decode(b)
			cborLen = int64(l)
		}
	}
	if cmp.Or(broken, dropped) != nil {
		n.queued.Add(-held)
	} else {
		// The frame is read and decoded: the message's CBOR stays held
		// for it until the driver takes it.
		n.queued.Add(cborLen - held)
	}
	n.mu.Lock()
	st := n.peerStats(from)
	if err := cmp.Or(broken, dropped); err != nil {
		st.Errors++
		n.mu.Unlock()
		n.o.Logger.Debug("p2p: bad message dropped", "peer", from, "err", err)
		return broken
	}
	if msg.Fleet != n.cfg.Fleet {
		n.queued.Add(-cborLen)
		st.Errors++
		changed := st.OtherFleet == nil || *st.OtherFleet != msg.Fleet
		st.OtherFleet = &msg.Fleet
		n.mu.Unlock()
		if changed {
			n.o.Logger.Warn("p2p: ignoring a node of another fleet", "peer", from, "its_fleet", msg.Fleet, "fleet", n.cfg.Fleet)
		}
		return nil
	}
	st.OtherFleet = nil
	st.BytesReceived += size
	st.LastMessage = time.Now()
	// The connection in use: relayed (/p2p-circuit) or direct.
	st.Addr = s.Conn().RemoteMultiaddr().String()
	n.mu.Unlock()
	// A peer that connects to us is a peer: the engine learns it on
	// its first message, through the driver.
	in := inbound{from: from, msg: msg, size: cborLen}
	select {
	case n.in <- in:
		return nil
	default:
	}
	if msg.Kind == replication.KindLeave {
		// A goodbye is sent once and no round repairs it: it waits for
		// room, as long as its sender waits for it to be read.
		t := time.NewTimer(leaveTimeout)
		defer t.Stop()
		select {
		case n.in <- in:
			return nil
		case <-t.C:
		}
	}
	// The driver is behind: drop it; anti-entropy repairs it.
	n.queued.Add(-cborLen)
	return nil
}

// quicAddr returns the QUIC address with the port number of a TCP
// address: /ip4/H/tcp/P → /ip4/H/udp/P/quic-v1.
func quicAddr(addr string) (string, bool) {
	i := strings.LastIndex(addr, "/tcp/")
	if i < 0 || strings.Contains(addr[i+len("/tcp/"):], "/") {
		return "", false
	}
	return addr[:i] + "/udp/" + addr[i+len("/tcp/"):] + "/quic-v1", true
}

// readPSK reads a fleet key: 64 hex digits.
func readPSK(path string) (pnet.PSK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%s: want 64 hex digits (32 bytes); generate one with: head -c 32 /dev/urandom | xxd -p -c 64", path)
	}
	return pnet.PSK(key), nil
}

func addrString(as []ma.Multiaddr) string {
	if len(as) == 0 {
		return ""
	}
	return as[0].String()
}

// fleetOnly returns which names' data goes to peers (nil: all).
func fleetOnly(scope func(name string) replication.Scope) func(name string) bool {
	if scope == nil {
		return nil
	}
	return func(name string) bool { return scope(name) == replication.Fleet }
}
