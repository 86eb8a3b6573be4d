package localmqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/shedding"
)

// Backend is what the MQTT interface serves. Implementations are safe for concurrent use.
type Backend interface {
	// Ingest stores the readings that payload carries for sensor: a bare number ("21.5"), a JSON reading ({"value":21.5,"unit":"C","ts":"2026-11-23T10:00:00Z","tags":{...}}) or {"readings":[...]} , or InfluxDB line protocol. It returns how many readings were stored.
	Ingest(ctx context.Context, sensor string, payload []byte) (int, error)
	// Do applies an operation given as JSON (e.g. {"type":"counter","op":"inc","by":1}) to key ns/key and returns the key's new JSON document {"ns","key","type","value"}.
	Do(ctx context.Context, ns, key string, op []byte) ([]byte, error)
	// Get returns the JSON document of ns/key; an error satisfying errors.Is(err, ErrNotFound) when absent (ErrNotFound is a sentinel you declare in localmqtt, I will wrap it).
	Get(ctx context.Context, ns, key string) ([]byte, error)
	// Watch calls fn for every key change (doc nil when the key was removed) until ctx is done; fn must not block for long. It returns when ctx is done.
	Watch(ctx context.Context, fn func(ns, key string, doc []byte)) error
}

var (
	// ErrNotFound is what Backend.Get returns, wrapped or not, for a key
	// that does not exist.
	ErrNotFound = errors.New("localmqtt: not found")

	// errNotConnected is what a transport's publish returns while it has no
	// connection to its broker; the publication may be retried later.
	errNotConnected = errors.New("localmqtt: not connected to the broker")
)

// fieldError is an error that names the offending JSON field, as Backend
// errors may.
type fieldError interface {
	error
	Field() string
}

// Options are the dependencies of a Server.
type Options struct {
	// Logger receives the interface's logs, and the embedded broker's with
	// part=mqtt-broker. Nil means no logs.
	Logger *slog.Logger
	// Shed, when set, is the node's load-shedding governor: while it
	// sheds an input's class, a QoS 0 input is dropped (and counted) and
	// a QoS 1 input waits before it is acknowledged (up to maxShedDelay),
	// which slows its publisher down.
	Shed *shedding.Governor
	// Class returns an input's class: a reading's by its sensor, a key
	// write's by its namespace. Nil: normal.
	Class func(reading bool, name string) shedding.Class
}

// maxHold bounds how long an input waits, before it is acknowledged, for
// the node to take it: while the node sheds its class, and (embedded mode)
// for room in its worker's queue.
const maxHold = 5 * time.Second

// shedPoll is how often an input held back while its class is shed asks
// the governor again.
const shedPoll = 50 * time.Millisecond

// intake is what became of an input offered to take.
type intake int

const (
	// taken: queued for a worker, or refused with an error report (an
	// invalid input is acknowledged: sending it again would not help).
	taken intake = iota
	// dropped: a QoS 0 input the node could not take (counted, reported).
	dropped
	// declined: a QoS 1 or 2 input the node could not take in time, or
	// offered while the node stops (counted, reported). It must not be
	// acknowledged: the publisher sends it again.
	declined
)

// take takes one input from the transport, on the transport's goroutine
// for its publisher, before the input is acknowledged: an input is
// acknowledged only once it is queued for a worker (or refused as
// invalid), so a full queue never drops one it acknowledged. It checks what
// is cheap to check, holds the input back while the node sheds its class,
// and queues it. A QoS 0 input is dropped when its class is shed or the
// queue is full; a QoS 1 or 2 input waits, which slows its publisher: for
// the governor until maxHold (then it is taken anyway), and for room in
// the queue until deadline (zero: no limit) or until the node stops.
func (s *Server) take(m message, qos byte, deadline time.Time) intake {
	defer s.recoverPanic(m.topic)
	r, err := parseTopic(s.prefix, m.topic)
	if err == nil && r.kind == routeNone {
		return taken // not an input
	}
	s.stats.received.Add(1)
	if err := s.check(m, r, err); err != nil {
		return taken
	}
	if !s.admit(m, r, qos) {
		if qos == 0 {
			return dropped
		}
		return declined
	}
	m.payload = bytes.Clone(m.payload)
	m.correlation = bytes.Clone(m.correlation)
	if s.enqueue(job{msg: m, route: r}, qos > 0, deadline) {
		return taken
	}
	if qos == 0 {
		s.refuse(KindDropped, m, errors.New("node busy or stopping: input dropped"))
		return dropped
	}
	s.report(KindDeclined, m.topic, errors.New("node busy or stopping: input not acknowledged; the publisher sends it again"))
	return declined
}

