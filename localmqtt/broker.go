package localmqtt

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

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

// embedded is the transport of embedded mode: a mochi broker whose inline
// client is the node.
type embedded struct {
	cfg  Config
	hook *authHook
	log  *slog.Logger

	// Set by start.
	srv    *mqtt.Server
	inline *mqtt.Client
	ln     net.Listener
	up     atomic.Bool // between start and close
}

var _ transport = (*embedded)(nil)

func newEmbedded(cfg Config, hook *authHook, log *slog.Logger) *embedded {
	return &embedded{cfg: cfg, hook: hook, log: log}
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
	if err := srv.AddHook(&intakeHook{s: s}, nil); err != nil {
		_ = ln.Close()
		return fmt.Errorf("mqtt broker: %w", err)
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

	e.up.Store(true)
	s.markReady()
	return nil
}

// stopInputs has nothing to stop: take turns away the inputs offered once
// the node stops.
func (e *embedded) stopInputs() {}

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
// LAN, as a warning with an empty message, and every input the node
// declines (intakeHook) as an error. All go to debug.
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
	case r.Level == slog.LevelError && r.Message == "publish packet error":
		r.Level = slog.LevelDebug // an input declined, counted and reported by the node
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

// intakeHook offers clients' inputs to the node (Server.take) before the
// broker acknowledges them, and acknowledges them as take says: an input
// taken is acknowledged and goes on to the broker's subscribers; one
// dropped (QoS 0) does not; one declined (QoS 1 or 2) is not
// acknowledged: an MQTT 5 client gets PUBACK "quota exceeded" (0x97), and
// an MQTT 3.1.1 client, which has no negative acknowledgement, is
// disconnected, and sends the input again when it reconnects. Will
// messages are offered as they are sent.
type intakeHook struct {
	mqtt.HookBase
	s *Server
}

// ID names the hook in the broker's logs.
func (*intakeHook) ID() string { return "edged-intake" }

// Provides says the hook sees publishes and wills.
func (*intakeHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnWillSent }

// OnPublish takes, delays, drops or declines a client's publish.
func (h *intakeHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the node's own document, reply or error
	}
	switch h.s.take(inputOf(pk), pk.FixedHeader.Qos, time.Now().Add(h.s.hold)) {
	case dropped:
		return pk, packets.ErrRejectPacket
	case declined:
		if cl.Properties.ProtocolVersion == 5 {
			return pk, packets.ErrQuotaExceeded
		}
		cl.Stop(packets.ErrQuotaExceeded)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnWillSent takes a client's will message, which the broker has just
// published: there is no acknowledgement to hold back, so one the node
// cannot take is dropped (counted, reported).
func (h *intakeHook) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	h.s.take(inputOf(pk), pk.FixedHeader.Qos, time.Now().Add(h.s.hold))
}

// inputOf is the input a PUBLISH (or will) packet carries.
func inputOf(pk packets.Packet) message {
	return message{
		topic:         pk.TopicName,
		payload:       pk.Payload,
		responseTopic: pk.Properties.ResponseTopic,
		correlation:   pk.Properties.CorrelationData,
		requester:     pk.Origin,
	}
}
