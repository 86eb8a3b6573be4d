// Package uplink is the node's side of cloud sync: it publishes the delta
// log to the aggregator over MQTT, from the cloud's acknowledged vector,
// and moves the cloud watermark when the aggregator acknowledges a durable
// merge. It drives the pure engine of package cloud (cloud.Outbox) with a
// paho client.
//
// The outbox is the store's log: nothing is queued elsewhere, so an outage
// of any length, a reboot or a broker restart loses nothing; the log is
// kept (the "cloud" watermark) until the aggregator's ack covers it.
// Connections are retried with exponential backoff and jitter; a circuit
// breaker stops publishing for a while after repeated publish failures.
package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// The names of the cloud's watermarks in the store: the state stream's,
// and the readings stream's (see cloud.Streams). The log is collected
// only once both cover it.
const (
	Watermark         = "cloud"
	ReadingsWatermark = "cloud/readings"
)

// Config configures the uplink.
type Config struct {
	Broker mqttconn.Broker
	// Fleet and Name are the node's fleet (a topic level) and name.
	Fleet, Name string
	// Compress compresses batches with zstd.
	Compress bool
	// MaxBatchBytes bounds the deltas of a batch; Window is how many
	// batches may await the aggregator's ack.
	MaxBatchBytes, Window int
	// Tick is the outbox's clock; AckTimeout is how long batches may
	// await their ack before they are sent again.
	Tick, AckTimeout time.Duration
	// Aggregator, when set, is the peer ID of the only aggregator whose
	// acks are taken.
	Aggregator peer.ID
	// Version is the binary's version, in the status document.
	Version string
	// Budget, when positive, bounds the bytes published per hour (for
	// metered links), with a burst of five minutes' worth (at least one
	// batch). While less than half the burst is left, raw readings are
	// shed: left out of batches, counted.
	Budget int64
	// Schedule, when not empty, are the daily windows (local time) in
	// which the uplink publishes.
	Schedule []Window
	// NewestReadingsFirst sends the raw readings the cloud lacks newest
	// first (after an outage, the latest go first); otherwise oldest
	// first. Either way, after the CRDT state.
	NewestReadingsFirst bool
}

// Options are the node's parts the uplink uses.
type Options struct {
	Key     crypto.PrivKey
	Replica crdt.ReplicaID
	PeerID  peer.ID
	DB      *store.DB
	// Keep says which names go to the cloud.
	Keep func(name string) bool
	// Apply merges the aggregator's own writes (the downlink) through the
	// node's write path: engine.Engine.Apply.
	Apply func(ctx context.Context, entries []store.Entry) error
	// Bulk says which names are raw readings: they go in the readings
	// stream, after the state (cloud.Streams), and are shed first when the
	// budget or the disk is short. Nil: none, and no readings stream.
	Bulk func(name string) bool
	// Busy reports that the node sheds load: batches wait. Nil: never.
	Busy func() bool
	// DiskShort reports that the data directory nears its budget: the
	// cloud should catch up cheaply so the log can be collected. Nil:
	// never.
	DiskShort func() bool
	Logger    *slog.Logger
}

// Status is what the uplink reports (GET /v1/status, metrics).
type Status struct {
	Connected bool `json:"connected"`
	// Backlog is how many dots of the log the cloud has not
	// acknowledged; ReadingsBacklog how many the readings stream has
	// not (raw readings go after the state); InFlight how many batches
	// of both await their ack.
	Backlog         uint64 `json:"backlog"`
	ReadingsBacklog uint64 `json:"readings_backlog"`
	InFlight        int    `json:"in_flight"`
	// Acked is the cloud's acknowledged vector.
	Acked     map[string]uint64 `json:"acked"`
	LastAckAt time.Time         `json:"last_ack_at,omitzero"`
	// BreakerOpenUntil is set while publishing is paused after repeated
	// failures.
	BreakerOpenUntil time.Time `json:"breaker_open_until,omitzero"`

	Batches         uint64 `json:"batches"`
	Entries         uint64 `json:"entries"`
	DeltaBytes      uint64 `json:"delta_bytes"`
	WireBytes       uint64 `json:"wire_bytes"`
	Acks            uint64 `json:"acks"`
	Retries         uint64 `json:"retries"`
	PublishFailures uint64 `json:"publish_failures"`
	// AcksRefused counts acks that were malformed, or not from the
	// pinned aggregator, or for another node.
	AcksRefused uint64 `json:"acks_refused"`
	// Unservable counts batches that skipped an origin whose entries the
	// log no longer holds (evicted by the data budget).
	Unservable uint64 `json:"unservable"`
	// DownEntries counts entries of the aggregator's own writes merged;
	// DownRefused the downlink messages refused (malformed, not from the
	// aggregator, or after a gap).
	DownEntries uint64 `json:"down_entries"`
	DownRefused uint64 `json:"down_refused"`
	// Paused says why nothing is published now: "schedule" (outside
	// cloud.schedule), "overload" (the node sheds load), "budget"
	// (cloud.budget_bytes_per_hour spent), or "" (not paused).
	Paused string `json:"paused,omitempty"`
	// Shedding is set while raw readings are left out of batches (the
	// budget or the disk is short); ShedReadings counts those left out.
	Shedding     bool   `json:"shedding"`
	ShedReadings uint64 `json:"shed_readings"`
}

