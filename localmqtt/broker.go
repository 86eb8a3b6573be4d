package localmqtt

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/edged-dev/edged/mqttconn"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authHook is the embedded broker's authentication and authorisation: a
// mochi hook, so the broker applies it to every CONNECT, SUBSCRIBE,
// PUBLISH and delivery.
type authHook struct {
	mqtt.HookBase
	// anonymous admits every client with access to every topic; set when
	// no users are configured.
	anonymous bool
	users     map[string]account
}

// account is a user's password digest and topic filters.
type account struct {
	password    [sha256.Size]byte
	read, write []string
}

var _ mqtt.Hook = (*authHook)(nil)

// newAuthHook reads the users' password files. A user with neither read
// nor write filters gets both on everything under prefix.
func newAuthHook(users []User, prefix string) (*authHook, error) {
	h := &authHook{anonymous: len(users) == 0, users: make(map[string]account, len(users))}
	for i, u := range users {
		pw, err := mqttconn.ReadSecret(u.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("users[%d].password_file: %w", i, err)
		}
		acc := account{password: sha256.Sum256(pw), read: u.Read, write: u.Write}
		if len(u.Read) == 0 && len(u.Write) == 0 {
			all := []string{prefix + "/#"}
			acc.read, acc.write = all, all
		}
		h.users[u.Username] = acc
	}
	return h, nil
}

// ID names the hook in the broker's logs.
func (h *authHook) ID() string { return "edged-auth" }

// Provides says which hook methods authHook implements.
func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate admits a client whose user name and password match
// a user, or any client in anonymous mode. It refuses the client id of the
// node's own inline client, which would take over its session, and a will
// message on a topic the user may not publish to, which the broker would
// otherwise publish without an ACL check.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.ID == mqtt.InlineClientId {
		return false
	}
	if h.anonymous {
		return true
	}
	acc, known := h.users[string(pk.Connect.Username)]
	given := sha256.Sum256(pk.Connect.Password)
	// Compared for unknown users too, so timing does not tell which
	// user names exist; digests, so it does not tell a password's length.
	if subtle.ConstantTimeCompare(given[:], acc.password[:]) != 1 || !known {
		return false
	}
	if pk.Connect.WillFlag && !allowed(acc.write, pk.Connect.WillTopic) {
		return false
	}
	return true
}

// OnACLCheck reports whether cl may publish to topic (write) or subscribe
// to the filter, or receive a message on, topic (read). A subscription is
// allowed if its filter overlaps one of the user's read filters; each
// message it matches is then checked again on delivery, so the client gets
// only what its filters allow.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.anonymous {
		return true
	}
	acc, ok := h.users[string(cl.Properties.Username)]
	if !ok {
		return false
	}
	if write {
		return allowed(acc.write, topic)
	}
	return allowed(acc.read, stripShare(topic))
}

// allowed reports whether topic, a topic name or filter, overlaps one of
// filters.
func allowed(filters []string, topic string) bool {
	for _, f := range filters {
		if intersects(f, topic) {
			return true
		}
	}
	return false
}

// Inline subscription ids of the node's input filters.
const (
	subReadings = 1
	subKV       = 2
)

// embedded is the transport of embedded mode: a mochi broker whose inline
// client is the node.
type embedded struct {
	cfg    Config
	prefix string
	hook   *authHook
	log    *slog.Logger

	// Set by start.
	srv    *mqtt.Server
	inline *mqtt.Client
	ln     net.Listener
	up     atomic.Bool // between start and close
}

var _ transport = (*embedded)(nil)

func newEmbedded(cfg Config, prefix string, hook *authHook, log *slog.Logger) *embedded {
	return &embedded{cfg: cfg, prefix: prefix, hook: hook, log: log}
}

func (e *embedded) filters() map[int]string {
	return map[int]string{
		subReadings: e.prefix + "/" + levelReadings + "/#",
		subKV:       e.prefix + "/" + levelKV + "/#",
	}
}

