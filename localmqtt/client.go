package localmqtt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/mqttconn"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Timeouts of client mode.
const (
	// publishTimeout bounds the wait for a broker's PUBACK. A QoS 1
	// message not acknowledged by then stays in paho's store and is sent
	// again after a reconnection.
	publishTimeout = 10 * time.Second
	// disconnectQuiesce is how long paho may take to finish work in
	// progress when the node disconnects, in milliseconds.
	disconnectQuiesce = 250
)

// client is the transport of client mode: a paho MQTT 3.1.1 connection to
// the gateway's broker.
type client struct {
	cfg    Config
	prefix string
	log    *slog.Logger
	opts   *paho.ClientOptions // without the handlers, which start adds

	c          paho.Client
	stopDialer context.CancelFunc
	subscribed atomic.Bool // the connection is up and the inputs subscribed

	// mu guards closed; goroutines that call into the Server (the dialer,
	// the on-connect handler) are counted in wg while closed is false, so
	// close can wait for them.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ transport = (*client)(nil)

// newClient reads the password and CA files and prepares the connection
// options; it does not connect.
func newClient(cfg Config, node, prefix string, log *slog.Logger) (*client, error) {
	b := mqttconn.Broker{URL: cfg.Broker, Username: cfg.Username, PasswordFile: cfg.PasswordFile, CAFile: cfg.CAFile,
		ReconnectMaxInterval: cfg.ReconnectMaxInterval}
	opts, err := b.Options("edged-" + node)
	if err != nil {
		return nil, err
	}
	// Handlers run in order on paho's router goroutine, and acknowledge
	// an input themselves once the node has taken it: while the queue is
	// full, the router waits, and the broker holds the inputs that follow.
	opts.SetOrderMatters(true)
	opts.SetAutoAckDisabled(true)
	return &client{cfg: cfg, prefix: prefix, log: log, opts: opts}, nil
}

// filters are the node's input subscriptions, at QoS 1. kv/# also matches
// the node's own documents and replies: MQTT 3.1.1 cannot filter a client's
// own messages out, so take ignores them by topic.
func (t *client) filters() map[string]byte {
	return map[string]byte{
		t.prefix + "/" + levelReadings + "/#": 1,
		t.prefix + "/" + levelKV + "/#":       1,
	}
}

func (t *client) start(ctx context.Context, s *Server) error {
	opts := *t.opts
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			// Replayed on subscription: stale, and an operation in it
			// would be applied again on every reconnection.
			m.Ack()
			return
		}
		// Declined only once the node stops: the broker keeps the input
		// for the persistent session and sends it again.
		if s.take(message{topic: m.Topic(), payload: m.Payload()}, m.Qos(), time.Time{}) != declined {
			m.Ack()
		}
	})
	opts.SetOnConnectHandler(func(c paho.Client) {
		if !t.enter() {
			return
		}
		defer t.wg.Done()
		t.subscribe(c, s)
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		t.subscribed.Store(false)
		t.log.Warn("mqtt connection lost; reconnecting", "broker", t.cfg.Broker, "err", err)
	})
	t.c = paho.NewClient(&opts)
	dialing, stop := context.WithCancel(context.WithoutCancel(ctx))
	t.stopDialer = stop
	if !t.enter() {
		return errors.New("client closed")
	}
	go func() {
		defer t.wg.Done()
		t.dial(dialing)
	}()
	s.markReady()
	return nil
}

// enter counts a goroutine that may call into the Server in wg, unless the
// transport is closed.
func (t *client) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// dial connects for the first time; then paho reconnects by itself.
func (t *client) dial(ctx context.Context) {
	mqttconn.Dial(ctx, t.c, t.cfg.Broker, t.cfg.ReconnectMaxInterval, t.log)
}

// subscribe subscribes to the node's inputs on every connection (the
// broker may have lost the persistent session) and wakes the publisher of
// key changes.
func (t *client) subscribe(c paho.Client, s *Server) {
	tok := c.SubscribeMultiple(t.filters(), nil)
	if !tok.WaitTimeout(mqttconn.Timeout) {
		t.log.Error("mqtt subscribe timed out", "broker", t.cfg.Broker)
		return
	}
	if err := tok.Error(); err != nil {
		t.log.Error("mqtt subscribe failed", "broker", t.cfg.Broker, "err", err)
		return
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for filter, qos := range st.Result() {
			if qos == 0x80 {
				t.log.Error("mqtt broker refused subscription; check its ACL", "broker", t.cfg.Broker, "filter", filter)
			}
		}
	}
	t.subscribed.Store(true)
	t.log.Info("mqtt connected", "broker", t.cfg.Broker)
	s.changes.poke()
}

func (t *client) stopInputs() {
	if t.c == nil {
		return
	}
	t.stopDialer()
	t.subscribed.Store(false)
	// The broker keeps the persistent session and queues QoS 1 inputs for
	// it until the node connects again.
	t.c.Disconnect(disconnectQuiesce)
}

func (t *client) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	if t.stopDialer != nil {
		t.stopDialer()
	}
	t.wg.Wait()
	if t.c != nil && t.c.IsConnected() {
		// A connection that came up after stopInputs.
		t.c.Disconnect(disconnectQuiesce)
	}
}

func (t *client) publish(topic string, payload []byte, retain bool, qos byte, _ []byte) error {
	if t.c == nil || !t.c.IsConnectionOpen() {
		return errNotConnected
	}
	tok := t.c.Publish(topic, qos, retain, payload)
	if qos == 0 {
		return nil // not waited for: best effort
	}
	if !tok.WaitTimeout(publishTimeout) {
		return nil // stays in paho's store; sent again after a reconnection
	}
	if err := tok.Error(); err != nil {
		if errors.Is(err, paho.ErrNotConnected) {
			return errNotConnected
		}
		return err
	}
	return nil
}

func (t *client) connected() bool { return t.c != nil && t.c.IsConnectionOpen() }

func (t *client) serving() bool { return t.subscribed.Load() }

// mayRespond allows any Response Topic: paho speaks MQTT 3.1.1, so none
// arrives in client mode, and the broker's ACL applies to the node's
// publications anyway.
func (t *client) mayRespond(string, string) bool { return true }

func (t *client) addr() net.Addr { return nil }