// Uplink publishes a node's log to the cloud. Create it with New and run
// it with Run.
type Uplink struct {
	cfg   Config
	o     Options
	opts  *paho.ClientOptions
	topic struct{ batch, readings, ack, down, status string }

	notify chan struct{}
	events chan event

	mu     sync.Mutex
	status Status
}

// event is what paho's goroutines hand the driver.
type event struct {
	up, lost  bool
	ack, down []byte
}

// New prepares an uplink: it reads the broker's credential and TLS files.
// It does not connect.
func New(cfg Config, o Options) (*Uplink, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	opts, err := cfg.Broker.Options("edged-" + o.Replica.String())
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u := &Uplink{cfg: cfg, o: o, opts: opts, notify: make(chan struct{}, 1), events: make(chan event, 16)}
	u.topic.batch = cloud.Topic(cfg.Fleet, o.Replica, cloud.LevelBatch)
	u.topic.ack = cloud.Topic(cfg.Fleet, o.Replica, cloud.LevelAck)
	u.topic.down = cloud.Topic(cfg.Fleet, o.Replica, cloud.LevelDown)
	u.topic.readings = cloud.Topic(cfg.Fleet, o.Replica, cloud.LevelReadings)
	u.topic.status = cloud.Topic(cfg.Fleet, o.Replica, cloud.LevelStatus)
	return u, nil
}

