package localmqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/internal/poll"
)

// waitTime bounds every wait in these tests; nothing waits for a fixed time.
const waitTime = 15 * time.Second

// fieldErr is a Backend error that names a JSON field.
type fieldErr struct{ field, msg string }

func (e fieldErr) Error() string { return e.msg }
func (e fieldErr) Field() string { return e.field }

// ingestCall is one Backend.Ingest call the fake received.
type ingestCall struct {
	sensor  string
	payload string
}

// fakeBackend is an in-memory Backend. Sensors "panic", "fail" and "block"
// panic, fail with a field error, and block until unblock is closed.
// Operations: {"op":"inc","by":N} on a counter, {"op":"del"}, anything
// else fails with a field error on "op".
type fakeBackend struct {
	ingests chan ingestCall // every successful Ingest, in order
	started chan string     // sensor of every Ingest as it starts
	unblock chan struct{}
	ops     atomic.Int64

	mu       sync.Mutex
	docs     map[string][]byte // "ns\x00key" -> document
	watchers []func(ns, key string, doc []byte)
	watching chan struct{} // closed once Watch has registered
	once     sync.Once
}

var _ Backend = (*fakeBackend)(nil)

func newFake() *fakeBackend {
	return &fakeBackend{
		ingests:  make(chan ingestCall, 1000),
		started:  make(chan string, 1000),
		unblock:  make(chan struct{}),
		docs:     make(map[string][]byte),
		watching: make(chan struct{}),
	}
}

func (f *fakeBackend) Ingest(ctx context.Context, sensor string, payload []byte) (int, error) {
	f.started <- sensor
	switch sensor {
	case "panic":
		panic("fake backend panics as asked")
	case "fail":
		return 0, fieldErr{field: "value", msg: "value must be a number"}
	case "block":
		select {
		case <-f.unblock:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n := 1
	var batch struct {
		Readings []json.RawMessage `json:"readings"`
	}
	if json.Unmarshal(payload, &batch) == nil && len(batch.Readings) > 0 {
		n = len(batch.Readings)
	}
	f.ingests <- ingestCall{sensor, string(payload)}
	return n, nil
}

func (f *fakeBackend) Do(_ context.Context, ns, key string, op []byte) ([]byte, error) {
	f.ops.Add(1)
	var o struct {
		Op string `json:"op"`
		By int    `json:"by"`
	}
	if err := json.Unmarshal(op, &o); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := ns + "\x00" + key
	var doc []byte
	switch o.Op {
	case "inc":
		var cur struct{ Value int }
		if old, ok := f.docs[id]; ok {
			_ = json.Unmarshal(old, &cur)
		}
		doc, _ = json.Marshal(map[string]any{"ns": ns, "key": key, "type": "counter", "value": cur.Value + o.By})
		f.docs[id] = doc
	case "del":
		delete(f.docs, id)
		doc, _ = json.Marshal(map[string]any{"ns": ns, "key": key, "type": "counter", "value": nil})
	default:
		return nil, fieldErr{field: "op", msg: fmt.Sprintf("unknown op %q", o.Op)}
	}
	for _, fn := range f.watchers {
		if o.Op == "del" {
			fn(ns, key, nil)
		} else {
			fn(ns, key, doc)
		}
	}
	return doc, nil
}

func (f *fakeBackend) Get(_ context.Context, ns, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	doc, ok := f.docs[ns+"\x00"+key]
	if !ok {
		return nil, fmt.Errorf("fake: %s/%s: %w", ns, key, ErrNotFound)
	}
	return doc, nil
}

func (f *fakeBackend) Watch(ctx context.Context, fn func(ns, key string, doc []byte)) error {
	f.mu.Lock()
	f.watchers = append(f.watchers, fn)
	f.mu.Unlock()
	f.once.Do(func() { close(f.watching) })
	<-ctx.Done()
	return nil
}

// notify reports a change as if another part of the node made it.
func (f *fakeBackend) notify(ns, key string, doc []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.watchers {
		fn(ns, key, doc)
	}
}

// testConfig is an embedded configuration on a free loopback port.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	return cfg
}

func testLogger() *slog.Logger {
	if os.Getenv("LOCALMQTT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a Server for cfg as node "n1" until the test ends, and waits
// until it serves and its backend is watched.
func start(t testing.TB, cfg Config, be *fakeBackend) *Server {
	t.Helper()
	return startWith(t, cfg, be, Options{Logger: testLogger()})
}

func startWith(t testing.TB, cfg Config, be *fakeBackend, opts Options) *Server {
	t.Helper()
	srv, err := New(cfg, "n1", be, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTime):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(waitTime):
		t.Fatal("server not ready")
	}
	select {
	case <-be.watching:
	case <-time.After(waitTime):
		t.Fatal("backend not watched")
	}
	eventually(t, "connected", srv.Connected)
	return srv
}

var clientSeq atomic.Int64

// connect returns a paho client connected to broker (host:port or URL),
// disconnected when the test ends. opts may adjust its options.
func connect(t testing.TB, broker string, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := tryConnect(broker, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", broker, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func tryConnect(broker string, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	if !strings.Contains(broker, "://") {
		broker = "tcp://" + broker
	}
	o := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(fmt.Sprintf("test-%d", clientSeq.Add(1))).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second)
	for _, opt := range opts {
		opt(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTime) {
		return nil, errors.New("connect timed out")
	}
	return c, tok.Error()
}

func withUser(name, password string) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) { o.SetUsername(name).SetPassword(password) }
}

