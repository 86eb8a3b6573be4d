// Package node assembles an edged node from its configuration and runs it:
// it is the composition root, the one place that decides which parts start,
// in which order, and how they stop.
//
// A node loads its identity, opens its store, runs the engine (the write
// path), serves the local HTTP API (package api) and the local MQTT
// interface (package localmqtt), and polls its sensors (package sensors).
// Run owns every part it starts and stops them, in reverse order, when its
// context is cancelled, within Config.ShutdownTimeout.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/aggregator"
	"github.com/edged-dev/edged/api"
	"github.com/edged-dev/edged/buildinfo"
	"github.com/edged-dev/edged/clocksync"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/discovery"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/kv"
	"github.com/edged-dev/edged/localmqtt"
	"github.com/edged-dev/edged/p2p"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/sensors"
	"github.com/edged-dev/edged/series"
	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/uplink"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"
)

// StoreOptions returns the store options that cfg selects.
func StoreOptions(cfg config.Config, log *slog.Logger) store.Options {
	return store.Options{
		Dir:          cfg.Node.DataDir,
		Profile:      store.Profile(cfg.Store.Profile),
		Durability:   store.Durability(cfg.Store.Durability),
		Budget:       cfg.Store.BudgetBytes,
		MinFreeBytes: cfg.Store.MinFreeBytes,
		GCInterval:   cfg.Store.GCInterval,
		Logger:       log,

		ReadingsRetention: cfg.Readings.Retention,
		ReadingsMaxBytes:  cfg.Readings.MaxBytes,
	}
}

// readHeaderTimeout bounds how long a client may take to send request
// headers, so idle or slow connections cannot pin the server.
const readHeaderTimeout = 10 * time.Second

// idleTimeout closes keep-alive connections idle that long, which frees
// their buffers; maxHeaderBytes bounds a request's headers.
const (
	idleTimeout    = time.Minute
	maxHeaderBytes = 64 << 10
)

// Node is one edged node. Create it with New and start it with Run.
type Node struct {
	cfg       config.Config
	aggregate bool // edged aggregate: the aggregator, not an edge node
	name      string
	log       *slog.Logger
	ready     chan struct{}
	addr      net.Addr // set once, before ready is closed
	mqttAddr  net.Addr // likewise; nil unless MQTT is embedded
	p2pAddrs  []string // likewise; nil unless p2p is on
	// commitFault is the store's CommitFault; tests set it.
	commitFault func() error
}

// New returns a node for cfg that logs to logger. It validates cfg and
// resolves an empty node name to the host name; it starts nothing.
func New(cfg config.Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node: invalid configuration: %w", err)
	}
	name := cfg.Node.Name
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node: node.name is empty and the host name is unknown: %w", err)
		}
		name = host
	}
	return &Node{cfg: cfg, name: name, log: logger, ready: make(chan struct{})}, nil
}

// NewAggregator returns the cloud aggregator for cfg (`edged aggregate`):
// a node that merges the batches of the fleets' nodes from cfg.Cloud.URL
// into its store and serves the same HTTP API over the merged state, plus
// GET /v1/nodes. It runs no local MQTT, no sensors and no peer sync.
func NewAggregator(cfg config.Config, logger *slog.Logger) (*Node, error) {
	if cfg.Cloud.URL == "" {
		return nil, errors.New("node: the aggregator needs cloud.url (--cloud-url)")
	}
	cfg.MQTT.Mode = localmqtt.ModeOff
	cfg.P2P.Addr, cfg.P2P.MDNS = "", false
	cfg.Sensors = sensors.Config{}
	n, err := New(cfg, logger)
	if err != nil {
		return nil, err
	}
	n.aggregate = true
	return n, nil
}

// Ready returns a channel that is closed once Run listens for HTTP requests.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// MQTTAddr returns the address of the embedded MQTT broker, or nil. Call
// it only after Ready is closed.
func (n *Node) MQTTAddr() net.Addr { return n.mqttAddr }

// P2PAddrs returns the multiaddrs (with /p2p/<peer ID>) peers reach this
// node at, or nil. Call it only after Ready is closed.
func (n *Node) P2PAddrs() []string { return n.p2pAddrs }

// Addr returns the address the HTTP API listens on, with the actual port
// when http.addr asked for port 0. Call it only after Ready is closed.
func (n *Node) Addr() net.Addr { return n.addr }

