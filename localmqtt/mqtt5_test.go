package localmqtt

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT 5 over TCP with mochi's packet codec, since paho
// (the client tests use) speaks 3.1.1 only.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialMQTT5(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(waitTime)); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(func(b *bytes.Buffer) error {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: 5,
			Connect: packets.ConnectParams{
				ProtocolName:     []byte("MQTT"),
				Clean:            true,
				ClientIdentifier: id,
				Keepalive:        30,
			},
		}
		return pk.ConnectEncode(b)
	})
	fh, body := c.read()
	if fh.Type != packets.Connack || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type %d body %x", fh.Type, body)
	}
	return c
}

func (c *rawClient) send(encode func(*bytes.Buffer) error) {
	c.t.Helper()
	var b bytes.Buffer
	if err := encode(&b); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet's fixed header and body.
func (c *rawClient) read() (packets.FixedHeader, []byte) {
	c.t.Helper()
	var fh packets.FixedHeader
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := fh.Decode(hb); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	return fh, body
}

func (c *rawClient) subscribe(filter string) {
	c.t.Helper()
	c.send(func(b *bytes.Buffer) error {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			ProtocolVersion: 5,
			PacketID:        1,
			Filters:         packets.Subscriptions{{Filter: filter}},
		}
		return pk.SubscribeEncode(b)
	})
	if fh, body := c.read(); fh.Type != packets.Suback || body[len(body)-1] != 0 {
		c.t.Fatalf("SUBACK: type %d body %x", fh.Type, body)
	}
}

// publish sends a QoS 0 PUBLISH with a Response Topic and Correlation Data.
func (c *rawClient) publish(topic, payload, responseTopic string, correlation []byte) {
	c.t.Helper()
	c.send(func(b *bytes.Buffer) error {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish},
			ProtocolVersion: 5,
			TopicName:       topic,
			Payload:         []byte(payload),
			Properties:      packets.Properties{ResponseTopic: responseTopic, CorrelationData: correlation},
			Mods:            packets.Mods{AllowResponseInfo: true}, // else the codec leaves them out
		}
		return pk.PublishEncode(b)
	})
}

// nextPublish returns the next PUBLISH the broker sends.
func (c *rawClient) nextPublish() packets.Packet {
	c.t.Helper()
	for {
		fh, body := c.read()
		if fh.Type != packets.Publish {
			continue
		}
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 5}
		if err := pk.PublishDecode(body); err != nil {
			c.t.Fatal(err)
		}
		return pk
	}
}

func TestMQTT5ResponseTopic(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	c := dialMQTT5(t, srv.Addr().String(), "v5-client")
	c.subscribe("replies/v5-client")

	c.publish(p+"/kv/app/k/set", `{"op":"inc","by":3}`, "replies/v5-client", []byte("req-1"))
	pk := c.nextPublish()
	if pk.TopicName != "replies/v5-client" || string(pk.Properties.CorrelationData) != "req-1" || !strings.Contains(string(pk.Payload), `"value":3`) {
		t.Fatalf("set reply: %s %q corr %q", pk.TopicName, pk.Payload, pk.Properties.CorrelationData)
	}

	c.publish(p+"/kv/app/k/get", "", "replies/v5-client", []byte("req-2"))
	pk = c.nextPublish()
	if pk.TopicName != "replies/v5-client" || string(pk.Properties.CorrelationData) != "req-2" || !strings.Contains(string(pk.Payload), `"value":3`) {
		t.Fatalf("get reply: %s %q corr %q", pk.TopicName, pk.Payload, pk.Properties.CorrelationData)
	}
	if pk.Properties.ContentType != "application/json" {
		t.Errorf("content type %q", pk.Properties.ContentType)
	}

	c.publish(p+"/kv/app/missing/get", "", "replies/v5-client", []byte("req-3"))
	pk = c.nextPublish()
	if string(pk.Properties.CorrelationData) != "req-3" || !strings.Contains(string(pk.Payload), "not found") {
		t.Fatalf("get reply: %s %q corr %q", pk.TopicName, pk.Payload, pk.Properties.CorrelationData)
	}

	c.publish(p+"/kv/app/k/set", `{"op":"bogus"}`, "replies/v5-client", []byte("req-4"))
	pk = c.nextPublish()
	if string(pk.Properties.CorrelationData) != "req-4" || !strings.Contains(string(pk.Payload), `"field":"op"`) {
		t.Fatalf("failed set reply: %s %q corr %q", pk.TopicName, pk.Payload, pk.Properties.CorrelationData)
	}
}

func TestMQTT5ResponseTopicIntoInputsRefused(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	c := dialMQTT5(t, srv.Addr().String(), "v5-evil")
	c.subscribe(p + "/errors")

	c.publish(p+"/kv/app/k/get", "", p+"/kv/app/k/set", nil)
	pk := c.nextPublish()
	if pk.TopicName != p+"/errors" || !strings.Contains(string(pk.Payload), "input of the node") {
		t.Fatalf("got %s %q, want an error report", pk.TopicName, pk.Payload)
	}
	if be.ops.Load() != 0 {
		t.Error("a reply was applied as an operation")
	}
}

func TestMQTT5ResponseTopicOutsideWriteACLRefused(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.Users = []User{{Username: "u", PasswordFile: writeSecret(t, "pw")}} // default ACL: edged/n1/#
	srv := start(t, cfg, be)
	conn := connect(t, srv.Addr().String(), withUser("u", "pw"))
	errs := subscribe(t, conn, p+"/errors")

	// A raw MQTT 5 client with credentials.
	c := &rawClient{t: t}
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), waitTime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitTime))
	c.conn, c.r = nc, bufio.NewReader(nc)
	c.send(func(b *bytes.Buffer) error {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: 5,
			Connect: packets.ConnectParams{
				ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "v5-u", Keepalive: 30,
				UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("pw"),
			},
		}
		return pk.ConnectEncode(b)
	})
	if fh, body := c.read(); fh.Type != packets.Connack || body[1] != 0 {
		t.Fatalf("CONNACK %x", body)
	}
	c.publish(p+"/kv/app/k/get", "", "elsewhere/inbox", nil)
	r := decodeReport(t, next(t, errs, "error report"))
	if !strings.Contains(r.Error, "not writable") {
		t.Fatalf("report %+v, want response topic not writable", r)
	}
}
