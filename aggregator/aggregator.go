// Package aggregator is the cloud side of cloud sync (`edged aggregate`):
// it subscribes to the batches of every node of its fleets, checks each
// one (limits, signature, sender), merges it through the engine's write
// path into its own store, durably, and only then publishes its ack (its
// log vector) to the node, retained. Merging is idempotent: a batch
// delivered twice changes nothing the second time.
//
// A bad batch (malformed, oversized, forged, or one that would leave a gap
// in an origin's log) is refused and counted; it never stops ingestion
// from other nodes. The aggregator also keeps each node's status (its
// retained birth and last will), last batch and lag, for GET /v1/nodes,
// and stores them (registry.go) so that a restart keeps them.
package aggregator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Config configures the aggregator.
type Config struct {
	Broker mqttconn.Broker
	// Fleets are the fleets whose nodes it aggregates; "+" is every fleet.
	Fleets []string
	// SharedGroup, when set, subscribes to the batches through the MQTT
	// shared subscription $share/<group>/…, for brokers that need it to
	// hand each batch to one of several clients. The aggregators of a
	// group must share one store; with one aggregator, leave it empty.
	SharedGroup string
	// Queue bounds the messages waiting to be merged; while it is full,
	// paho stops reading, and the broker holds the rest.
	Queue int
}

// Options are the node's parts the aggregator uses.
type Options struct {
	Key     crypto.PrivKey
	Replica crdt.ReplicaID
	Engine  *engine.Engine
	DB      *store.DB
	Logger  *slog.Logger
}

// NodeInfo is what the aggregator knows of one node.
type NodeInfo struct {
	Replica string `json:"replica"`
	PeerID  string `json:"peer_id,omitempty"`
	Name    string `json:"name,omitempty"`
	Fleet   string `json:"fleet"`
	Version string `json:"version,omitempty"`
	// Online is its retained status: online from its birth message until
	// its last will or a clean stop.
	Online bool `json:"online"`
	// LastSeen is when its last batch or status arrived.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Lag is how many dots of the node's log (as of its last batch) the
	// cloud lacks.
	Lag     uint64 `json:"lag"`
	Batches uint64 `json:"batches"`
	// ReadingBatches counts its batches of the readings stream.
	ReadingBatches uint64 `json:"reading_batches"`
	Entries        uint64 `json:"entries"`
	Bytes          uint64 `json:"bytes"`
	Refused        uint64 `json:"refused"`
	LastSeq        uint64 `json:"last_seq"`
	LastErr        string `json:"last_error,omitempty"`
	// Shed is how many raw readings the node reports it left out of its
	// batches (a short budget or disk).
	Shed uint64 `json:"shed_readings"`
	// DownEntries counts the entries of the aggregator's own writes sent
	// to the node.
	DownEntries uint64 `json:"down_entries"`
	// Foreign counts the entries of other origins in its batches, left
	// out: the aggregator takes from each node its own writes only.
	Foreign  uint64 `json:"foreign_entries"`
	id       crdt.ReplicaID
	vector   crdt.VersionVector
	statusOK bool
	// downSent is how far the aggregator's own writes were sent to the
	// node, at downAt; sent again when its vector has not caught up
	// within resendDown.
	downSent crdt.Seq
	downAt   time.Time
	// saved is the record last stored (see save).
	saved []byte
}

// resendDown is how long the aggregator's writes sent to a node may take
// to show in its vector before they are sent again.
const resendDown = 30 * time.Second

// refusalReasons are the reasons a message is refused for.
var refusalReasons = []string{"malformed", "forged", "topic", "gap", "store"}

// Stats count what the aggregator did.
type Stats struct {
	Batches, Entries, Bytes, Acks uint64
	// Refused counts refused messages by reason: malformed, forged,
	// topic, gap, store.
	Refused map[string]uint64
}

// Aggregator merges the fleets' batches. Create it with New and run it
// with Run.
type Aggregator struct {
	cfg  Config
	o    Options
	opts *paho.ClientOptions
	in   chan paho.Message
	// wrote is signalled after local writes: they go to the nodes.
	wrote chan struct{}
	// subscribed is closed after the first subscription succeeded.
	subscribed     chan struct{}
	subscribedOnce sync.Once

	mu    sync.Mutex
	nodes map[crdt.ReplicaID]*NodeInfo
	stats Stats
}