// check checks an input's topic (r, or the error parsing it) and payload,
// and reports what is wrong with them.
func (s *Server) check(m message, r route, topicErr error) error {
	if len(m.topic) > s.cfg.MaxTopicBytes {
		err := fmt.Errorf("topic is %d bytes, more than max_topic_bytes %d", len(m.topic), s.cfg.MaxTopicBytes)
		s.report(KindTopic, m.topic, err)
		return err
	}
	if topicErr != nil {
		s.report(KindTopic, m.topic, topicErr)
		return topicErr
	}
	if m.responseTopic != "" {
		if err := s.checkResponseTopic(m); err != nil {
			s.report(KindTopic, m.topic, err)
			return err
		}
	}
	if len(m.payload) > s.cfg.MaxPayloadBytes {
		err := fmt.Errorf("payload is %d bytes, more than max_payload_bytes %d", len(m.payload), s.cfg.MaxPayloadBytes)
		s.refuse(KindPayload, m, err)
		return err
	}
	var err error
	switch r.kind {
	case routeReading:
		_, err = classifyReading(m.payload)
	case routeSet:
		err = checkOp(m.payload)
	}
	if err != nil {
		s.refuse(KindPayload, m, err)
	}
	return err
}

// admit holds an input back while the node sheds its class: it returns
// false for a QoS 0 input to drop, and makes a QoS 1 or 2 input wait
// until the governor takes it or s.hold has passed (then it is taken, and
// counted as delayed only); it returns false for one the node stops
// before that.
func (s *Server) admit(m message, r route, qos byte) bool {
	gov := s.opts.Shed
	if gov == nil || (r.kind != routeReading && r.kind != routeSet) {
		return true
	}
	class := shedding.Normal
	if s.opts.Class != nil {
		name := r.ns
		if r.kind == routeReading {
			name = r.sensor
		}
		class = s.opts.Class(r.kind == routeReading, name)
	}
	if qos == 0 {
		if gov.Allow(class, time.Now()).Admit {
			return true
		}
		s.report(KindShed, m.topic, fmt.Errorf("node overloaded: %s input dropped (QoS 0)", class))
		return false
	}
	deadline := time.Now().Add(s.hold)
	poll := time.NewTicker(shedPoll)
	defer poll.Stop()
	for held := false; ; {
		now := time.Now()
		if gov.Hold(class, now).Admit {
			return true
		}
		if !held {
			held = true
			gov.Delayed(class)
			s.stats.delayed.Add(1)
		}
		if now.After(deadline) {
			return true
		}
		select {
		case <-poll.C:
		case <-s.stopping:
			s.report(KindDeclined, m.topic, errors.New("node stopping: input not acknowledged; the publisher sends it again"))
			return false
		}
	}
}

// transport is how a Server speaks MQTT: through an embedded broker or as a
// client of another one.
type transport interface {
	// start begins offering the messages on the node's input topics to
	// s.take before it acknowledges them, and acknowledges them as take
	// says, and marks s ready once it does. It returns once it serves
	// (embedded) or once it has started connecting (client).
	start(ctx context.Context, s *Server) error
	// stopInputs stops the offering of new messages, as far as the
	// transport can; take turns away those that still come.
	stopInputs()
	// close releases everything start acquired and waits for the
	// transport's goroutines. Publishing after close fails.
	close()
	// publish sends a message; correlation is MQTT 5 Correlation Data, nil
	// for none. It may block for a bounded time; errNotConnected means
	// there is no connection now.
	publish(topic string, payload []byte, retain bool, qos byte, correlation []byte) error
	// connected reports whether publish can reach the broker now.
	connected() bool
	// serving reports whether inputs can arrive now: the broker runs, or
	// the connection is up and subscribed.
	serving() bool
	// mayRespond reports whether the client requester (as named in message)
	// may have replies published on topic, its MQTT 5 Response Topic.
	mayRespond(requester, topic string) bool
	// addr returns the address the embedded broker listens on, or nil.
	addr() net.Addr
}

