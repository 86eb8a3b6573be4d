package aggregator_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/aggregator"
	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/mqtttest"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
	"github.com/edged-dev/edged/uplink"
)

// runAggregator starts a broker and an aggregator of fleet "north" on a
// store of its own until the test ends, and returns them.
func runAggregator(t *testing.T) (*aggregator.Aggregator, *side, mqttconn.Broker) {
	t.Helper()
	broker := mqtttest.Start(t)
	bk := mqttconn.Broker{URL: broker.URL, ReconnectMaxInterval: time.Second}
	var a *aggregator.Aggregator
	agg := newSide(t, store.None, func() {
		if a != nil {
			a.Notify()
		}
	})
	var err error
	a, err = aggregator.New(aggregator.Config{Broker: bk, Fleets: []string{"north"}, Queue: 16},
		aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: agg.eng, DB: agg.db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-a.Subscribed()
	return a, agg, bk
}

// runUplink runs an uplink of node against bk until the returned stop;
// bulk says which names are raw readings (nil: none).
func runUplink(t *testing.T, node *side, bk mqttconn.Broker, bulk ...func(string) bool) (*uplink.Uplink, func()) {
	t.Helper()
	o := uplink.Options{Key: node.id.Key, Replica: node.id.Replica, PeerID: node.id.PeerID, DB: node.db, Apply: node.eng.Apply}
	if len(bulk) > 0 {
		o.Bulk = bulk[0]
	}
	u, err := uplink.New(uplink.Config{Broker: bk, Fleet: "north", Name: "gw", MaxBatchBytes: 64 << 10, Window: 4, Tick: 50 * time.Millisecond, AckTimeout: time.Second}, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return u, stop
}

// TestRestartAfterQueuedDownlinks restarts a node whose persistent MQTT
// session holds more messages on its downlink topic than Mosquitto's
// window of unacknowledged messages (20): they arrive before the uplink
// has subscribed again, and must not block the acks that follow.
func TestRestartAfterQueuedDownlinks(t *testing.T) {
	_, _, bk := runAggregator(t)
	ctx := context.Background()

	node := newSide(t, store.None, nil)
	if _, err := node.eng.Do(ctx, engine.Add("app/hits", 1)); err != nil {
		t.Fatal(err)
	}
	u, stop := runUplink(t, node, bk)
	waitFor(t, "the first write acknowledged", func() bool {
		s := u.Status()
		return s.Connected && s.Backlog == 0 && s.Acks > 0
	})
	stop() // a power cut leaves the same session behind

	// While the node is down, its session queues what comes on its
	// downlink topic (here, what a node refuses: it is not the aggregator's).
	c := connectPublisher(t, bk)
	const queued = 25
	for range queued {
		publishQoS1(t, c, cloud.Topic("north", node.id.Replica, cloud.LevelDown), []byte("not a downlink"))
	}
	if _, err := node.eng.Do(ctx, engine.Add("app/hits", 1)); err != nil {
		t.Fatal(err)
	}
	u, _ = runUplink(t, node, bk)
	waitFor(t, "the node's new write acknowledged", func() bool {
		s := u.Status()
		return s.Connected && s.Backlog == 0 && s.Acks > 0
	})
	if s := u.Status(); s.DownRefused != queued {
		t.Errorf("%d downlinks refused, want the %d queued", s.DownRefused, queued)
	}
}

// TestNoDownlinksToOfflineNodes checks that the aggregator's writes go to
// the nodes online only: the broker would queue every copy (and every
// resend) for a node that is down. A node gets them when it comes back.
func TestNoDownlinksToOfflineNodes(t *testing.T) {
	a, agg, bk := runAggregator(t)
	ctx := context.Background()

	c := connectPublisher(t, bk)
	down := make(chan struct{}, 16)
	on, off := newSide(t, store.None, nil), newSide(t, store.None, nil)
	c.Subscribe(cloud.Topic("north", off.id.Replica, cloud.LevelDown), 1, func(paho.Client, paho.Message) { down <- struct{}{} }).Wait()
	status := func(s *side, state string) {
		doc := `{"state":"` + state + `","name":"gw","replica":"` + s.id.Replica.String() + `"}`
		publishQoS1(t, c, cloud.Topic("north", s.id.Replica, cloud.LevelStatus), []byte(doc))
	}
	for _, s := range []*side{on, off} {
		hb, err := cloud.EncodeBatch(s.id.Key, cloud.Batch{Seq: 1, Name: "gw"}, false)
		if err != nil {
			t.Fatal(err)
		}
		publishQoS1(t, c, cloud.Topic("north", s.id.Replica, cloud.LevelBatch), hb)
		status(s, "online")
	}
	status(off, "offline")
	nodes := func() map[string]aggregator.NodeInfo {
		m := map[string]aggregator.NodeInfo{}
		for _, n := range a.Nodes() {
			m[n.Replica] = n
		}
		return m
	}
	waitFor(t, "one node online, one offline", func() bool {
		ns := nodes()
		return len(ns) == 2 && ns[on.id.Replica.String()].Online && !ns[off.id.Replica.String()].Online
	})

	if _, err := agg.eng.Do(ctx, engine.Set("config/mode", []byte(`"eco"`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write sent to the node online", func() bool { return nodes()[on.id.Replica.String()].DownEntries > 0 })
	if n := nodes()[off.id.Replica.String()].DownEntries; n != 0 {
		t.Fatalf("%d entries sent to the node offline", n)
	}
	status(off, "online")
	select {
	case <-down:
	case <-time.After(20 * time.Second):
		t.Fatal("the write not sent to the node once it came online")
	}
}

// TestCloudTakesAnOriginsWritesFromItself: a node's copy of a peer's
// writes lacks what the peer withheld from the fleet (here, raw readings
// and a key of a cloud-scoped namespace). It must not reach the cloud
// first, where it would pass for the whole and the peer's own upload be
// skipped: each node sends its own writes only.
func TestCloudTakesAnOriginsWritesFromItself(t *testing.T) {
	_, agg, bk := runAggregator(t)
	ctx := context.Background()

	raw := func(name string) bool { return strings.HasPrefix(name, "_r/") }
	fleet := func(name string) bool { return !raw(name) && !strings.HasPrefix(name, "c/") }
	origin, peer := newSide(t, store.None, nil), newSide(t, store.None, nil)
	if _, err := origin.eng.Do(ctx, engine.Set("c/secret", []byte(`"for the cloud"`))); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.eng.Do(ctx, engine.AddReadings("_r/temp", crdt.Reading{Time: 1_700_000_000_000_000_000, Value: 21.5})); err != nil {
		t.Fatal(err)
	}
	// The peer gets the origin's writes as the fleet sees them.
	es, _, err := storelog.Log{DB: origin.db, Keep: fleet}.Entries(origin.id.Replica, 0, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	copies := make([]store.Entry, len(es))
	for i, e := range es {
		copies[i] = store.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta}
	}
	if err := peer.eng.Apply(ctx, copies); err != nil {
		t.Fatal(err)
	}

	// The peer's uplink goes first, then the origin's.
	for _, s := range []*side{peer, origin} {
		u, stop := runUplink(t, s, bk, raw)
		waitFor(t, "the node's writes and readings acknowledged", func() bool {
			st := u.Status()
			return st.Connected && st.Backlog == 0 && st.ReadingsBacklog == 0 && st.Acks > 0
		})
		stop()
	}
	if vs, err := agg.db.Get("c/secret"); err != nil || len(vs) == 0 {
		t.Errorf("the aggregator lacks the origin's key of a cloud-scoped namespace (%v)", err)
	}
	n := 0
	if err := agg.db.Readings("_r/temp", 0, math.MaxInt64, func(crdt.ReplicaID, crdt.Seq, crdt.Reading) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the aggregator holds %d of the origin's 1 raw reading", n)
	}
}