// Run starts the node and blocks until ctx is cancelled or a part fails.
// On cancellation it shuts down gracefully, waiting at most
// cfg.ShutdownTimeout for in-flight requests, and returns nil (or the
// store's failure, should the store fail committing them). It returns an
// error if the node cannot start (the data directory cannot be created, the
// HTTP address cannot be bound) or stops uncleanly. Run must be called at
// most once.
func (n *Node) Run(ctx context.Context) (err error) {
	if err := os.MkdirAll(n.cfg.Node.DataDir, 0o750); err != nil {
		return fmt.Errorf("node: node.data_dir: %w", err)
	}
	id, err := identity.Load(n.cfg.Node.DataDir)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	token, err := readSecret(n.cfg.HTTP.TokenFile)
	if err != nil {
		return fmt.Errorf("node: http.token_file: %w", err)
	}
	so := StoreOptions(n.cfg, n.log)
	so.CommitFault = n.commitFault
	db, err := store.Open(so)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			n.log.Error("store close failed", "err", err)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), storeCollector{db})

	// The shedding governor, set up before the parts that consult it.
	var gov *shedding.Governor // nil when shedding is off
	if n.cfg.Shedding.Enabled {
		gov = n.cfg.Shedding.Governor()
	}
	busy := func() bool { return gov != nil && gov.Busy() }
	hub := kv.NewHub()
	var peers *p2p.Node            // set before the engine runs, when p2p is on
	var up *uplink.Uplink          // likewise, when the uplink is on
	var agg *aggregator.Aggregator // likewise, for edged aggregate
	eng := engine.New(db, id.Replica, engine.Config{Logger: n.log, OnCommit: func(names []string) {
		hub.Notify(names)
		if peers != nil {
			peers.Notify()
		}
		if up != nil {
			up.Notify()
		}
		if agg != nil {
			agg.Notify()
		}
	}})
	switch {
	case n.aggregate:
		agg, err = aggregator.New(aggregator.Config{Broker: n.cfg.Cloud.Broker(), Fleets: n.cfg.Cloud.Fleets, SharedGroup: n.cfg.Cloud.SharedGroup, Queue: aggregatorQueue},
			aggregator.Options{Key: id.Key, Replica: id.Replica, Engine: eng, DB: db, Logger: n.log})
	case n.cfg.Cloud.URL != "":
		up, err = n.uplink(id, db, eng, busy)
	}
	if err != nil {
		return fmt.Errorf("node: cloud: %w", err)
	}
	if n.cfg.P2P.Addr != "" {
		peers, err = p2p.New(p2p.Config{Addr: n.cfg.P2P.Addr, Peers: n.cfg.P2P.Peers, FleetKeyFile: n.cfg.P2P.FleetKeyFile, Allow: n.cfg.P2P.Allow, Tick: n.cfg.P2P.Tick, NoQUIC: !n.cfg.P2P.QUIC, Fleet: n.cfg.Node.Fleet,
			ForgetAfter: n.cfg.P2P.ForgetAfter, Name: n.name, MDNS: mdnsConfig(n.cfg.P2P), Busy: busy,
			Relays: n.cfg.P2P.Relays, RelayService: n.cfg.P2P.RelayService, Reachability: n.cfg.P2P.Reachability, HolePunching: n.cfg.P2P.HolePunching, HolePunchRetry: n.cfg.P2P.HolePunchRetry},
			p2p.Options{Key: id.Key, DB: db, Engine: eng, Scope: scopes(n.cfg), Logger: n.log})
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	// failed takes the errors that stop the node: the engine's (the
	// store failed) and its leaves'.
	failed := make(chan error, 6)
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() {
		err := eng.Run(engCtx)
		if err != nil {
			failed <- fmt.Errorf("node: %w", err)
		}
		engDone <- err
	}()
	// Stopped after everything that writes, so in-flight requests finish.
	// A store that fails as it commits the last of them fails the run.
	defer func() {
		stopEngine()
		if engErr := <-engDone; engErr != nil && err == nil {
			err = fmt.Errorf("node: %w", engErr)
		}
	}()

	var clock series.Clock = clocksync.New(clocksync.Options{Floor: buildinfo.Time()})
	if n.cfg.Readings.TrustClock {
		clock = nil
	}
	ser := series.New(db, eng, clock, nil)
	kvs := kv.New(db, eng)
	var shed *api.Shedding
	if sc := n.cfg.Shedding; gov != nil {
		shed = &api.Shedding{Governor: gov, Default: config.Class(sc.DefaultClass), Readings: config.Class(sc.ReadingsClass),
			Namespaces: map[string]shedding.Class{}, RequestPriority: sc.RequestPriority, CriticalInFlight: sc.MaxConcurrency}
		for ns, c := range sc.Namespaces {
			shed.Namespaces[ns] = config.Class(c)
		}
		reg.MustRegister(sheddingCollector{gov})
	}
	started := time.Now()
	var ready atomic.Bool
	a := api.New(api.Options{
		DB: db, KV: kvs, Series: ser, Hub: hub, Token: token, Shedding: shed, Pprof: n.cfg.HTTP.Pprof,
		Ready:  ready.Load,
		Status: func() any { return n.status(id, db, clock, peers, up, gov, started) },
		Peers: func() any {
			if peers == nil {
				return map[string]p2p.PeerStats{}
			}
			return peers.Stats()
		},
		Nodes: func() any {
			if agg == nil {
				return nil
			}
			return map[string]any{"nodes": agg.Nodes()}
		},
		Names: func() map[string]string {
			names := map[string]string{id.Replica.String(): n.name}
			if agg != nil {
				for _, ni := range agg.Nodes() {
					names[ni.Replica] = ni.Name
				}
			}
			return names
		},
		Registry: reg, Gatherer: reg, Logger: n.log,
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", n.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("node: http.addr: %w", err)
	}
	// Bounded connections bound the memory a burst of clients can take.
	ln = netutil.LimitListener(ln, n.cfg.HTTP.MaxConnections)
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(a.Shutdown)
	served := make(chan error, 1)
	go func() {
		if n.cfg.HTTP.TLSCertFile != "" {
			served <- srv.ServeTLS(ln, n.cfg.HTTP.TLSCertFile, n.cfg.HTTP.TLSKeyFile)
			return
		}
		served <- srv.Serve(ln)
	}()

	// The leaves: local MQTT and the sensor adapters. They stop first.
	leafCtx, stopLeaves := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLeaves()
	var leaves sync.WaitGroup
	mq, err := localmqtt.New(n.cfg.MQTT, n.name, &mqttBackend{kv: kvs, series: ser, hub: hub, now: time.Now, log: n.log}, localmqtt.Options{Logger: n.log, Shed: gov, Class: mqttClass(n.cfg.Shedding)})
	if err != nil {
		srv.Close()
		return fmt.Errorf("node: mqtt: %w", err)
	}
	leaves.Go(func() {
		if err := mq.Run(leafCtx); err != nil {
			failed <- fmt.Errorf("node: mqtt: %w", err)
		}
	})
	leaves.Go(func() { expireSummaries(leafCtx, ser, n.cfg.Readings.SummaryRetention, n.log) })
	if gov != nil {
		leaves.Go(func() { watchLoad(leafCtx, gov, db, n.log) })
	}
	if peers != nil {
		reg.MustRegister(p2pCounters(peers), peerStates{peers})
		leaves.Go(func() {
			if err := peers.Run(leafCtx); err != nil {
				failed <- fmt.Errorf("node: p2p: %w", err)
			}
		})
	}
	if up != nil {
		reg.MustRegister(uplinkCollector{up})
		leaves.Go(func() {
			if err := up.Run(leafCtx); err != nil {
				failed <- fmt.Errorf("node: cloud uplink: %w", err)
			}
		})
	}
	if agg != nil {
		reg.MustRegister(aggregatorCollector{agg})
		leaves.Go(func() {
			if err := agg.Run(leafCtx); err != nil {
				failed <- fmt.Errorf("node: aggregator: %w", err)
			}
		})
	}
	var sensorStats sensors.Stats
	reg.MustRegister(mqttCollector{mq}, sensorCounters(&sensorStats))
	leaves.Go(func() {
		if err := sensors.Run(leafCtx, n.cfg.Sensors, sensorSink(ser), sensors.Options{Logger: n.log, Stats: &sensorStats}); err != nil {
			failed <- fmt.Errorf("node: sensors: %w", err)
		}
	})
	stop := func() {
		stopLeaves()
		leaves.Wait()
	}
	select {
	case <-mq.Ready():
	case err := <-failed:
		stop()
		srv.Close()
		return err
	case <-ctx.Done():
	}

	n.addr = ln.Addr()
	n.mqttAddr = mq.Addr()
	if peers != nil {
		n.p2pAddrs = peers.Addrs()
	}
	ready.Store(true)
	close(n.ready)
	n.log.Info("node started",
		"name", n.name,
		"addr", n.addr.String(),
		"mqtt", n.cfg.MQTT.Mode,
		"p2p", n.p2pAddrs,
		"data_dir", n.cfg.Node.DataDir,
		"peer_id", id.PeerID.String(),
		"replica", id.Replica.String(),
		"version", buildinfo.Version)

	var runErr error
	select {
	case err := <-served:
		runErr = fmt.Errorf("node: http server: %w", err)
	case runErr = <-failed:
	case <-ctx.Done():
	}
	ready.Store(false)

	n.log.Info("node stopping", "timeout", n.cfg.ShutdownTimeout.String())
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Out of time: drop the connections that are still busy.
		return errors.Join(runErr,
			fmt.Errorf("node: http server did not stop within shutdown_timeout %s: %w", n.cfg.ShutdownTimeout, err),
			srv.Close())
	}
	if runErr == nil {
		<-served // http.ErrServerClosed, now that Shutdown has returned
	}
	n.log.Info("node stopped")
	return runErr
}