// message is an input as a transport hands it over. The transport may reuse
// its slices once receive returns.
type message struct {
	topic         string
	payload       []byte
	responseTopic string // MQTT 5 Response Topic; "" for none
	correlation   []byte // MQTT 5 Correlation Data; nil for none
	requester     string // the publishing client's id (embedded mode only)
}

// job is an input waiting for a worker.
type job struct {
	msg   message
	route route
}

// Sizes of the buffers between the handlers and the publisher.
const (
	// maxPendingChanges bounds the key changes waiting to be published
	// (one per key, the last wins), which pile up while a client-mode
	// connection is down.
	maxPendingChanges = 1 << 16
	// errorQueueLength bounds the error reports waiting to be published;
	// more are counted but not published.
	errorQueueLength = 64
)

// Server serves a Backend over MQTT, through its own embedded broker or the
// gateway's broker (see the package doc). Create it with New and start it
// with Run.
type Server struct {
	cfg     Config
	node    string
	prefix  string
	backend Backend
	log     *slog.Logger
	tr      transport // nil in mode off

	stats counters
	opts  Options

	started   atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once

	// queues carry inputs from receive to the workers, one queue per
	// worker; inputs for one sensor or key always take the same queue, so
	// they are handled in the order they arrived. qmu guards the sends
	// against close: receive may still run after the inputs are stopped.
	qmu     sync.RWMutex
	qclosed bool
	queues  []chan job
	seed    maphash.Seed

	changes *changeBuffer
	errs    chan []byte // error objects for <p>/errors
	// stopping is closed when Run begins to stop: inputs offered since,
	// and inputs still waiting to be taken, are not taken.
	stopping chan struct{}
	hold     time.Duration // maxHold; shorter in tests
}

// New returns a Server for cfg that serves backend as node: node is the
// node's name, which the default topic prefix contains and the client id in
// client mode is derived from. New validates cfg and reads the password
// files; it starts nothing.
func New(cfg Config, node string, backend Backend, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("localmqtt: invalid configuration: %w", err)
	}
	if backend == nil && cfg.Mode != ModeOff {
		return nil, errors.New("localmqtt: backend is nil")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := cfg.TopicPrefix
	if prefix == "" {
		if node == "" || strings.Contains(node, "/") || !validTopicText(node) {
			return nil, fmt.Errorf("localmqtt: node name %q cannot be a topic level; set topic_prefix", node)
		}
		prefix = "edged/" + node
	}
	s := &Server{
		cfg:      cfg,
		node:     node,
		prefix:   prefix,
		backend:  backend,
		log:      log,
		opts:     opts,
		ready:    make(chan struct{}),
		queues:   make([]chan job, cfg.Workers),
		seed:     maphash.MakeSeed(),
		changes:  newChangeBuffer(maxPendingChanges),
		errs:     make(chan []byte, errorQueueLength),
		stopping: make(chan struct{}),
		hold:     maxHold,
	}
	for i := range s.queues {
		// The queue length split evenly, rounded up.
		s.queues[i] = make(chan job, (cfg.QueueLength+cfg.Workers-1)/cfg.Workers)
	}
	switch cfg.Mode {
	case ModeEmbedded:
		hook, err := newAuthHook(cfg.Users, prefix)
		if err != nil {
			return nil, fmt.Errorf("localmqtt: %w", err)
		}
		s.tr = newEmbedded(cfg, hook, log)
	case ModeClient:
		c, err := newClient(cfg, node, prefix, log)
		if err != nil {
			return nil, fmt.Errorf("localmqtt: %w", err)
		}
		s.tr = c
	}
	return s, nil
}

// Prefix returns the topic prefix the server uses: Config.TopicPrefix or
// "edged/<node name>".
func (s *Server) Prefix() string { return s.prefix }

// Ready returns a channel that is closed once Run has started: in
// embedded mode once the broker listens and the node is subscribed; in
// client mode once the node has started connecting (the broker may be
// down: see Connected); in mode off at once.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Connected reports whether inputs can reach the node now: in embedded
// mode while the broker runs; in client mode while the connection to the
// broker is up and the node is subscribed; never in mode off. It is safe
// to call at any time, for health checks.
func (s *Server) Connected() bool { return s.tr != nil && s.tr.serving() }