// Notify tells the uplink that the log grew; it never blocks.
func (u *Uplink) Notify() {
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

// Status returns the uplink's state and counters.
func (u *Uplink) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

func (u *Uplink) statusDoc(state string) []byte {
	b, _ := json.Marshal(cloud.Status{State: state, Name: u.cfg.Name, Replica: u.o.Replica.String(), PeerID: u.o.PeerID.String(), Version: u.cfg.Version})
	return b
}

// put hands paho's news to the driver without blocking paho; an ack that
// does not fit is dropped (a later one, or a poll, brings the word
// again).
func (u *Uplink) put(e event) {
	select {
	case u.events <- e:
	default:
		if e.up || e.lost {
			u.events <- e // rare, and the driver is never blocked on paho
		}
	}
}

// Run publishes until ctx is done, then marks the node offline and
// disconnects.
func (u *Uplink) Run(ctx context.Context) error {
	acked, err := u.watermark(Watermark)
	if err != nil {
		return err
	}
	keep := func(name string) bool { return u.o.Keep == nil || u.o.Keep(name) }
	bulk := func(name string) bool { return u.o.Bulk != nil && u.o.Bulk(name) }
	// The node sends its own writes only. A peer's writes in its log may
	// lack what the peer withheld from the fleet (raw readings under
	// readings.scope cloud, namespaces of scope cloud), and the cloud,
	// taking the copy for the whole, would skip the peer's own.
	self := func(r crdt.ReplicaID) bool { return r == u.o.Replica }
	state := storelog.Log{DB: u.o.DB, Keep: func(name string) bool { return keep(name) && !bulk(name) }, Origins: self}
	// The readings view: the entries with only their raw readings, and
	// none while they are shed.
	log := &shedLog{Log: storelog.Log{DB: u.o.DB, Keep: func(name string) bool { return keep(name) && bulk(name) }, Origins: self}, bulk: bulk}
	var readings cloud.ReadingsLog // nil: no raw readings, no readings stream
	var readingsAcked crdt.VersionVector
	if u.o.Bulk != nil {
		if readingsAcked, err = u.watermark(ReadingsWatermark); err != nil {
			return err
		}
		readings = log
	}
	ticks := max(int(u.cfg.AckTimeout/u.cfg.Tick), 1)
	st := cloud.NewStreams(state, readings, acked, readingsAcked, cloud.OutboxConfig{MaxBatchBytes: u.cfg.MaxBatchBytes, Window: u.cfg.Window, RetryTicks: ticks},
		u.cfg.NewestReadingsFirst)

	opts := *u.opts
	opts.SetWill(u.topic.status, string(u.statusDoc("offline")), 1, true)
	receive := func(_ paho.Client, m paho.Message) {
		switch m.Topic() {
		case u.topic.down:
			u.put(event{down: m.Payload()})
		case u.topic.ack:
			u.put(event{ack: m.Payload()})
		}
	}
	// The session is persistent: what the aggregator sent while the node
	// was down comes right after the connection, before the subscription
	// below is renewed. paho acknowledges no message without a handler,
	// and a broker sends nothing more once its window of unacknowledged
	// messages is full, so the handler is there from the start.
	opts.SetDefaultPublishHandler(receive)
	opts.SetOnConnectHandler(func(c paho.Client) {
		// Birth first, then the acks: the retained one arrives at once.
		if tok := c.Publish(u.topic.status, 1, true, u.statusDoc("online")); !tok.WaitTimeout(mqttconn.Timeout) || tok.Error() != nil {
			u.o.Logger.Warn("uplink: birth message not acknowledged", "err", tok.Error())
		}
		tok := c.SubscribeMultiple(map[string]byte{u.topic.ack: 1, u.topic.down: 1}, receive)
		if !tok.WaitTimeout(mqttconn.Timeout) || tok.Error() != nil {
			u.o.Logger.Error("uplink: subscribing to acks failed; check the broker's ACL", "topics", []string{u.topic.ack, u.topic.down}, "err", tok.Error())
		}
		u.put(event{up: true})
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		u.o.Logger.Warn("uplink: connection lost; reconnecting", "broker", u.cfg.Broker.URL, "err", err)
		u.put(event{lost: true})
	})
	c := paho.NewClient(&opts)
	stopDial := mqttconn.DialInBackground(ctx, c, u.cfg.Broker.URL, u.cfg.Broker.ReconnectMaxInterval, u.o.Logger)
	defer func() {
		stopDial()
		if c.IsConnectionOpen() {
			// A clean stop does not fire the will: say it.
			c.Publish(u.topic.status, 1, true, u.statusDoc("offline")).WaitTimeout(time.Second)
		}
		c.Disconnect(250)
	}()

	d := driver{u: u, c: c, st: st, ctx: ctx, log: log, rmark: readingsAcked}
	if u.cfg.Budget > 0 {
		d.burst = max(int(u.cfg.Budget/12), u.cfg.MaxBatchBytes)
		d.budget = rate.NewLimiter(rate.Limit(float64(u.cfg.Budget)/3600), d.burst)
	}
	tick := time.NewTicker(u.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			st.Tick()
		case <-u.notify:
		case e := <-u.events:
			d.handle(e)
		}
		if d.connected && time.Now().After(d.openUntil) && d.admit(time.Now()) {
			d.pump()
			d.persistReadings()
		}
		d.report()
	}
}

// watermark returns one of the cloud's persisted watermarks, registering
// an empty one on first start: from then on the store keeps the log until
// the cloud acknowledges it.
func (u *Uplink) watermark(name string) (crdt.VersionVector, error) {
	marks, err := u.o.DB.Watermarks()
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if vv, ok := marks[name]; ok {
		return vv, nil
	}
	if err := u.o.DB.SetWatermark(name, crdt.VersionVector{}); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	return crdt.VersionVector{}, nil
}

// The circuit breaker: after breakerFailures publish failures in a row,
// no publishing for a wait that starts at 1s and doubles up to the
// broker's reconnect_max_interval.
const breakerFailures = 3

