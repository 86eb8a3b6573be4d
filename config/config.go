// Package config defines the configuration of an edged node and how it is
// assembled: built-in defaults, then one YAML file (Load), then EDGED_*
// environment variables (Config.ApplyEnv); the command line applies its
// flags last and calls Config.Validate before anything starts.
//
// The YAML layout mirrors the Config struct: a section per part of the node,
// each a struct with its own Validate, plus a few top-level fields. A new
// section is a new struct field with a snake_case yaml tag, a default in
// Default, a documented entry in configs/edged.yaml (a test fails until it
// is there) and a line in Config.Validate; its environment variables come
// for free.
package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/localmqtt"
	"github.com/edged-dev/edged/sensors"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Config is the whole configuration of a node.
type Config struct {
	// Node identifies the node and says where it keeps its data.
	Node NodeConfig `yaml:"node"`

	// HTTP configures the local HTTP API.
	HTTP HTTPConfig `yaml:"http"`

	// Log configures the log written to standard error.
	Log LogConfig `yaml:"log"`

	// Store configures the durable store in node.data_dir.
	Store StoreConfig `yaml:"store"`

	// Readings configures how sensor readings are kept.
	Readings ReadingsConfig `yaml:"readings"`

	// MQTT configures the local MQTT interface.
	MQTT localmqtt.Config `yaml:"mqtt"`

	// P2P configures replication with peers over libp2p.
	P2P P2PConfig `yaml:"p2p"`

	// Cloud configures cloud sync over MQTT (the uplink, and the
	// aggregator's side).
	Cloud CloudConfig `yaml:"cloud"`

	// Shedding configures load shedding: admission control by priority
	// class.
	Shedding SheddingConfig `yaml:"shedding"`

	// Namespaces gives namespaces a scope other than "fleet" (replicated
	// to peers and the cloud): "cloud" (the cloud only) or "local" (never
	// leaves the node). Peers should agree on it.
	Namespaces map[string]string `yaml:"namespaces"`

	// Sensors lists the sensor adapters the node polls.
	Sensors sensors.Config `yaml:"sensors"`

	// ShutdownTimeout bounds a graceful shutdown: after a stop signal the
	// node has this long to finish in-flight work before it closes what is
	// left and exits. Must be positive.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// NodeConfig identifies a node and says where it keeps its data.
type NodeConfig struct {
	// Name is the human-readable name of the node, used in logs and shown
	// to peers; it is not its replica identity. At most 63 ASCII letters,
	// digits, '.', '_' or '-', starting with a letter or digit. Empty means
	// the host name.
	Name string `yaml:"name"`

	// Fleet names the fleet the node belongs to, with the same rules as
	// Name. Peers only sync within a fleet: messages from a node of
	// another fleet (or none) are dropped. It is a label, not a secret:
	// keep strangers out with p2p.fleet_key_file or p2p.allow. Empty means
	// no fleet.
	Fleet string `yaml:"fleet"`

	// DataDir is the directory that holds the node's durable state. It is
	// created, with its parents, if missing. Must not be empty.
	DataDir string `yaml:"data_dir"`
}

// HTTPConfig configures the local HTTP API.
type HTTPConfig struct {
	// Addr is the host:port the HTTP API listens on. Port 0 picks a free
	// port. The default listens on loopback only.
	Addr string `yaml:"addr"`

	// TokenFile names a file holding the bearer token that every request
	// but /healthz and /readyz must carry (Authorization: Bearer TOKEN).
	// Required when Addr is not a loopback address; empty means no token.
	TokenFile string `yaml:"token_file"`

	// TLSCertFile and TLSKeyFile, when both set, serve HTTPS with this
	// PEM certificate (chain) and key. Empty means plain HTTP.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`

	// MaxConnections bounds the open client connections; more wait in
	// the kernel's accept queue. Each costs memory (buffers, a
	// goroutine), so the bound keeps a burst of clients within a small
	// device's memory. From 1 to 65536.
	MaxConnections int `yaml:"max_connections"`

	// Pprof serves Go's profiler (net/http/pprof) at /debug/pprof/, with
	// the token if one is set, for troubleshooting. Off by default: a
	// profile or trace costs CPU while it runs, and shows the process's
	// internals to whoever may call the API.
	Pprof bool `yaml:"pprof"`
}

// P2PConfig configures replication with peers over libp2p.
type P2PConfig struct {
	// Addr is the libp2p multiaddr to listen on, such as
	// /ip4/0.0.0.0/tcp/4001 (port 0 picks one). Empty turns replication
	// off. On any address but a loopback one, FleetKeyFile or Allow is
	// required.
	Addr string `yaml:"addr"`

	// Peers are static peers: /ip4/HOST/tcp/PORT/p2p/PEER-ID (their
	// addresses and peer IDs, as their logs print them at start).
	Peers []string `yaml:"peers"`

	// FleetKeyFile names a file holding the fleet's key, 64 hex digits:
	// only nodes with the same key can connect. Generate one with
	// head -c 32 /dev/urandom | xxd -p -c 64.
	FleetKeyFile string `yaml:"fleet_key_file"`

	// Allow, when not empty, lists the only peer IDs this node talks to.
	Allow []string `yaml:"allow"`

	// Tick is the period of the replication engine's clock; a sync round
	// with each peer starts every four ticks or so. Must be positive.
	Tick time.Duration `yaml:"tick"`

	// QUIC adds a QUIC listener (UDP, same port number) to a TCP addr
	// when no fleet key is set; libp2p private networks are TCP only.
	QUIC bool `yaml:"quic"`

	// MDNS advertises the node and finds peers of its fleet on the LAN
	// (mDNS service _edged._tcp). Turn it off for nodes that must not
	// announce themselves.
	MDNS bool `yaml:"mdns"`

	// MDNSInterfaces are the interfaces mDNS uses; empty means every one
	// that is up and multicast-capable (not loopback).
	MDNSInterfaces []string `yaml:"mdns_interfaces"`

	// MDNSIPv4Only keeps mDNS to IPv4: the library's IPv6 has known
	// problems.
	MDNSIPv4Only bool `yaml:"mdns_ipv4_only"`

	// MDNSInterval is how often mDNS browses for peers (±25%). Must be
	// positive.
	MDNSInterval time.Duration `yaml:"mdns_interval"`

	// ForgetAfter is how long a dead or departed peer keeps holding back
	// the collection of the delta log (its watermark). After that the log
	// is collected without it, and it is caught up by state transfer when
	// it returns. Must be positive.
	ForgetAfter time.Duration `yaml:"forget_after"`

	// Relays are fleet nodes with a public address, as
	// /ip4/HOST/tcp/PORT/p2p/PEER-ID, that relay for this node when it is
	// behind a NAT: it reserves a slot on each and advertises its relayed
	// address, so peers can reach it through them. They are synced with
	// like static peers.
	Relays []string `yaml:"relays"`

	// RelayService makes this node a relay (circuit relay v2) for the
	// fleet's nodes behind NATs, and answers their reachability checks
	// (AutoNAT). Only nodes that can connect at all (fleet key, allowlist)
	// can use it. Its addr must be reachable by them.
	RelayService bool `yaml:"relay_service"`

	// Reachability is whether others can dial this node: auto (found out
	// from the relays' reachability checks), private (behind a NAT: use
	// the relays at once) or public. A relay service is public unless set
	// to private.
	Reachability string `yaml:"reachability"`

	// HolePunching turns a relayed connection into a direct one through
	// both NATs where they allow it (DCUtR). The relay carries the sync
	// when they do not.
	HolePunching bool `yaml:"hole_punching"`

	// HolePunchRetry is how long a peer may stay reachable only through a
	// relay before this node reconnects to it through the relay, which
	// makes the peer try hole punching again; the wait doubles after each
	// try, up to an hour. libp2p punches once per relayed connection. 0
	// turns the retries off. Must not be negative.
	HolePunchRetry time.Duration `yaml:"hole_punch_retry"`
}

// Reachability values of P2PConfig.
const (
	ReachabilityAuto    = "auto"
	ReachabilityPrivate = "private"
	ReachabilityPublic  = "public"
)

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c P2PConfig) Validate() error {
	var errs []error
	if c.Addr != "" {
		a, err := ma.NewMultiaddr(c.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("addr: %q is not a multiaddr such as /ip4/0.0.0.0/tcp/4001: %w", c.Addr, err))
		} else if ip, err := manet.ToIP(a); err == nil && !ip.IsLoopback() && c.FleetKeyFile == "" && len(c.Allow) == 0 {
			errs = append(errs, fmt.Errorf("fleet_key_file: required (or allow) when addr %q is not a loopback address: any host could join", c.Addr))
		}
	} else if len(c.Peers) > 0 {
		errs = append(errs, errors.New("addr: required to sync with peers"))
	}
	for i, p := range c.Peers {
		if _, err := peer.AddrInfoFromString(p); err != nil {
			errs = append(errs, fmt.Errorf("peers[%d]: %q: want /ip4/HOST/tcp/PORT/p2p/PEER-ID (%v)", i, p, err))
		}
	}
	for i, id := range c.Allow {
		if _, err := peer.Decode(id); err != nil {
			errs = append(errs, fmt.Errorf("allow[%d]: %q is not a peer ID", i, id))
		}
	}
	for i, r := range c.Relays {
		if _, err := peer.AddrInfoFromString(r); err != nil {
			errs = append(errs, fmt.Errorf("relays[%d]: %q: want /ip4/HOST/tcp/PORT/p2p/PEER-ID (%v)", i, r, err))
		}
	}
	if c.Addr == "" && (len(c.Relays) > 0 || c.RelayService) {
		errs = append(errs, errors.New("addr: required to use relays or to be one"))
	}
	switch c.Reachability {
	case ReachabilityAuto, ReachabilityPrivate, ReachabilityPublic:
	default:
		errs = append(errs, fmt.Errorf("reachability: %q is not auto, private or public", c.Reachability))
	}
	if c.MDNSInterval <= 0 {
		errs = append(errs, fmt.Errorf("mdns_interval: must be positive (got %s)", c.MDNSInterval))
	}
	if c.ForgetAfter <= 0 {
		errs = append(errs, fmt.Errorf("forget_after: must be positive (got %s)", c.ForgetAfter))
	}
	if c.HolePunchRetry < 0 {
		errs = append(errs, fmt.Errorf("hole_punch_retry: must not be negative (got %s)", c.HolePunchRetry))
	}
	if c.Tick <= 0 {
		errs = append(errs, fmt.Errorf("tick: must be positive (got %s)", c.Tick))
	}
	return errors.Join(errs...)
}

