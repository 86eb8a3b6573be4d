package localmqtt

import (
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authConfig has two users: sensor, which may only publish readings and
// read errors, and app, with the default ACL (everything under the prefix).
func authConfig(t *testing.T) Config {
	cfg := testConfig()
	cfg.Workers = 1
	cfg.Users = []User{
		{
			Username:     "sensor",
			PasswordFile: writeSecret(t, "s3nsor"),
			Write:        []string{p + "/readings/#"},
			Read:         []string{p + "/errors"},
		},
		{Username: "app", PasswordFile: writeSecret(t, "app-pw")},
	}
	return cfg
}

func TestAuthRefusesBadCredentials(t *testing.T) {
	srv := start(t, authConfig(t), newFake())
	addr := srv.Addr().String()
	tests := []struct {
		name string
		opts []func(*paho.ClientOptions)
	}{
		{"wrong password", []func(*paho.ClientOptions){withUser("sensor", "wrong")}},
		{"other user's password", []func(*paho.ClientOptions){withUser("sensor", "app-pw")}},
		{"unknown user", []func(*paho.ClientOptions){withUser("nobody", "s3nsor")}},
		{"anonymous", nil},
		{"inline client id", []func(*paho.ClientOptions){withUser("app", "app-pw"), func(o *paho.ClientOptions) { o.SetClientID(mqtt.InlineClientId) }}},
		{"will outside write ACL", []func(*paho.ClientOptions){withUser("sensor", "s3nsor"), func(o *paho.ClientOptions) {
			o.SetWill(p+"/kv/app/x/set", `{"op":"inc"}`, 0, false)
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tryConnect(addr, tt.opts...)
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connected, want refused")
			}
		})
	}
	c := connect(t, addr, withUser("sensor", "s3nsor"))
	c.Disconnect(0)
}

func TestAuthACL(t *testing.T) {
	be := newFake()
	srv := start(t, authConfig(t), be)
	addr := srv.Addr().String()
	sensor := connect(t, addr, withUser("sensor", "s3nsor"))
	app := connect(t, addr, withUser("app", "app-pw"))

	// Read ACL: a subscription outside the read filters is refused; one
	// that overlaps them is granted, but delivers only what they allow.
	tok := sensor.Subscribe(p+"/kv/#", 1, func(paho.Client, paho.Message) {})
	tok.WaitTimeout(waitTime)
	if code := tok.(*paho.SubscribeToken).Result()[p+"/kv/#"]; code != 0x80 {
		t.Errorf("subscription to kv/# granted (code %#x), want refused", code)
	}
	everything := subscribe(t, sensor, "#")
	appDocs := subscribe(t, app, p+"/kv/#")

	// Write ACL: the broker drops a QoS 0 publication outside the write
	// filters; the reading after it is handled, by the one worker, after
	// the operation would have been.
	sensor.Publish(p+"/kv/app/x/set", 0, false, `{"op":"inc","by":1}`).WaitTimeout(waitTime)
	publish(t, sensor, p+"/readings/temp", false, "20")
	if got := nextIngest(t, be); got.sensor != "temp" {
		t.Fatalf("ingested %+v", got)
	}
	if n := be.ops.Load(); n != 0 {
		t.Fatalf("Do called %d times for a publication outside the write ACL", n)
	}

	// app may set; sensor must not receive the document on "#" ...
	publish(t, app, p+"/kv/app/x/set", false, `{"op":"inc","by":1}`)
	next(t, appDocs, "document")
	// ... but does receive errors: the first thing it gets is this one.
	publish(t, sensor, p+"/readings/temp", false, "not a reading")
	m := next(t, everything, "error report")
	if m.Topic() != p+"/errors" {
		t.Fatalf("sensor received %s %s, want only %s/errors", m.Topic(), m.Payload(), p)
	}
}

func TestAuthHookACL(t *testing.T) {
	h, err := newAuthHook([]User{
		{Username: "dev", PasswordFile: writeSecret(t, "pw"), Read: []string{"edged/n1/kv/+/status"}, Write: []string{"edged/n1/readings/dev-1", "devices/#"}},
		{Username: "all", PasswordFile: writeSecret(t, "pw")},
	}, "edged/n1")
	if err != nil {
		t.Fatal(err)
	}
	client := func(user string) *mqtt.Client {
		cl := &mqtt.Client{}
		cl.Properties.Username = []byte(user)
		return cl
	}
	tests := []struct {
		user, topic string
		write, want bool
	}{
		{"dev", "edged/n1/readings/dev-1", true, true},
		{"dev", "edged/n1/readings/dev-2", true, false},
		{"dev", "devices/a/b", true, true},
		{"dev", "devices", true, true},
		{"dev", "edged/n1/kv/app/status", false, true},
		{"dev", "edged/n1/kv/app/other", false, false},
		{"dev", "edged/n1/kv/#", false, true}, // overlaps: delivery is checked per topic
		{"dev", "#", false, true},
		{"dev", "$share/g/edged/n1/kv/app/status", false, true},
		{"dev", "edged/n1/readings/#", false, false},
		{"dev", "edged/n1/kv/app/status", true, false},
		{"all", "edged/n1/kv/app/x/set", true, true},
		{"all", "edged/n1", false, true},
		{"all", "edged/n2/readings/x", true, false},
		{"all", "$SYS/broker/uptime", false, false},
		{"nobody", "edged/n1/readings/x", true, false},
	}
	for _, tt := range tests {
		if got := h.OnACLCheck(client(tt.user), tt.topic, tt.write); got != tt.want {
			t.Errorf("%s write=%v %s: %v, want %v", tt.user, tt.write, tt.topic, got, tt.want)
		}
	}

	connectPacket := func(user, password string) packets.Packet {
		var pk packets.Packet
		pk.Connect.Username, pk.Connect.Password = []byte(user), []byte(password)
		return pk
	}
	cl := &mqtt.Client{ID: "c1"}
	if !h.OnConnectAuthenticate(cl, connectPacket("dev", "pw")) {
		t.Error("dev refused with the right password")
	}
	if h.OnConnectAuthenticate(cl, connectPacket("dev", "pw\n")) {
		t.Error("dev admitted with a wrong password")
	}
	if h.OnConnectAuthenticate(cl, connectPacket("", "")) {
		t.Error("anonymous client admitted although users are configured")
	}
}

func TestAuthAnonymousOnLoopback(t *testing.T) {
	h, err := newAuthHook(nil, "edged/n1")
	if err != nil {
		t.Fatal(err)
	}
	if !h.OnConnectAuthenticate(&mqtt.Client{ID: "x"}, packets.Packet{}) || !h.OnACLCheck(&mqtt.Client{}, "$SYS/#", false) {
		t.Error("anonymous mode refuses a client")
	}
	if h.OnConnectAuthenticate(&mqtt.Client{ID: mqtt.InlineClientId}, packets.Packet{}) {
		t.Error("a client took the inline client's id")
	}
}

func TestNewReadsPasswordFiles(t *testing.T) {
	cfg := authConfig(t)
	cfg.Users[1].PasswordFile = t.TempDir() + "/missing"
	_, err := New(cfg, "n1", newFake(), Options{})
	if err == nil || !strings.Contains(err.Error(), "users[1].password_file") {
		t.Fatalf("New with a missing password file: %v", err)
	}
	cfg.Users[1].PasswordFile = writeSecret(t, "")
	if _, err := New(cfg, "n1", newFake(), Options{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("New with an empty password file: %v", err)
	}
}