// New prepares an aggregator: it reads the broker's credential and TLS
// files. It does not connect.
func New(cfg Config, o Options) (*Aggregator, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Fleets) == 0 {
		cfg.Fleets = []string{"+"}
	}
	cfg.Queue = max(cfg.Queue, 1)
	opts, err := cfg.Broker.Options("edged-aggregator-" + o.Replica.String())
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	// A batch is acknowledged to the broker only once merged: after a
	// crash the broker delivers it again.
	opts.SetAutoAckDisabled(true)
	opts.SetOrderMatters(true)
	a := &Aggregator{cfg: cfg, o: o, opts: opts, in: make(chan paho.Message, cfg.Queue), wrote: make(chan struct{}, 1), subscribed: make(chan struct{}),
		nodes: map[crdt.ReplicaID]*NodeInfo{}, stats: Stats{Refused: map[string]uint64{}}}
	// Every counter exists from the start, at zero: a Prometheus series
	// that first appears above zero shows no increase.
	for _, reason := range refusalReasons {
		a.stats.Refused[reason] = 0
	}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Aggregator) filters() map[string]byte {
	f := map[string]byte{}
	for _, fleet := range a.cfg.Fleets {
		for _, level := range []string{cloud.LevelBatch, cloud.LevelReadings} {
			filter := cloud.Filter(fleet, level)
			if a.cfg.SharedGroup != "" {
				filter = "$share/" + a.cfg.SharedGroup + "/" + filter
			}
			f[filter] = 1
		}
		f[cloud.Filter(fleet, cloud.LevelStatus)] = 1
	}
	return f
}

// Subscribed returns a channel that is closed once the aggregator first
// subscribed to its fleets.
func (a *Aggregator) Subscribed() <-chan struct{} { return a.subscribed }

// Notify tells the aggregator that its store committed; it never blocks.
// Its own writes (through its HTTP API) are sent to every node.
func (a *Aggregator) Notify() {
	select {
	case a.wrote <- struct{}{}:
	default:
	}
}

// Run merges batches until ctx is done.
func (a *Aggregator) Run(ctx context.Context) error {
	opts := *a.opts
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { a.in <- m })
	opts.SetOnConnectHandler(func(c paho.Client) {
		tok := c.SubscribeMultiple(a.filters(), nil)
		if !tok.WaitTimeout(mqttconn.Timeout) || tok.Error() != nil {
			a.o.Logger.Error("aggregator: subscribing failed", "err", tok.Error())
			return
		}
		if st, ok := tok.(*paho.SubscribeToken); ok {
			for filter, qos := range st.Result() {
				if qos == 0x80 {
					a.o.Logger.Error("aggregator: the broker refused a subscription; check its ACL (and shared subscription support)", "filter", filter)
				}
			}
		}
		a.subscribedOnce.Do(func() { close(a.subscribed) })
		a.o.Logger.Info("aggregator: connected", "broker", a.cfg.Broker.URL, "fleets", a.cfg.Fleets)
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		a.o.Logger.Warn("aggregator: connection lost; reconnecting", "broker", a.cfg.Broker.URL, "err", err)
	})
	c := paho.NewClient(&opts)
	stopDial := mqttconn.DialInBackground(ctx, c, a.cfg.Broker.URL, a.cfg.Broker.ReconnectMaxInterval, a.o.Logger)
	// The nodes upload their writes, and no one downloads them from the
	// aggregator: a watermark at its vector lets GC collect them. Its own
	// writes are kept, so that any node, even one that joins later, gets
	// them all; they are meant to be few (desired state, configuration).
	collect := time.NewTicker(time.Minute)
	defer collect.Stop()
	saves := time.NewTicker(saveEvery)
	defer saves.Stop()
	defer a.save()
	for {
		select {
		case <-ctx.Done():
			stopDial()
			// Messages not merged yet are not acknowledged to the broker,
			// which delivers them again to the next session.
			c.Disconnect(250)
			return nil
		case m := <-a.in:
			a.handle(ctx, c, m)
		case <-a.wrote:
			a.pushDown(c)
		case <-saves.C:
			a.save()
		case <-collect.C:
			mark := a.o.DB.LogVector()
			delete(mark, a.o.Replica)
			if err := a.o.DB.SetWatermark("aggregator", mark); err != nil {
				a.o.Logger.Warn("aggregator: watermark", "err", err)
			}
		}
	}
}

// refusal is an error with the reason a message is refused, for metrics.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }

func refuse(reason string, format string, args ...any) error {
	return &refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// handle processes one message and acknowledges it to the broker.
func (a *Aggregator) handle(ctx context.Context, c paho.Client, m paho.Message) {
	fleet, node, level, err := cloud.ParseTopic(m.Topic())
	switch {
	case err != nil:
		err = &refusal{reason: "topic", err: err}
	case level == cloud.LevelStatus:
		err = a.status(c, fleet, node, m.Payload())
	case level == cloud.LevelBatch:
		err = a.batch(ctx, c, fleet, node, m.Payload())
	case level == cloud.LevelReadings:
		err = a.readings(ctx, c, fleet, node, m.Payload())
	}
	if ctx.Err() != nil {
		return // not acknowledged: delivered again
	}
	m.Ack()
	if err == nil {
		return
	}
	reason := "store"
	var r *refusal
	if errors.As(err, &r) {
		reason = r.reason
	}
	a.mu.Lock()
	a.stats.Refused[reason]++
	if n := a.nodes[node]; n != nil && level != cloud.LevelStatus {
		n.Refused++
		n.LastErr = err.Error()
	}
	a.mu.Unlock()
	a.o.Logger.Warn("aggregator: message refused", "topic", m.Topic(), "reason", reason, "err", err)
}

// node returns the record of a node, creating it.
func (a *Aggregator) node(fleet string, id crdt.ReplicaID) *NodeInfo {
	n := a.nodes[id]
	if n == nil {
		n = &NodeInfo{id: id, Replica: id.String(), Fleet: fleet}
		a.nodes[id] = n
	}
	return n
}

// status takes a node's retained status. A node coming online is sent
// the aggregator's writes it lacks (none go to it while it is offline).
func (a *Aggregator) status(c paho.Client, fleet string, id crdt.ReplicaID, payload []byte) error {
	if len(payload) == 0 {
		// A retained status being cleared: the node is retired (see
		// docs/OPERATIONS.md), and forgotten, until it sends again.
		return a.forget(id)
	}
	s, err := cloud.ParseStatus(payload)
	if err != nil {
		return &refusal{reason: "malformed", err: err}
	}
	if s.Replica != id.String() {
		return refuse("forged", "status of %s on the topic of %s", s.Replica, id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node(fleet, id)
	n.Online, n.statusOK = s.State == "online", true
	n.Name, n.PeerID, n.Version = s.Name, s.PeerID, s.Version
	n.LastSeen = time.Now()
	if n.Online {
		a.down(c, n, n.vector[a.o.Replica])
	}
	return nil
}

// nodeBatch decodes a batch published on a node's topic: signed by that
// node. It returns the node's own entries, and how many of other origins
// it left out: a node's copy of a peer's writes may lack what the peer
// withheld from the fleet, and no node may write in another's name (nodes
// send their own only; builds before relayed their peers').
func nodeBatch(payload []byte, id crdt.ReplicaID) (cloud.Message, []store.Entry, int, error) {
	m, err := cloud.Decode(payload)
	if err != nil {
		return m, nil, 0, &refusal{reason: "malformed", err: err}
	}
	if m.Kind != cloud.KindBatch || m.From != id {
		return m, nil, 0, refuse("forged", "a message of kind %d signed by %s on a batch topic of %s", m.Kind, m.From, id)
	}
	es := make([]store.Entry, 0, len(m.Batch.Entries))
	for _, e := range m.Batch.Entries {
		if e.Origin == id {
			es = append(es, store.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta})
		}
	}
	return m, es, len(m.Batch.Entries) - len(es), nil
}

// merged acknowledges a batch once write, which stores it, returned; a
// failure other than the store's (full, failed, closed) is a gap: this
// batch overtook an earlier one that was lost, and the node sends again
// from the ack.
func (a *Aggregator) merged(ctx context.Context, c paho.Client, fleet string, id crdt.ReplicaID, seq uint64, es []store.Entry, write func(context.Context, []store.Entry) error) error {
	var err error
	if len(es) > 0 {
		if err = write(ctx, es); err != nil && ctx.Err() == nil && !storeTrouble(err) {
			err = &refusal{reason: "gap", err: err}
		}
	}
	a.ack(c, id, fleet, seq)
	return err
}

// storeTrouble reports whether err is the aggregator's store's, not the
// batch's: counted under "store".
func storeTrouble(err error) bool {
	for _, e := range []error{store.ErrBudget, store.ErrDiskFull, store.ErrFailed, store.ErrClosed, engine.ErrStopped} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// readings stores a batch of the readings stream: the raw readings of
// entries whose state came in batches before.
func (a *Aggregator) readings(ctx context.Context, c paho.Client, fleet string, id crdt.ReplicaID, payload []byte) error {
	m, es, foreign, err := nodeBatch(payload, id)
	if err != nil {
		return err
	}
	if err := a.merged(ctx, c, fleet, id, m.Batch.Seq, es, a.o.Engine.Readings); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node(fleet, id)
	n.Foreign += uint64(foreign)
	n.LastSeen = time.Now()
	n.ReadingBatches++
	n.Shed = max(n.Shed, m.Batch.Shed)
	n.Bytes += uint64(m.Wire)
	a.stats.Bytes += uint64(m.Wire)
	return nil
}

func (a *Aggregator) batch(ctx context.Context, c paho.Client, fleet string, id crdt.ReplicaID, payload []byte) error {
	m, es, foreign, err := nodeBatch(payload, id)
	if err != nil {
		return err
	}
	b := m.Batch
	if err := a.merged(ctx, c, fleet, id, b.Seq, es, a.o.Engine.Apply); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node(fleet, id)
	n.Foreign += uint64(foreign)
	defer a.down(c, n, b.Vector[a.o.Replica])
	if !n.statusOK {
		n.Online = true // its birth message may have gone before a restart of ours
	}
	n.PeerID, n.Name = m.Peer.String(), cmp.Or(b.Name, n.Name)
	n.LastSeen, n.LastSeq, n.vector, n.Shed = time.Now(), b.Seq, b.Vector, b.Shed
	n.Batches++
	n.Entries += uint64(len(es))
	n.Bytes += uint64(m.Wire)
	a.stats.Batches++
	a.stats.Entries += uint64(len(es))
	a.stats.Bytes += uint64(m.Wire)
	return nil
}

// pushDown sends the aggregator's new writes to every node online. Not
// to one offline: the broker would queue every resend (resendDown) in its
// session until it came back; it gets them when it does (status, batch).
func (a *Aggregator) pushDown(c paho.Client) {
	mine := a.o.DB.LogVector()[a.o.Replica]
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.nodes {
		if n.Online && n.vector[a.o.Replica] < mine {
			a.down(c, n, n.vector[a.o.Replica])
		}
	}
}

// down sends node n the aggregator's own writes after have, the last it
// holds: a batch signed like an ack, on its down topic, unless they were
// sent lately. Called with a.mu held.
func (a *Aggregator) down(c paho.Client, n *NodeInfo, have crdt.Seq) {
	own := a.o.Replica
	mine := a.o.DB.LogVector()[own]
	from := have
	if n.downSent > have && time.Since(n.downAt) < resendDown {
		from = n.downSent
	}
	if mine <= from {
		return
	}
	ch, err := replication.NextChunk(storelog.Log{DB: a.o.DB}, crdt.VersionVector{own: mine}, func(crdt.ReplicaID) crdt.Seq { return from }, downBatchBytes)
	if err != nil || len(ch.Entries) == 0 {
		a.o.Logger.Warn("aggregator: reading its own writes for a node failed", "node", n.Replica, "err", err, "unservable", ch.Unservable)
		return
	}
	wire, err := cloud.EncodeBatch(a.o.Key, cloud.Batch{Vector: a.o.DB.LogVector(), Entries: ch.Entries}, true)
	if err != nil {
		a.o.Logger.Error("aggregator: encoding a downlink failed", "err", err)
		return
	}
	c.Publish(cloud.Topic(n.Fleet, n.id, cloud.LevelDown), 1, false, wire) // not waited for: see ack
	n.downSent, n.downAt = ch.Entries[len(ch.Entries)-1].Last, time.Now()
	n.DownEntries += uint64(len(ch.Entries))
}

// downBatchBytes bounds the deltas of a downlink message.
const downBatchBytes = 256 << 10

// ack publishes the aggregator's vector to a node, retained: after the
// merge is durable, and also after a refusal, so the node learns where to
// send from.
func (a *Aggregator) ack(c paho.Client, id crdt.ReplicaID, fleet string, seq uint64) {
	wire, err := cloud.EncodeAck(a.o.Key, cloud.Ack{Node: id, Seq: seq, Vector: a.o.DB.LogVector(), Readings: a.o.DB.ReadingsHeld()})
	if err != nil {
		a.o.Logger.Error("aggregator: encoding an ack failed", "err", err)
		return
	}
	// Not waited for: with the merge loop waiting, paho could not read
	// the broker's PUBACK behind the batches it is holding back. An ack
	// that is lost is asked for again (the node's outbox polls).
	c.Publish(cloud.Topic(fleet, id, cloud.LevelAck), 1, true, wire)
	a.mu.Lock()
	a.stats.Acks++
	a.mu.Unlock()
}

// Nodes returns what the aggregator knows of each node, by fleet and
// name, with each one's lag against the cloud's vector now.
func (a *Aggregator) Nodes() []NodeInfo {
	held := a.o.DB.LogVector()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]NodeInfo, 0, len(a.nodes))
	for _, n := range a.nodes {
		c := *n
		c.Lag = 0
		for r, s := range n.vector {
			if s > held[r] {
				c.Lag += uint64(s - held[r])
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y NodeInfo) int {
		if x.Fleet != y.Fleet {
			return strings.Compare(x.Fleet, y.Fleet)
		}
		return strings.Compare(x.Name+x.Replica, y.Name+y.Replica)
	})
	return out
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Refused = maps.Clone(a.stats.Refused)
	return s
}