func (e *embedded) start(ctx context.Context, s *Server) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(e.cfg.MaxPayloadBytes + e.cfg.MaxTopicBytes + maxPacketOverhead)
	// Persistent sessions of clients that never come back (MQTT 3.1.1 has
	// no session expiry of its own) are dropped after a day, not kept
	// forever on a small device.
	caps.MaximumSessionExpiryInterval = 24 * 60 * 60
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(brokerLog{e.log.Handler()}).With("part", "mqtt-broker"),
		SysTopicResendInterval: 30,
	})
	if err := srv.AddHook(e.hook, nil); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqtt broker: %w", err)
	}
	if s.opts.Shed != nil {
		if err := srv.AddHook(&gateHook{s: s}, nil); err != nil {
			_ = ln.Close()
			return fmt.Errorf("mqtt broker: %w", err)
		}
	}
	if err := srv.AddListener(newListener("tcp", ln, srv)); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqtt broker: %w", err)
	}
	inline, ok := srv.Clients.Get(mqtt.InlineClientId)
	if !ok {
		_ = srv.Close()
		return fmt.Errorf("mqtt broker: no inline client")
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("mqtt broker: %w", err)
	}
	e.srv, e.inline, e.ln = srv, inline, ln

	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if pk.Origin == mqtt.InlineClientId {
			return // the node's own document, reply or error
		}
		s.receive(message{
			topic:         pk.TopicName,
			payload:       pk.Payload,
			responseTopic: pk.Properties.ResponseTopic,
			correlation:   pk.Properties.CorrelationData,
			requester:     pk.Origin,
		})
	}
	for id, f := range e.filters() {
		if err := srv.Subscribe(f, id, handler); err != nil {
			_ = srv.Close()
			return fmt.Errorf("mqtt broker: subscribe %s: %w", f, err)
		}
	}
	e.up.Store(true)
	s.markReady()
	return nil
}

func (e *embedded) stopInputs() {
	if e.srv == nil {
		return
	}
	for id, f := range e.filters() {
		_ = e.srv.Unsubscribe(f, id)
	}
}

func (e *embedded) close() {
	e.up.Store(false)
	if e.srv != nil {
		// Closes the listener, which disconnects every client, and waits
		// for the clients' read loops.
		_ = e.srv.Close()
	}
}

func (e *embedded) publish(topic string, payload []byte, retain bool, qos byte, correlation []byte) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
		Properties:  packets.Properties{CorrelationData: correlation},
	}
	if qos > 0 {
		// The broker checks that a QoS 1 PUBLISH has a packet id but
		// does not track the inline client's: any non-zero one will do.
		pk.PacketID = 1
	}
	if len(payload) > 0 {
		pk.Properties.ContentType = "application/json"
	}
	return e.srv.InjectPacket(e.inline, pk)
}

func (e *embedded) connected() bool { return e.srv != nil }

func (e *embedded) serving() bool { return e.up.Load() }

func (e *embedded) mayRespond(requester, topic string) bool {
	cl, ok := e.srv.Clients.Get(requester)
	return ok && e.hook.OnACLCheck(cl, topic, true)
}

func (e *embedded) addr() net.Addr {
	if e.ln == nil {
		return nil
	}
	return e.ln.Addr()
}

// brokerLog is the handler of the embedded broker's log. mochi logs its
// start and stop at info, which the Server logs itself, and every client
// connection that ends without a DISCONNECT, routine for devices on a
// LAN, as a warning with an empty message. Both go to debug.
type brokerLog struct{ slog.Handler }

func (h brokerLog) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h brokerLog) Handle(ctx context.Context, r slog.Record) error {
	switch {
	case r.Level == slog.LevelInfo:
		r.Level = slog.LevelDebug
	case r.Level == slog.LevelWarn && r.Message == "":
		r.Level, r.Message = slog.LevelDebug, "mqtt client connection ended"
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h brokerLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return brokerLog{h.Handler.WithAttrs(attrs)}
}

func (h brokerLog) WithGroup(name string) slog.Handler {
	return brokerLog{h.Handler.WithGroup(name)}
}

// gateHook holds back inputs while the node sheds their class, before the
// broker acknowledges them (see Server.admit): a QoS 0 input is dropped,
// a QoS 1 input's PUBACK waits, which slows its publisher.
type gateHook struct {
	mqtt.HookBase
	s *Server
}

// ID names the hook in the broker's logs.
func (*gateHook) ID() string { return "edged-shedding" }

// Provides says the hook sees publishes.
func (*gateHook) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish admits, delays or drops a client's publish.
func (h *gateHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || h.s.admit(pk.TopicName, pk.FixedHeader.Qos) {
		return pk, nil
	}
	return pk, packets.ErrRejectPacket
}