// subscribe subscribes c to filter at QoS 1 and returns the messages that
// arrive on it.
func subscribe(t testing.TB, c paho.Client, filter string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 100)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(waitTime) {
		t.Fatalf("subscribe %s timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code == 0x80 {
		t.Fatalf("subscribe %s refused", filter)
	}
	return ch
}

// publish publishes payload on topic at QoS 1 and waits for the broker's
// acknowledgement.
func publish(t testing.TB, c paho.Client, topic string, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, retain, payload)
	if !tok.WaitTimeout(waitTime) {
		t.Fatalf("publish %s timed out", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// next returns the next message from ch.
func next(t testing.TB, ch <-chan paho.Message, what string) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTime):
		t.Fatalf("no %s within %s", what, waitTime)
		return nil
	}
}

// nextIngest returns the next reading the fake stored.
func nextIngest(t testing.TB, be *fakeBackend) ingestCall {
	t.Helper()
	select {
	case c := <-be.ingests:
		return c
	case <-time.After(waitTime):
		t.Fatal("no reading ingested")
		return ingestCall{}
	}
}

// eventually polls cond until it holds, failing the test after waitTime.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, waitTime, what, cond)
}

// errorReport is an object published on <p>/errors.
type errorReport struct {
	Topic string `json:"topic"`
	Error string `json:"error"`
	Field string `json:"field"`
}

func decodeReport(t testing.TB, m paho.Message) errorReport {
	t.Helper()
	var r errorReport
	if err := json.Unmarshal(m.Payload(), &r); err != nil {
		t.Fatalf("error report %q: %v", m.Payload(), err)
	}
	return r
}

// writeSecret writes a password file and returns its path.
func writeSecret(t testing.TB, password string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run starts srv.Run and waits until srv is ready. cancel cancels Run's
// context; wait returns what Run returns, failing the test if it does not
// return within waitTime.
func run(t testing.TB, srv *Server) (cancel context.CancelFunc, wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	wait = func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-timeAfter():
			t.Fatal("Run did not return")
			return nil
		}
	}
	select {
	case <-srv.Ready():
	case <-timeAfter():
		cancel()
		t.Fatal("not ready")
	}
	return cancel, wait
}

// timeAfter is the deadline of a wait in a select.
func timeAfter() <-chan time.Time { return time.After(waitTime) }
