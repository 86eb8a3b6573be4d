package node

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestMQTTRetainedDocumentsSurviveARestart: the embedded broker keeps
// retained messages in memory only, so a restarted node publishes every
// key's document again.
func TestMQTTRetainedDocumentsSurviveARestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Node.Name = "gw"
	start := func() (*Node, func()) {
		n := newNode(t, cfg)
		done, cancel := runNode(t, n)
		waitReady(t, n, done)
		return n, func() { cancel(); <-done }
	}
	n, stop := start()
	c := &client{t: t, base: "http://" + n.Addr().String()}
	c.expect("POST", "/v1/kv/app/door", `{"type":"flag","op":"enable"}`, 200, "true")
	stop()

	n, _ = start()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + n.MQTTAddr().String()).SetClientID("test")
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	got := make(chan string, 1)
	cl.Subscribe("edged/gw/kv/app/door", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	select {
	case doc := <-got:
		if !strings.Contains(doc, `"value":true`) {
			t.Errorf("retained document %s", doc)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no retained document after the restart")
	}
}