// mqttClass returns the class of a local MQTT input: a reading's by its
// sensor, a key write's by its namespace.
func mqttClass(sc config.SheddingConfig) func(reading bool, name string) shedding.Class {
	return func(reading bool, name string) shedding.Class {
		switch {
		case reading && sc.Sensors[name] != "":
			return config.Class(sc.Sensors[name])
		case reading:
			return config.Class(sc.ReadingsClass)
		case sc.Namespaces[name] != "":
			return config.Class(sc.Namespaces[name])
		}
		return config.Class(sc.DefaultClass)
	}
}

// aggregatorQueue bounds the batches waiting to be merged.
const aggregatorQueue = 16

// uplink returns the cloud uplink of the node: its log, withheld the
// names of local scope.
func (n *Node) uplink(id identity.Identity, db *store.DB, eng *engine.Engine, busy func() bool) (*uplink.Uplink, error) {
	c := n.cfg.Cloud
	var pin peer.ID
	if c.AggregatorID != "" {
		var err error
		if pin, err = peer.Decode(c.AggregatorID); err != nil {
			return nil, fmt.Errorf("aggregator_id: %w", err)
		}
	}
	schedule := make([]uplink.Window, len(c.Schedule))
	for i, w := range c.Schedule {
		var err error
		if schedule[i], err = uplink.ParseWindow(w); err != nil {
			return nil, fmt.Errorf("schedule[%d]: %w", i, err)
		}
	}
	scope := scopes(n.cfg)
	return uplink.New(uplink.Config{Broker: c.Broker(), Fleet: n.cfg.Node.Fleet, Name: n.name, Compress: c.Compress, MaxBatchBytes: c.MaxBatchBytes,
		Window: c.Window, Tick: time.Second, AckTimeout: c.AckTimeout, Aggregator: pin, Version: buildinfo.Version,
		Budget: c.BudgetBytesPerHour, Schedule: schedule, NewestReadingsFirst: c.ReadingsOrder == "newest"},
		uplink.Options{Key: id.Key, Replica: id.Replica, PeerID: id.PeerID, DB: db, Apply: eng.Apply, Logger: n.log,
			Keep: func(name string) bool { return scope(name) != replication.Local }, Busy: busy,
			Bulk: series.IsRawReadings,
			DiskShort: func() bool {
				st := db.Stats()
				return st.Budget > 0 && st.Used() > st.Budget/10*9
			}})
}

