package localmqtt

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/mqtttest"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// passwordHook admits one user name and password (or anyone, if user is
// empty) and allows every topic: the test broker's "gateway" ACL.
type passwordHook struct {
	mqtt.HookBase
	user, password string
}

func (h *passwordHook) ID() string { return "test-password" }
func (h *passwordHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *passwordHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	return h.user == "" || string(pk.Connect.Username) == h.user && string(pk.Connect.Password) == h.password
}
func (h *passwordHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startBroker runs a plain mochi broker, standing in for the gateway's
// Mosquitto, on addr ("127.0.0.1:0" for a free port). stop closes it.
func startBroker(t testing.TB, addr string, hook mqtt.Hook) (broker string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := mqtt.New(&mqtt.Options{Logger: testLogger()})
	if err := b.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.AddListener(newListener("t", ln, b)); err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = b.Close()
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func clientConfig(broker string) Config {
	cfg := DefaultConfig()
	cfg.Mode = ModeClient
	cfg.Broker = "tcp://" + broker
	cfg.Workers = 1
	return cfg
}

func TestClientMode(t *testing.T) {
	broker, _ := startBroker(t, "127.0.0.1:0", &passwordHook{})
	exerciseClientMode(t, broker)
}

// exerciseClientMode runs a node in client mode against broker (host:port)
// and checks readings, operations, retained documents, gets and errors.
func exerciseClientMode(t *testing.T, broker string) {
	be := newFake()
	// A retained operation left on the broker before the node connects:
	// replayed to the node when it subscribes, and ignored.
	old := connect(t, broker)
	echo := subscribe(t, old, p+"/kv/app/stale/set")
	publish(t, old, p+"/kv/app/stale/set", true, `{"op":"inc","by":100}`)
	// mochi acknowledges before it delivers: wait for the delivery, so
	// that the node, subscribing later, gets only the retained copy.
	next(t, echo, "own publication")
	old.Disconnect(100)

	srv := start(t, clientConfig(broker), be)
	if srv.Addr() != nil {
		t.Errorf("Addr() = %v in client mode, want nil", srv.Addr())
	}
	c := connect(t, broker)
	errs := subscribe(t, c, p+"/errors")
	replies := subscribe(t, c, p+"/kv/app/+/get/reply")

	publish(t, c, p+"/readings/temp", false, "21.5")
	if got := nextIngest(t, be); got != (ingestCall{"temp", "21.5"}) {
		t.Fatalf("ingested %+v", got)
	}
	if n := be.ops.Load(); n != 0 {
		t.Fatalf("the retained operation was applied (%d ops)", n)
	}

	publish(t, c, p+"/kv/app/k/set", false, `{"op":"inc","by":4}`)
	late := connect(t, broker)
	docs := subscribe(t, late, p+"/kv/app/k")
	m := next(t, docs, "document")
	if !strings.Contains(string(m.Payload()), `"value":4`) {
		t.Fatalf("document %s", m.Payload())
	}

	publish(t, c, p+"/kv/app/k/get", false, "")
	if m := next(t, replies, "reply"); m.Topic() != p+"/kv/app/k/get/reply" || !strings.Contains(string(m.Payload()), `"value":4`) {
		t.Fatalf("reply %s %s", m.Topic(), m.Payload())
	}

	publish(t, c, p+"/readings/temp", false, "{bad")
	if r := decodeReport(t, next(t, errs, "error report")); r.Topic != p+"/readings/temp" {
		t.Fatalf("report %+v", r)
	}
	publish(t, c, p+"/readings/temp", false, "22")
	if got := nextIngest(t, be); got.payload != "22" {
		t.Fatalf("ingested %+v after an error", got)
	}
	if n := be.ops.Load(); n != 1 {
		t.Errorf("Do called %d times, want 1: the node's documents and replies are not inputs", n)
	}
}

func TestClientModeCredentialsAndReconnect(t *testing.T) {
	hook := &passwordHook{user: "node", password: "gw-secret"}
	broker, stop := startBroker(t, "127.0.0.1:0", hook)
	be := newFake()
	cfg := clientConfig(broker)
	cfg.Username = "node"
	cfg.PasswordFile = writeSecret(t, "gw-secret")
	cfg.ReconnectMaxInterval = time.Second
	start(t, cfg, be)

	c := connect(t, broker, withUser("node", "gw-secret"))
	publish(t, c, p+"/readings/a", false, "1")
	nextIngest(t, be)

	// The broker restarts, without the node's session: the node connects
	// again and subscribes again.
	stop()
	startBroker(t, broker, hook)
	c2 := connect(t, broker, withUser("node", "gw-secret"))
	deadline := time.Now().Add(waitTime)
	for i := 0; ; i++ {
		publish(t, c2, p+"/readings/b", false, fmt.Sprint(i))
		select {
		case got := <-be.ingests:
			if got.sensor != "b" {
				t.Fatalf("ingested %+v", got)
			}
			return
		case <-time.After(100 * time.Millisecond): // not resubscribed yet: publish again
		}
		if time.Now().After(deadline) {
			t.Fatal("node did not resubscribe after the broker restarted")
		}
	}
}

func TestClientModeRunStopsWhileBrokerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	srv, err := New(clientConfig(addr), "n1", newFake(), Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cancel, wait := run(t, srv) // ready although the broker is down
	if srv.Connected() {
		t.Error("Connected() with no broker")
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestClientModeMosquitto runs the client-mode checks against a real
// Mosquitto. It is skipped where mosquitto is not installed, except in CI
// (CI=true), where that is a failure.
func TestClientModeMosquitto(t *testing.T) {
	b := mqtttest.Start(t)
	addr := b.Addr
	exerciseClientMode(t, addr)
}

// TestClientModeAcknowledges checks that the node acknowledges the inputs
// it took (paho's automatic acknowledgement is off): a broker sends an
// unacknowledged QoS 1 input again to the node's persistent session when
// it reconnects.
func TestClientModeAcknowledges(t *testing.T) {
	broker, _ := startBroker(t, "127.0.0.1:0", &passwordHook{})
	c := connect(t, broker)
	for i, sensor := range []string{"first", "second"} {
		be := newFake()
		srv, err := New(clientConfig(broker), "n1", be, Options{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		cancel, wait := run(t, srv)
		eventually(t, "subscribed", srv.Connected)
		publish(t, c, p+"/readings/"+sensor, false, "1")
		if got := nextIngest(t, be); got.sensor != sensor {
			t.Fatalf("run %d ingested %s, want %s (an input of the run before sent again)", i, got.sensor, sensor)
		}
		cancel()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
}