func validScope(s string) bool { return s == "fleet" || s == "cloud" || s == "local" }

// validateNamespaces reports each namespace whose name or scope is wrong.
func validateNamespaces(ns map[string]string) []error {
	names := make([]string, 0, len(ns))
	for n := range ns {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		if !validNamespace(n) {
			errs = append(errs, fmt.Errorf("namespaces.%s: %s", n, namespaceRule))
		}
		if !validScope(ns[n]) {
			errs = append(errs, fmt.Errorf("namespaces.%s: scope must be fleet, cloud or local (got %q)", n, ns[n]))
		}
	}
	return errs
}

// namespaceRule says what validNamespace takes.
const namespaceRule = "not a namespace (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)"

// validNamespace mirrors kv.ValidateNS (config does not import the key
// space).
func validNamespace(ns string) bool {
	if ns == "" || len(ns) > 63 {
		return false
	}
	for i, c := range []byte(ns) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// ReadingsConfig configures how sensor readings are kept.
type ReadingsConfig struct {
	// Retention is how long readings are kept, counted from their time;
	// they are deleted by the hour. Per-minute summaries and latest
	// values are kept apart from this. 0 keeps readings until
	// max_bytes or the store's budget needs the space.
	Retention time.Duration `yaml:"retention"`

	// MaxBytes caps the bytes of stored readings: the oldest hours are
	// deleted beyond it. 0 means no cap of its own.
	MaxBytes int64 `yaml:"max_bytes"`

	// SummaryRetention is how long per-minute summaries are kept,
	// counted from their minute. Their removal replicates, so peers
	// should agree on it. 0 keeps them forever.
	SummaryRetention time.Duration `yaml:"summary_retention"`

	// Scope is where raw readings go: "fleet" (peers and the cloud),
	// "cloud" (the cloud only: peers get the per-minute summaries and
	// latest values, not every reading) or "local".
	Scope string `yaml:"scope"`

	// TrustClock turns off the detection of an unsynchronised clock
	// (a board without RTC before NTP has set the time): readings the
	// node stamps are then never flagged clock_unsynced.
	TrustClock bool `yaml:"trust_clock"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c ReadingsConfig) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention: must not be negative (got %s)", c.Retention))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: must not be negative (got %d)", c.MaxBytes))
	}
	if !validScope(c.Scope) {
		errs = append(errs, fmt.Errorf("scope: must be fleet, cloud or local (got %q)", c.Scope))
	}
	if c.SummaryRetention < 0 {
		errs = append(errs, fmt.Errorf("summary_retention: must not be negative (got %s)", c.SummaryRetention))
	}
	return errors.Join(errs...)
}

// StoreConfig configures the durable store.
type StoreConfig struct {
	// Profile sizes the storage engine's memory: "low-memory" for devices
	// with 1 GiB of RAM or less, "standard" for 2 GiB or more.
	Profile string `yaml:"profile"`

	// Durability is "fsync" (every acknowledged write survives a power
	// cut) or "none" (survives a crash of edged, not of the machine; for
	// tests and throwaway data).
	Durability string `yaml:"durability"`

	// BudgetBytes caps the size of the data directory. At the cap, delta
	// log entries are dropped first (peers catch up by state transfer) and
	// then writes are refused; key state is never evicted. 0 means no cap.
	BudgetBytes int64 `yaml:"budget_bytes"`

	// MinFreeBytes is the free disk space below which writes are refused,
	// so the disk never fills under the storage engine. 0 means the
	// profile's default (88 MiB for low-memory, 400 MiB for standard).
	MinFreeBytes int64 `yaml:"min_free_bytes"`

	// GCInterval is how often acknowledged log entries and the value log
	// are garbage-collected. Must be positive.
	GCInterval time.Duration `yaml:"gc_interval"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c StoreConfig) Validate() error {
	var errs []error
	if c.Profile != "low-memory" && c.Profile != "standard" {
		errs = append(errs, fmt.Errorf("profile: must be low-memory or standard (got %q)", c.Profile))
	}
	if c.Durability != "fsync" && c.Durability != "none" {
		errs = append(errs, fmt.Errorf("durability: must be fsync or none (got %q)", c.Durability))
	}
	if c.BudgetBytes < 0 {
		errs = append(errs, fmt.Errorf("budget_bytes: must not be negative (got %d)", c.BudgetBytes))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("min_free_bytes: must not be negative (got %d)", c.MinFreeBytes))
	}
	if c.GCInterval <= 0 {
		errs = append(errs, fmt.Errorf("gc_interval: must be positive (got %s)", c.GCInterval))
	}
	return errors.Join(errs...)
}

