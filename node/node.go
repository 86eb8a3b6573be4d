// Package node assembles an edged node from its configuration and runs it:
// it is the composition root, the one place that decides which parts start,
// in which order, and how they stop.
//
// Today a node loads its identity, opens its store, runs the engine (the
// write path) and serves the local HTTP API (GET /healthz, GET /v1/backup).
// Run owns every part it starts and stops them, in reverse order, when its
// context is cancelled, within Config.ShutdownTimeout.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/edged-dev/edged/buildinfo"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/store"
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
	}
}

// readHeaderTimeout bounds how long a client may take to send request
// headers, so idle or slow connections cannot pin the server.
const readHeaderTimeout = 10 * time.Second

// Node is one edged node. Create it with New and start it with Run.
type Node struct {
	cfg   config.Config
	name  string
	log   *slog.Logger
	ready chan struct{}
	addr  net.Addr // set once, before ready is closed
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

// Ready returns a channel that is closed once Run listens for HTTP requests.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Addr returns the address the HTTP API listens on, with the actual port
// when http.addr asked for port 0. Call it only after Ready is closed.
func (n *Node) Addr() net.Addr { return n.addr }

// Run starts the node and blocks until ctx is cancelled or a part fails.
// On cancellation it shuts down gracefully, waiting at most
// cfg.ShutdownTimeout for in-flight requests, and returns nil. It returns an
// error if the node cannot start (the data directory cannot be created, the
// HTTP address cannot be bound) or stops uncleanly. Run must be called at
// most once.
func (n *Node) Run(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.Node.DataDir, 0o750); err != nil {
		return fmt.Errorf("node: node.data_dir: %w", err)
	}
	id, err := identity.Load(n.cfg.Node.DataDir)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	db, err := store.Open(StoreOptions(n.cfg, n.log))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			n.log.Error("store close failed", "err", err)
		}
	}()
	eng := engine.New(db, id.Replica, engine.Config{Logger: n.log})
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(engCtx) }()
	// Stopped after the HTTP server, so in-flight requests can still write.
	defer func() {
		stopEngine()
		<-engDone
	}()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", n.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("node: http.addr: %w", err)
	}
	srv := &http.Server{
		Handler:           routes(db),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	n.addr = ln.Addr()
	close(n.ready)
	n.log.Info("node started",
		"name", n.name,
		"addr", n.addr.String(),
		"data_dir", n.cfg.Node.DataDir,
		"peer_id", id.PeerID.String(),
		"replica", id.Replica.String(),
		"version", buildinfo.Version)

	select {
	case err := <-served:
		return fmt.Errorf("node: http server: %w", err)
	case <-ctx.Done():
	}

	n.log.Info("node stopping", "timeout", n.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Out of time: drop the connections that are still busy.
		return errors.Join(
			fmt.Errorf("node: http server did not stop within shutdown_timeout %s: %w", n.cfg.ShutdownTimeout, err),
			srv.Close())
	}
	<-served // http.ErrServerClosed, now that Shutdown has returned
	n.log.Info("node stopped")
	return nil
}