// Addr returns the address the embedded broker listens on, with the actual
// port when Config.Addr asked for port 0. It returns nil in other modes and
// before Ready is closed.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.ready:
	default:
		return nil
	}
	if s.tr == nil {
		return nil
	}
	return s.tr.addr()
}

// Stats returns the server's counters. It is safe to call at any time.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

func (s *Server) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Run serves until ctx is cancelled, then stops and returns nil. It returns
// an error if the broker cannot start (e.g. addr is in use) or if
// Backend.Watch returns before ctx is done; in both cases it stops first
// whatever it started. Run must be called at most once.
//
// It stops in this order: no new inputs (see the package doc), then the
// queue is drained into the Backend within Config.BackendTimeout, then
// Watch is stopped and pending key changes are published if the broker is
// still reachable, then the broker is closed or the connection dropped.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("localmqtt: Run called twice")
	}
	if s.tr == nil {
		s.markReady()
		<-ctx.Done()
		return nil
	}

	// Backend calls run on work, not ctx, so the queue can drain after ctx
	// is cancelled; work itself is cancelled when the drain time is up.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var workers sync.WaitGroup
	for _, q := range s.queues {
		workers.Go(func() { s.work(work, q) })
	}
	publishing, stopPublishing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublishing()
	published := make(chan struct{})
	go func() {
		defer close(published)
		s.publishLoop(publishing)
	}()
	// drainWorkers lets the workers finish the queue, within the drain time.
	drainWorkers := func() {
		s.closeQueue()
		drain := time.AfterFunc(s.cfg.BackendTimeout, stopWork)
		workers.Wait()
		drain.Stop()
	}

	if err := s.tr.start(ctx, s); err != nil {
		close(s.stopping)
		s.tr.stopInputs()
		drainWorkers()
		stopPublishing()
		<-published
		s.tr.close()
		return fmt.Errorf("localmqtt: %w", err)
	}
	watching, stopWatching := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatching()
	watched := make(chan error, 1)
	go func() { watched <- s.backend.Watch(watching, s.changed) }()

	s.logStart()
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-watched:
		if err == nil {
			err = errors.New("returned early")
		}
		runErr = fmt.Errorf("localmqtt: backend watch: %w", err)
		watched <- nil // for the wait below
	}
	s.log.Info("mqtt interface stopping")
	close(s.stopping)
	s.tr.stopInputs()
	drainWorkers()
	stopWatching()
	<-watched
	stopPublishing() // publishes what is pending, once
	<-published
	s.tr.close()
	st := s.Stats()
	s.log.Info("mqtt interface stopped", "received", st.Received, "readings", st.Readings, "ops", st.Ops)
	return runErr
}

func (s *Server) logStart() {
	switch s.cfg.Mode {
	case ModeEmbedded:
		s.log.Info("mqtt broker started",
			"addr", s.tr.addr().String(),
			"prefix", s.prefix,
			"users", len(s.cfg.Users),
			"anonymous", len(s.cfg.Users) == 0)
	case ModeClient:
		s.log.Info("mqtt client started", "broker", s.cfg.Broker, "prefix", s.prefix)
	}
}

// checkResponseTopic reports why the node will not publish a reply on m's
// MQTT 5 Response Topic.
func (s *Server) checkResponseTopic(m message) error {
	t := m.responseTopic
	if len(t) > s.cfg.MaxTopicBytes || !validTopicText(t) || strings.HasPrefix(t, "$") {
		return fmt.Errorf("response topic %q is not a valid topic name", t)
	}
	if r, err := parseTopic(s.prefix, t); err != nil || r.kind != routeNone || t == errorTopic(s.prefix) {
		return fmt.Errorf("response topic %q is an input of the node", t)
	}
	if !s.tr.mayRespond(m.requester, t) {
		return fmt.Errorf("response topic %q is not writable by the requesting client", t)
	}
	return nil
}