// driver is the state of Run's loop.
type driver struct {
	u         *Uplink
	ctx       context.Context
	c         paho.Client
	st        *cloud.Streams
	connected bool
	failures  int
	openFor   time.Duration
	openUntil time.Time
	lastAck   time.Time
	// rmark is the readings watermark as last stored.
	rmark crdt.VersionVector
	// aggregator is the signer of the last ack taken: the only one whose
	// downlink is taken when none is pinned.
	aggregator peer.ID
	// early holds the downlinks that came before any ack told who the
	// aggregator is (it may write to a node it learnt of by its birth
	// message, before the node's first batch); the first ack lets them in.
	early  [][]byte
	counts Status // the driver's own counters
	log    *shedLog
	budget *rate.Limiter // nil: no budget
	burst  int
	paused string
}

// admit reports whether batches may be published at now (the schedule,
// the budget), and decides whether raw readings are shed.
func (d *driver) admit(now time.Time) bool {
	switch {
	case !scheduled(d.u.cfg.Schedule, now):
		d.paused = "schedule"
	case d.u.o.Busy != nil && d.u.o.Busy():
		d.paused = "overload"
	case d.budget != nil && d.budget.TokensAt(now) <= 0:
		d.paused = "budget"
	default:
		d.paused = ""
	}
	short := d.budget != nil && d.budget.TokensAt(now) < float64(d.burst)/2
	if d.u.o.DiskShort != nil && d.u.o.DiskShort() {
		short = true
	}
	if short != d.log.shed {
		d.u.o.Logger.Info("uplink: shedding raw readings", "on", short, "paused", d.paused)
	}
	d.log.shed = short
	return d.paused == ""
}

func (d *driver) handle(e event) {
	switch {
	case e.up:
		d.connected = true
		d.st.Rewind() // what was in flight may be lost: the acks tell
	case e.lost:
		d.connected = false
	case e.down != nil:
		d.downlink(e.down)
	default:
		d.ack(e.ack)
	}
}

// ack takes an aggregator's ack: it persists the cloud watermark first,
// then lets the outbox move on.
func (d *driver) ack(b []byte) {
	m, err := cloud.Decode(b)
	switch {
	case err != nil:
	case m.Kind != cloud.KindAck:
		err = fmt.Errorf("a %d message on the ack topic", m.Kind)
	case m.Ack.Node != d.u.o.Replica:
		err = fmt.Errorf("an ack for %s", m.Ack.Node)
	case d.u.cfg.Aggregator != "" && m.Peer != d.u.cfg.Aggregator:
		err = fmt.Errorf("an ack from %s, not the pinned aggregator %s", m.Peer, d.u.cfg.Aggregator)
	}
	if err != nil {
		d.counts.AcksRefused++
		d.u.o.Logger.Warn("uplink: ack refused", "err", err)
		return
	}
	d.lastAck, d.aggregator = time.Now(), m.Peer
	if d.st.Acked(*m.Ack) {
		d.persist(Watermark, d.st.State.AckedVector())
	}
	d.persistReadings()
	early := d.early
	d.early = nil
	for _, b := range early {
		d.downlink(b)
	}
}

// persistReadings stores the readings stream's watermark when it moved:
// with acks, and when the stream finds entries its log no longer holds.
func (d *driver) persistReadings() {
	if d.st.Readings == nil {
		return
	}
	if wm := d.st.Readings.Watermark(); wm.Compare(d.rmark) != crdt.Equal {
		d.persist(ReadingsWatermark, wm)
		d.rmark = wm
	}
}

// persist stores a stream's watermark.
func (d *driver) persist(name string, vv crdt.VersionVector) {
	if err := d.u.o.DB.SetWatermark(name, vv); err != nil {
		d.u.o.Logger.Error("uplink: storing a cloud watermark failed", "watermark", name, "err", err)
	}
}

// maxEarly bounds the downlinks held until the first ack; more are
// dropped, and the aggregator sends them again (resendDown).
const maxEarly = 8