// LogConfig configures the log written to standard error.
type LogConfig struct {
	// Level is the minimum level logged: "debug", "info", "warn" or
	// "error".
	Level string `yaml:"level"`

	// Format is "text" (key=value pairs, for people) or "json" (one object
	// per line, for log collectors).
	Format string `yaml:"format"`
}

// Default returns the built-in configuration: a node named after its host,
// with data in ./data and its HTTP API on 127.0.0.1:8080.
func Default() Config {
	return Config{
		Node: NodeConfig{
			DataDir: "./data",
		},
		HTTP: HTTPConfig{
			Addr:           "127.0.0.1:8080",
			MaxConnections: 512,
		},
		Log: LogConfig{
			Level:  "info",
			Format: "text",
		},
		Store: StoreConfig{
			Profile:    "low-memory",
			Durability: "fsync",
			GCInterval: 5 * time.Minute,
		},
		Readings: ReadingsConfig{
			Retention:        7 * 24 * time.Hour,
			SummaryRetention: 30 * 24 * time.Hour,
			Scope:            "cloud",
		},
		MQTT: localmqtt.DefaultConfig(),
		P2P: P2PConfig{Tick: time.Second, QUIC: true, ForgetAfter: 24 * time.Hour, MDNS: true, MDNSIPv4Only: true, MDNSInterval: 30 * time.Second,
			Reachability: ReachabilityAuto, HolePunching: true, HolePunchRetry: time.Minute},
		Cloud:           defaultCloud(),
		Shedding:        defaultShedding(),
		Sensors:         sensors.DefaultConfig(),
		ShutdownTimeout: 10 * time.Second,
	}
}