// refuse reports an input that fails before it reaches the Backend and
// replies with the error if the request carried a Response Topic.
func (s *Server) refuse(kind ErrorKind, m message, err error) {
	s.report(kind, m.topic, err)
	if m.responseTopic != "" {
		s.reply(m, "", errorObject(m.topic, err))
	}
}

// enqueue queues j for its worker. When the worker's queue is full it
// waits for room if wait is set, until deadline (zero: no limit) or until
// the node stops taking inputs; otherwise it gives up at once.
func (s *Server) enqueue(j job, wait bool, deadline time.Time) bool {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(j.route.sensor)
	h.WriteByte(0)
	h.WriteString(j.route.ns)
	h.WriteByte(0)
	h.WriteString(j.route.key)
	q := s.queues[h.Sum64()%uint64(len(s.queues))]
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if s.qclosed || s.isStopping() {
		return false
	}
	select {
	case q <- j:
		return true
	default:
	}
	if !wait {
		return false
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	// closeQueue waits for this read lock: Run closes stopping first.
	select {
	case q <- j:
		return true
	case <-expired:
	case <-s.stopping:
	}
	return false
}

// isStopping reports whether Run has begun to stop: inputs offered since
// are not taken.
func (s *Server) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

func (s *Server) closeQueue() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if !s.qclosed {
		s.qclosed = true
		for _, q := range s.queues {
			close(q)
		}
	}
}

// work runs one worker: it takes inputs off its queue until it is closed
// and drained. Once ctx is done the rest is dropped, not handled.
func (s *Server) work(ctx context.Context, queue <-chan job) {
	for j := range queue {
		if ctx.Err() != nil {
			s.report(KindDropped, j.msg.topic, errors.New("still queued when the shutdown drain time ran out; input dropped"))
			continue
		}
		s.handle(ctx, j)
	}
}

// handle makes the Backend call that j asks for and publishes the outcome.
func (s *Server) handle(ctx context.Context, j job) {
	defer s.recoverPanic(j.msg.topic)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BackendTimeout)
	defer cancel()
	m, r := j.msg, j.route
	switch r.kind {
	case routeReading:
		n, err := s.backend.Ingest(ctx, r.sensor, m.payload)
		if err != nil {
			s.report(KindBackend, m.topic, err)
			return
		}
		s.stats.readings.Add(uint64(max(n, 0)))
	case routeSet:
		doc, err := s.backend.Do(ctx, r.ns, r.key, m.payload)
		if err != nil {
			s.refuse(KindBackend, m, err)
			return
		}
		s.stats.ops.Add(1)
		if m.responseTopic != "" {
			s.reply(m, "", doc)
		}
	case routeGet:
		fallback := replyTopic(s.prefix, r.ns, r.key)
		doc, err := s.backend.Get(ctx, r.ns, r.key)
		switch {
		case errors.Is(err, ErrNotFound):
			s.stats.errors[KindNotFound].Add(1)
			s.reply(m, fallback, errorObject(m.topic, fmt.Errorf("key %s/%s not found", r.ns, r.key)))
		case err != nil:
			s.report(KindBackend, m.topic, err)
			s.reply(m, fallback, errorObject(m.topic, err))
		default:
			s.stats.gets.Add(1)
			s.reply(m, fallback, doc)
		}
	}
}

// reply publishes payload on m's Response Topic, with its Correlation
// Data, or on fallback if m has none (and nowhere if fallback is "").
func (s *Server) reply(m message, fallback string, payload []byte) {
	topic := m.responseTopic
	if topic == "" {
		topic = fallback
	}
	if topic == "" {
		return
	}
	if err := s.tr.publish(topic, payload, false, 1, m.correlation); err != nil {
		s.stats.errors[KindPublish].Add(1)
		s.log.Debug("mqtt reply not published", "topic", topic, "err", err)
	}
}

