package localmqtt

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/shedding"
)

const p = "edged/n1" // the default prefix of node "n1"

func TestEmbeddedReadings(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.Workers = 1 // in order
	srv := start(t, cfg, be)
	if srv.Addr() == nil || strings.HasSuffix(srv.Addr().String(), ":0") {
		t.Fatalf("Addr() = %v, want the actual port", srv.Addr())
	}
	c := connect(t, srv.Addr().String())

	want := []ingestCall{
		{"temp", "21.5"},
		{"temp", `{"value":21.5,"unit":"C","ts":"2026-11-23T10:00:00Z"}`},
		{"hum", `{"readings":[{"value":40},{"value":41}]}`},
		{"power", "power,phase=1 watts=230.5 1763892000000000000"},
	}
	for _, w := range want {
		publish(t, c, p+"/readings/"+w.sensor, false, w.payload)
	}
	for _, w := range want {
		if got := nextIngest(t, be); got != w {
			t.Errorf("ingested %+v, want %+v", got, w)
		}
	}
	eventually(t, "readings counted", func() bool { return srv.Stats().Readings == 5 })
	if st := srv.Stats(); st.Received != 4 {
		t.Errorf("Received = %d, want 4", st.Received)
	}
}

func TestEmbeddedOpPublishesRetainedDocument(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	addr := srv.Addr().String()
	c := connect(t, addr)
	live := subscribe(t, c, p+"/kv/app/room/1")

	publish(t, c, p+"/kv/app/room/1/set", false, `{"type":"counter","op":"inc","by":2}`)
	m := next(t, live, "document")
	if m.Topic() != p+"/kv/app/room/1" {
		t.Fatalf("document on %s, want %s/kv/app/room/1", m.Topic(), p)
	}
	var doc struct {
		NS, Key, Type string
		Value         int
	}
	if err := json.Unmarshal(m.Payload(), &doc); err != nil || doc.NS != "app" || doc.Key != "room/1" || doc.Value != 2 {
		t.Fatalf("document %s (%v), want app room/1 value 2", m.Payload(), err)
	}
	if be.ops.Load() != 1 {
		t.Errorf("Do called %d times, want 1", be.ops.Load())
	}

	// A client subscribing later gets the document, retained.
	late := connect(t, addr)
	got := next(t, subscribe(t, late, p+"/kv/app/#"), "retained document")
	if !got.Retained() || got.Topic() != p+"/kv/app/room/1" || string(got.Payload()) != string(m.Payload()) {
		t.Fatalf("late subscriber got %s %q retained=%v", got.Topic(), got.Payload(), got.Retained())
	}

	// Removal: an empty retained message, which clears the retained one.
	publish(t, c, p+"/kv/app/room/1/set", false, `{"op":"del"}`)
	if m := next(t, live, "removal"); m.Topic() != p+"/kv/app/room/1" || len(m.Payload()) != 0 {
		t.Fatalf("removal: %s %q, want an empty payload", m.Topic(), m.Payload())
	}
	later := connect(t, addr)
	ch := subscribe(t, later, p+"/kv/app/room/1")
	// Anything retained would be queued for later before the broker
	// handles this publication from the same client.
	publish(t, later, p+"/kv/app/room/1", false, "marker")
	if m := next(t, ch, "marker"); string(m.Payload()) != "marker" {
		t.Fatalf("after removal a new subscriber got %q, want no retained document", m.Payload())
	}
	if be.ops.Load() != 2 {
		t.Errorf("Do called %d times, want 2: the node's own documents are not inputs", be.ops.Load())
	}
	// Counted just after publishing.
	eventually(t, "2 ops and 2 changes counted", func() bool {
		st := srv.Stats()
		return st.Ops == 2 && st.Changes == 2
	})
}

func TestEmbeddedGetReply(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	c := connect(t, srv.Addr().String())
	replies := subscribe(t, c, p+"/kv/app/+/get/reply")

	publish(t, c, p+"/kv/app/k1/set", false, `{"op":"inc","by":5}`)
	publish(t, c, p+"/kv/app/k1/get", false, "")
	m := next(t, replies, "reply")
	if m.Topic() != p+"/kv/app/k1/get/reply" || !strings.Contains(string(m.Payload()), `"value":5`) {
		t.Fatalf("reply %s %s, want k1's document", m.Topic(), m.Payload())
	}

	publish(t, c, p+"/kv/app/nope/get", false, "")
	m = next(t, replies, "reply")
	r := decodeReport(t, m)
	if m.Topic() != p+"/kv/app/nope/get/reply" || !strings.Contains(r.Error, "not found") || r.Topic != p+"/kv/app/nope/get" {
		t.Fatalf("reply %s %s, want a not-found error", m.Topic(), m.Payload())
	}
	st := srv.Stats()
	if st.Gets != 1 || st.Errors[KindNotFound] != 1 {
		t.Errorf("Gets, not found = %d, %d, want 1, 1", st.Gets, st.Errors[KindNotFound])
	}
}