// Validate reports every problem in c, joined with errors.Join, each
// prefixed with the YAML path of its field: `log.level: must be one of
// debug, info, warn, error (got "verbose")`. It returns nil if c is valid.
func (c Config) Validate() error {
	errs := slices.Concat(
		invalid.PrefixEach("node.", c.Node.Validate()),
		invalid.PrefixEach("http.", c.HTTP.Validate()),
		invalid.PrefixEach("log.", c.Log.Validate()),
		invalid.PrefixEach("store.", c.Store.Validate()),
		invalid.PrefixEach("readings.", c.Readings.Validate()),
		invalid.PrefixEach("mqtt.", c.MQTT.Validate()),
		invalid.PrefixEach("p2p.", c.P2P.Validate()),
		invalid.PrefixEach("cloud.", c.Cloud.Validate()),
		invalid.PrefixEach("shedding.", c.Shedding.Validate()),
		validateNamespaces(c.Namespaces),
		invalid.PrefixEach("sensors.", c.Sensors.Validate()),
	)
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_timeout: must be positive (got %s)", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c NodeConfig) Validate() error {
	var errs []error
	if c.Name != "" && !validName(c.Name) {
		errs = append(errs, fmt.Errorf("name: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Name))
	}
	if c.Fleet != "" && !validName(c.Fleet) {
		errs = append(errs, fmt.Errorf("fleet: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Fleet))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	return errors.Join(errs...)
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c HTTPConfig) Validate() error {
	var errs []error
	// Without a host and port, whether token_file is required is unknown;
	// the other fields are still checked.
	if host, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: must be host:port (%w)", err))
	} else {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("addr: port must be a number from 0 to 65535 (got %q)", port))
		}
		if !IsLoopback(host) && c.TokenFile == "" {
			errs = append(errs, fmt.Errorf("token_file: required when addr %q is not a loopback address: anyone on the network could write", c.Addr))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls_cert_file, tls_key_file: set both or neither"))
	}
	if c.MaxConnections < 1 || c.MaxConnections > 65536 {
		errs = append(errs, fmt.Errorf("max_connections: must be from 1 to 65536 (got %d)", c.MaxConnections))
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether host (a name or an address) only reaches
// this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c LogConfig) Validate() error {
	var errs []error
	if levels := []string{"debug", "info", "warn", "error"}; !slices.Contains(levels, c.Level) {
		errs = append(errs, fmt.Errorf("level: must be one of %s (got %q)", strings.Join(levels, ", "), c.Level))
	}
	if formats := []string{"text", "json"}; !slices.Contains(formats, c.Format) {
		errs = append(errs, fmt.Errorf("format: must be one of %s (got %q)", strings.Join(formats, ", "), c.Format))
	}
	return errors.Join(errs...)
}

// validName reports whether name is a valid NodeConfig.Name. The rule keeps
// names safe in DNS labels (mDNS), MQTT topic levels and log lines.
func validName(name string) bool {
	if len(name) > 63 {
		return false
	}
	for i, r := range name {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}