// errorObject is the JSON object that reports err about topic.
func errorObject(topic string, err error) []byte {
	obj := struct {
		Topic string `json:"topic"`
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{Topic: topic, Error: err.Error()}
	if fe, ok := errors.AsType[fieldError](err); ok {
		obj.Field = fe.Field()
	}
	b, _ := json.Marshal(obj) // cannot fail: strings only
	return b
}

// report counts a problem of kind with topic and queues its error object
// for <p>/errors. It does not block.
func (s *Server) report(kind ErrorKind, topic string, err error) {
	s.stats.errors[kind].Add(1)
	s.log.Debug("mqtt input failed", "kind", kind.String(), "topic", topic, "err", err)
	select {
	case s.errs <- errorObject(topic, err):
	default: // counted; the error topic is best effort
	}
}

// recoverPanic, deferred, turns a panic in a handler into a counted error.
func (s *Server) recoverPanic(topic string) {
	if v := recover(); v != nil {
		s.log.Error("mqtt handler panicked", "topic", topic, "panic", v, "stack", string(debug.Stack()))
		s.report(KindPanic, topic, fmt.Errorf("internal error: %v", v))
	}
}

// changed is the Backend.Watch callback: it queues the key's document for
// publication. It does not block.
func (s *Server) changed(ns, key string, doc []byte) {
	topic := docTopic(s.prefix, ns, key)
	defer s.recoverPanic(topic)
	err := checkNS(ns)
	if err == nil {
		err = checkKey(key)
	}
	if err == nil && len(topic) > s.cfg.MaxTopicBytes {
		err = fmt.Errorf("topic is %d bytes, more than max_topic_bytes %d", len(topic), s.cfg.MaxTopicBytes)
	}
	if err != nil {
		s.report(KindTopic, topic, fmt.Errorf("change of key %q in namespace %q not published: %w", key, ns, err))
		return
	}
	if !s.changes.put(kvKey{ns, key}, bytes.Clone(doc)) {
		s.report(KindDropped, topic, fmt.Errorf("change not published: %d changes already pending", maxPendingChanges))
		return
	}
}

// publishLoop publishes error objects and key changes until ctx is done,
// then publishes the changes still pending once more.
func (s *Server) publishLoop(ctx context.Context) {
	errTopic := errorTopic(s.prefix)
	for {
		select {
		case <-ctx.Done():
			s.flushChanges()
			return
		case obj := <-s.errs:
			if err := s.tr.publish(errTopic, obj, false, 0, nil); err != nil {
				s.log.Debug("mqtt error report not published", "err", err)
			}
		case <-s.changes.signal:
			s.flushChanges()
		}
	}
}

// flushChanges publishes every pending key change, retained. Changes that
// cannot be published for want of a connection stay pending; the
// transport signals the buffer when it connects again.
func (s *Server) flushChanges() {
	if !s.tr.connected() {
		return
	}
	for k, doc := range s.changes.take() {
		err := s.tr.publish(docTopic(s.prefix, k.ns, k.key), doc, true, 1, nil)
		switch {
		case errors.Is(err, errNotConnected):
			s.changes.restore(k, doc)
		case err != nil:
			s.stats.errors[KindPublish].Add(1)
			s.log.Warn("mqtt key change not published", "ns", k.ns, "key", k.key, "err", err)
		default:
			s.stats.changes.Add(1)
		}
	}
}

// kvKey names a key.
type kvKey struct{ ns, key string }

// changeBuffer holds the latest unpublished document of each changed key.
// A nil document is a removal.
type changeBuffer struct {
	mu      sync.Mutex
	pending map[kvKey][]byte
	max     int
	// signal has a token while changes may be waiting.
	signal chan struct{}
}

func newChangeBuffer(max int) *changeBuffer {
	return &changeBuffer{pending: make(map[kvKey][]byte), max: max, signal: make(chan struct{}, 1)}
}

// put records doc as k's latest document. It reports false, dropping doc,
// if the buffer is full of other keys.
func (b *changeBuffer) put(k kvKey, doc []byte) bool {
	b.mu.Lock()
	_, ok := b.pending[k]
	if !ok && len(b.pending) >= b.max {
		b.mu.Unlock()
		return false
	}
	b.pending[k] = doc
	b.mu.Unlock()
	b.poke()
	return true
}

// restore puts back doc for k, taken but not published, unless a newer
// document has arrived since.
func (b *changeBuffer) restore(k kvKey, doc []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, newer := b.pending[k]; !newer {
		b.pending[k] = doc
	}
}

// take returns and forgets every pending change.
func (b *changeBuffer) take() map[kvKey][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	taken := b.pending
	b.pending = make(map[kvKey][]byte)
	return taken
}

// poke wakes the publisher.
func (b *changeBuffer) poke() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}
