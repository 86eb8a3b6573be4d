package aggregator_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/aggregator"
	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/internal/poll"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/mqtttest"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
)

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, what, cond)
}

// connectPublisher returns an MQTT client of the test connected to bk,
// disconnected when the test ends.
func connectPublisher(t *testing.T, bk mqttconn.Broker) paho.Client {
	t.Helper()
	opts, err := bk.Options("test-publisher")
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(opts.SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publishQoS1 publishes payload on topic at QoS 1 and waits for the broker.
func publishQoS1(t *testing.T, c paho.Client, topic string, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBadBatchesAreRefused: malformed, forged and gapped batches are
// refused and counted by reason; the good batches around them are merged
// and acknowledged (retained, signed by the aggregator).
func TestBadBatchesAreRefused(t *testing.T) {
	broker := mqtttest.Start(t)
	agg := newSide(t, store.Fsync, nil)
	bk := mqttconn.Broker{URL: broker.URL, ReconnectMaxInterval: time.Second}
	a, err := aggregator.New(aggregator.Config{Broker: bk, Fleets: []string{"north"}, Queue: 4},
		aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: agg.eng, DB: agg.db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	<-a.Subscribed()
	if r := a.Stats().Refused; len(r) != 5 || r["gap"] != 0 {
		t.Errorf("refusal counters at start: %v; want the five reasons at zero", r)
	}

	// Two nodes' logs, written by their own engines.
	good, other := newSide(t, store.None, nil), newSide(t, store.None, nil)
	for _, s := range []*side{good, other} {
		for range 3 {
			if _, err := s.eng.Do(ctx, engine.Add("app/hits", 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries := func(s *side) []replication.Entry {
		var es []replication.Entry
		s.db.AllEntries(func(e store.Entry) error {
			es = append(es, replication.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta})
			return nil
		})
		return es
	}
	c := connectPublisher(t, bk)
	acks := make(chan cloud.Message, 16)
	c.Subscribe(cloud.Topic("north", good.id.Replica, cloud.LevelAck), 1, func(_ paho.Client, m paho.Message) {
		if msg, err := cloud.Decode(m.Payload()); err == nil {
			acks <- msg
		}
	}).Wait()
	publish := func(topic string, payload []byte) { publishQoS1(t, c, topic, payload) }
	batch := func(s *side, es []replication.Entry) []byte {
		b, err := cloud.EncodeBatch(s.id.Key, cloud.Batch{Seq: 1, Name: "n", Entries: es}, false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	goodTopic := cloud.Topic("north", good.id.Replica, cloud.LevelBatch)
	es := entries(good)
	publish(goodTopic, []byte{0, 1, 2, 3})              // malformed
	publish(goodTopic, batch(other, entries(other)))    // signed by another node
	publish(goodTopic, batch(good, es[len(es)-1:]))     // after a gap
	publish("edged/v1/north/nonsense/batch", []byte{0}) // not a node's topic
	publish(goodTopic, batch(good, es))                 // good
	publish(goodTopic, batch(good, es))                 // again: changes nothing
	publish(goodTopic, batch(good, entries(other)))     // another's writes, signed by the node: left out
	publish(goodTopic, batch(other, entries(other)))    // forged again: counted for the node now known
	waitFor(t, "the batches", func() bool { return a.Stats().Refused["forged"] == 2 })
	st := a.Stats()
	if st.Batches != 3 {
		t.Errorf("%d batches merged, want 3", st.Batches)
	}
	if got := agg.db.LogVector()[other.id.Replica]; got != 0 {
		t.Errorf("the aggregator took %d dots of another node's from the node's batch", got)
	}
	for _, reason := range []string{"malformed", "gap", "topic"} {
		if st.Refused[reason] != 1 {
			t.Errorf("refused for %s: %d, want 1 (%v)", reason, st.Refused[reason], st.Refused)
		}
	}
	if got := agg.db.LogVector()[good.id.Replica]; got != 3 {
		t.Errorf("the aggregator holds %d of the node's dots, want 3", got)
	}
	vs, err := agg.db.Get("app/hits")
	if err != nil {
		t.Fatal(err)
	}
	if v := vs[crdt.TypePNCounter].(*crdt.PNCounter).Value(); v != 3 {
		t.Errorf("counter %d after a batch delivered twice, want 3", v)
	}
	var last cloud.Message
	waitFor(t, "the ack", func() bool {
		for {
			select {
			case last = <-acks:
			default:
				return last.Ack != nil && last.Ack.Vector[good.id.Replica] == 3
			}
		}
	})
	if last.From != agg.id.Replica || last.Ack.Node != good.id.Replica {
		t.Errorf("ack from %s for %s", last.From, last.Ack.Node)
	}
	nodes := a.Nodes()
	if len(nodes) != 1 || nodes[0].Refused != 1 || nodes[0].Batches != 3 || nodes[0].Foreign != uint64(len(entries(other))) || nodes[0].LastErr == "" {
		t.Errorf("nodes: %+v", nodes)
	}

	// The registry survives a restart of the aggregator, offline until
	// the node's status says otherwise.
	stop()
	again, err := aggregator.New(aggregator.Config{Broker: bk, Fleets: []string{"north"}},
		aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: agg.eng, DB: agg.db})
	if err != nil {
		t.Fatal(err)
	}
	after := again.Nodes()
	if len(after) != 1 {
		t.Fatalf("after a restart: %+v", after)
	}
	want := nodes[0]
	want.Online, want.LastSeen = false, want.LastSeen.Truncate(time.Second)
	got := after[0]
	got.LastSeen = got.LastSeen.Truncate(time.Second)
	// What GET /v1/nodes shows.
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Errorf("after a restart:\n%s\nwant\n%s", g, w)
	}

	// Clearing a node's retained status retires it: it is forgotten, and
	// stays so across a restart.
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- again.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	<-again.Subscribed()
	if tok := c.Publish(cloud.Topic("north", good.id.Replica, cloud.LevelStatus), 1, true, []byte{}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "the node to be forgotten", func() bool { return len(again.Nodes()) == 0 })
	stop()
	third, err := aggregator.New(aggregator.Config{Broker: bk, Fleets: []string{"north"}},
		aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: agg.eng, DB: agg.db})
	if err != nil {
		t.Fatal(err)
	}
	if n := third.Nodes(); len(n) != 0 {
		t.Errorf("a retired node came back after a restart: %+v", n)
	}
}

// TestStoreTroubleIsNotAGap: a batch the aggregator cannot store because
// its own store is out of service (here its engine has stopped, as after
// a store failure) is counted under "store", not as a gap in the node's
// log.
func TestStoreTroubleIsNotAGap(t *testing.T) {
	broker := mqtttest.Start(t)
	agg := newSide(t, store.None, nil)
	stopped := engine.New(agg.db, agg.id.Replica, engine.Config{})
	engCtx, stopEngine := context.WithCancel(context.Background())
	stopEngine()
	if err := stopped.Run(engCtx); err != nil {
		t.Fatal(err)
	}
	bk := mqttconn.Broker{URL: broker.URL, ReconnectMaxInterval: time.Second}
	a, err := aggregator.New(aggregator.Config{Broker: bk, Fleets: []string{"north"}, Queue: 4},
		aggregator.Options{Key: agg.id.Key, Replica: agg.id.Replica, Engine: stopped, DB: agg.db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-a.Subscribed()

	node := newSide(t, store.None, nil)
	if _, err := node.eng.Do(ctx, engine.Add("app/hits", 1)); err != nil {
		t.Fatal(err)
	}
	var es []replication.Entry
	node.db.AllEntries(func(e store.Entry) error {
		es = append(es, replication.Entry{Origin: e.Origin, First: e.First, Last: e.Last, Delta: e.Delta})
		return nil
	})
	b, err := cloud.EncodeBatch(node.id.Key, cloud.Batch{Seq: 1, Name: "n", Entries: es}, false)
	if err != nil {
		t.Fatal(err)
	}
	publishQoS1(t, connectPublisher(t, bk), cloud.Topic("north", node.id.Replica, cloud.LevelBatch), b)
	waitFor(t, "the batch refused", func() bool { return a.Stats().Refused["store"]+a.Stats().Refused["gap"] > 0 })
	if r := a.Stats().Refused; r["store"] != 1 || r["gap"] != 0 {
		t.Errorf("refused %v, want the batch under store, not gap", r)
	}
}