// readSecret returns the first line of a secret file; "" for no file.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// expireInterval is how often old summaries are removed.
const expireInterval = time.Hour

// expireSummaries removes the summaries older than retention every
// expireInterval (jittered, the first at a random offset) until ctx is
// done. Zero retention keeps them.
func expireSummaries(ctx context.Context, ser *series.Series, retention time.Duration, log *slog.Logger) {
	if retention <= 0 {
		return
	}
	t := time.NewTimer(rand.N(expireInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := ser.Expire(ctx, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Warn("summary retention failed", "err", err)
		} else if n > 0 {
			log.Info("summary retention", "removed", n)
		}
		t.Reset(expireInterval/2 + rand.N(expireInterval))
	}
}

// scopes returns where each key name's data goes, from cfg: a user key by
// its namespace (fleet unless namespaces says otherwise), raw readings by
// readings.scope, their summaries and latest values to the fleet.
func scopes(cfg config.Config) func(name string) replication.Scope {
	readings, _ := replication.ParseScope(cfg.Readings.Scope)
	byNS := map[string]replication.Scope{}
	for ns, s := range cfg.Namespaces {
		byNS[ns], _ = replication.ParseScope(s)
	}
	return func(name string) replication.Scope {
		ns, _, _ := strings.Cut(name, "/")
		if ns == series.FactsNamespace {
			return readings
		}
		return byNS[ns] // Fleet when absent
	}
}

// mdnsConfig returns the discovery settings, or nil when mDNS is off.
func mdnsConfig(c config.P2PConfig) *discovery.Config {
	if !c.MDNS {
		return nil
	}
	return &discovery.Config{Interfaces: c.MDNSInterfaces, IPv4Only: c.MDNSIPv4Only, Interval: c.MDNSInterval}
}