// downlink merges the aggregator's own writes, sent to this node in its
// log's order: only from the aggregator (pinned, or the signer of the
// acks), and only entries of its own origin.
func (d *driver) downlink(b []byte) {
	m, err := cloud.Decode(b)
	switch {
	case err != nil:
	case m.Kind != cloud.KindBatch:
		err = fmt.Errorf("a %d message on the downlink topic", m.Kind)
	case d.u.cfg.Aggregator == "" && d.aggregator == "" && len(d.early) < maxEarly:
		d.early = append(d.early, b)
		return
	case d.u.cfg.Aggregator != "" && m.Peer != d.u.cfg.Aggregator:
		err = fmt.Errorf("a downlink from %s, not the pinned aggregator %s", m.Peer, d.u.cfg.Aggregator)
	case d.u.cfg.Aggregator == "" && m.Peer != d.aggregator:
		err = fmt.Errorf("a downlink from %s, not the aggregator that acknowledges this node (%q)", m.Peer, d.aggregator)
	}
	if err == nil {
		es := make([]store.Entry, len(m.Batch.Entries))
		for i, e := range m.Batch.Entries {
			if e.Origin != m.From {
				err = fmt.Errorf("a downlink entry of %s from %s: the aggregator sends its own writes only", e.Origin, m.From)
				break
			}
			es[i] = store.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta}
		}
		if err == nil && len(es) > 0 {
			err = d.u.o.Apply(d.ctx, es)
		}
	}
	if err != nil {
		d.counts.DownRefused++
		d.u.o.Logger.Warn("uplink: downlink refused", "err", err)
		return
	}
	d.counts.DownEntries += uint64(len(m.Batch.Entries))
}

// pump publishes what the streams let out, waiting for each PUBACK.
func (d *driver) pump() {
	for {
		b, readings, err := d.st.Next()
		if err != nil {
			d.u.o.Logger.Error("uplink: reading the log failed", "err", err)
			return
		}
		if b == nil {
			return
		}
		b.Name, b.Shed = d.u.cfg.Name, d.log.readings
		wire, err := cloud.EncodeBatch(d.u.o.Key, *b, d.u.cfg.Compress)
		if err == nil {
			topic := d.u.topic.batch
			if readings {
				topic = d.u.topic.readings
			}
			tok := d.c.Publish(topic, 1, false, wire)
			if !tok.WaitTimeout(mqttconn.Timeout) {
				err = fmt.Errorf("no PUBACK within %s", mqttconn.Timeout)
			} else {
				err = tok.Error()
			}
		}
		if err != nil {
			d.fail(err)
			return
		}
		d.failures, d.openFor = 0, 0
		d.counts.WireBytes += uint64(len(wire))
		if d.budget != nil {
			// Spent, into debt if need be: the next batch waits.
			d.budget.ReserveN(time.Now(), min(len(wire), d.burst))
			if !d.admit(time.Now()) {
				return
			}
		}
	}
}

// fail counts a failed publish: the outbox sends again from the ack, and
// repeated failures open the breaker.
func (d *driver) fail(err error) {
	d.counts.PublishFailures++
	d.st.Rewind()
	if d.failures++; d.failures < breakerFailures {
		d.u.o.Logger.Warn("uplink: publish failed", "err", err)
		return
	}
	d.openFor = min(max(2*d.openFor, time.Second), d.u.cfg.Broker.ReconnectMaxInterval)
	wait := time.Duration(float64(d.openFor) * (0.8 + 0.4*rand.Float64()))
	d.openUntil = time.Now().Add(wait)
	d.u.o.Logger.Warn("uplink: publishing paused after repeated failures", "failures", d.failures, "err", err, "for", wait.Round(time.Millisecond).String())
}

// report copies the state out for Status.
func (d *driver) report() {
	st := d.st.Stats()
	s := d.counts
	s.Connected, s.Backlog, s.ReadingsBacklog, s.InFlight, s.LastAckAt = d.connected, d.st.State.Backlog(), d.st.ReadingsBacklog(), d.st.InFlight(), d.lastAck
	s.Batches, s.Entries, s.DeltaBytes, s.Acks, s.Retries, s.Unservable = st.Batches, st.Entries, st.DeltaBytes, st.Acks, st.Retries, st.Unservable
	if time.Now().Before(d.openUntil) {
		s.BreakerOpenUntil = d.openUntil
	}
	s.Paused, s.Shedding, s.ShedReadings = d.paused, d.log.shed, d.log.readings
	acked := d.st.State.AckedVector()
	s.Acked = make(map[string]uint64, len(acked))
	for r, q := range acked {
		s.Acked[r.String()] = uint64(q)
	}
	d.u.mu.Lock()
	d.u.status = s
	d.u.mu.Unlock()
}