func TestEmbeddedErrors(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.Workers = 1
	cfg.MaxPayloadBytes = 1024
	srv := start(t, cfg, be)
	c := connect(t, srv.Addr().String())
	errs := subscribe(t, c, p+"/errors")

	tests := []struct {
		name, topic, payload string
		kind                 ErrorKind
		field                string
	}{
		{"malformed JSON", p + "/readings/temp", `{"value":`, KindPayload, ""},
		{"not a reading", p + "/readings/temp", "hello", KindPayload, ""},
		{"sensor of two levels", p + "/readings/a/b", "1", KindTopic, ""},
		{"key ending in set", p + "/kv/app/x/set/set", `{"op":"inc"}`, KindTopic, ""},
		{"no key", p + "/kv/app/set", `{"op":"inc"}`, KindTopic, ""},
		{"op not an object", p + "/kv/app/x/set", `[1]`, KindPayload, ""},
		{"payload too large", p + "/readings/temp", strings.Repeat("1", 2000), KindPayload, ""},
		{"backend error with field", p + "/kv/app/x/set", `{"op":"bogus"}`, KindBackend, "op"},
		{"ingest error with field", p + "/readings/fail", "1", KindBackend, "value"},
		{"panic", p + "/readings/panic", "1", KindPanic, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats().Errors[tt.kind]
			publish(t, c, tt.topic, false, tt.payload)
			r := decodeReport(t, next(t, errs, "error report"))
			if r.Topic != tt.topic || r.Error == "" || r.Field != tt.field {
				t.Errorf("report %+v, want topic %s, field %q", r, tt.topic, tt.field)
			}
			if after := srv.Stats().Errors[tt.kind]; after != before+1 {
				t.Errorf("Errors[%s] = %d, want %d", tt.kind, after, before+1)
			}
			// The handler still works.
			publish(t, c, p+"/readings/ok", false, "1")
			if got := nextIngest(t, be); got.sensor != "ok" {
				t.Errorf("then ingested %+v, want sensor ok", got)
			}
		})
	}
}

func TestEmbeddedPacketTooLargeDisconnects(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.MaxPayloadBytes = 1024
	srv := start(t, cfg, be)
	lost := make(chan error, 1)
	c := connect(t, srv.Addr().String(), func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	c.Publish(p+"/readings/temp", 0, false, strings.Repeat("1", 64<<10))
	select {
	case <-lost:
	case <-be.started:
		t.Fatal("an oversized packet reached the backend")
	case <-timeAfter():
		t.Fatal("client not disconnected after an oversized packet")
	}
}

func TestEmbeddedUnpublishableKeyChange(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	c := connect(t, srv.Addr().String())
	errs := subscribe(t, c, p+"/errors")
	docs := subscribe(t, c, p+"/kv/#")

	be.notify("app", "x/set", []byte(`{"ns":"app","key":"x/set"}`))
	r := decodeReport(t, next(t, errs, "error report"))
	if r.Topic != p+"/kv/app/x/set" || !strings.Contains(r.Error, "not published") {
		t.Fatalf("report %+v", r)
	}
	be.notify("app", "fine", []byte(`{"ns":"app","key":"fine"}`))
	if m := next(t, docs, "document"); m.Topic() != p+"/kv/app/fine" {
		t.Fatalf("document on %s, want only kv/app/fine", m.Topic())
	}
	if be.ops.Load() != 0 {
		t.Error("a change was read as an operation")
	}
	if n := srv.Stats().Errors[KindTopic]; n != 1 {
		t.Errorf("Errors[topic] = %d, want 1", n)
	}
}

func TestEmbeddedTopicPrefix(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.TopicPrefix = "site/a"
	srv := start(t, cfg, be)
	if srv.Prefix() != "site/a" {
		t.Fatalf("Prefix() = %q", srv.Prefix())
	}
	c := connect(t, srv.Addr().String())
	publish(t, c, "edged/n1/readings/ignored", false, "1")
	publish(t, c, "site/a/readings/temp", false, "1")
	if got := nextIngest(t, be); got.sensor != "temp" {
		t.Fatalf("ingested %+v, want temp under the configured prefix", got)
	}
}

// TestEmbeddedShedding: while the node sheds an input's class, a QoS 0
// input is dropped and counted, and a QoS 1 input is held before its
// PUBACK until the node recovers; inputs of a class not shed go through.
func TestEmbeddedShedding(t *testing.T) {
	be := newFake()
	gov := shedding.New(shedding.Config{Hold: time.Millisecond})
	srv := startWith(t, testConfig(), be, Options{Logger: testLogger(), Shed: gov,
		Class: func(reading bool, name string) shedding.Class {
			if name == "smoke" {
				return shedding.Critical
			}
			return shedding.Bulk
		}})
	c := connect(t, srv.Addr().String())
	gov.ObserveMemory(99, 100, time.Now()) // bulk and normal shed; critical not

	if tok := c.Publish(p+"/readings/temp", 0, false, "21.5"); !tok.WaitTimeout(waitTime) {
		t.Fatal("QoS 0 publish not sent")
	}
	eventually(t, "the QoS 0 input dropped", func() bool { return srv.Stats().Errors[KindShed] == 1 })
	publish(t, c, p+"/readings/smoke", false, "1") // critical: taken at once
	if got := nextIngest(t, be); got.sensor != "smoke" {
		t.Fatalf("ingested %+v first, want the critical reading", got)
	}

	tok := c.Publish(p+"/readings/temp", 1, false, "22.5")
	eventually(t, "the QoS 1 input held", func() bool { return srv.Stats().Delayed > 0 })
	if tok.WaitTimeout(10 * time.Millisecond) {
		t.Fatal("PUBACK while the node sheds the input's class")
	}
	gov.ObserveMemory(10, 100, time.Now())
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the node recovered: %v", tok.Error())
	}
	if got := nextIngest(t, be); got != (ingestCall{"temp", "22.5"}) {
		t.Errorf("ingested %+v after the delay", got)
	}
}
