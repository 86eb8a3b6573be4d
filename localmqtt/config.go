package localmqtt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Modes of the MQTT interface, the values of Config.Mode.
const (
	ModeEmbedded = "embedded"
	ModeClient   = "client"
	ModeOff      = "off"
)

// Config configures the node's local MQTT interface.
type Config struct {
	// Mode is "embedded" (the node runs its own broker on Addr), "client"
	// (the node connects to the gateway's broker at Broker) or "off".
	Mode string `yaml:"mode"`

	// Addr is the host:port the embedded broker listens on (MQTT over TCP).
	// Port 0 picks a free port. On any address but a loopback one (127.0.0.0/8,
	// ::1, localhost), Users must not be empty. Embedded mode only.
	Addr string `yaml:"addr"`

	// Users are the accounts the embedded broker admits. Empty means any
	// client is admitted without credentials, with access to every topic;
	// Validate allows that on a loopback Addr only. Non-empty means every
	// client must log in as one of them. Embedded mode only.
	Users []User `yaml:"users"`

	// Broker is the URL of the gateway's broker: tcp://host:1883 (also
	// mqtt://), ssl://host:8883 (also tls://, mqtts://), ws://host/path or
	// wss://host/path. Client mode only.
	Broker string `yaml:"broker"`

	// Username is the user name the node logs in to Broker with. Empty means
	// no credentials. Client mode only.
	Username string `yaml:"username"`

	// PasswordFile is the path of a file holding the password for Username,
	// read once at start; one trailing newline is ignored. Empty means no
	// password. Client mode only.
	PasswordFile string `yaml:"password_file"`

	// CAFile is the path of a PEM file with the certificate authorities that
	// sign Broker's TLS certificate, for ssl:// and wss:// brokers with a
	// private CA. Empty means the system's roots. Client mode only.
	CAFile string `yaml:"ca_file"`

	// ReconnectMaxInterval bounds the wait between attempts to connect to
	// Broker; waits start at 1s and double up to it. Must be positive in
	// client mode.
	ReconnectMaxInterval time.Duration `yaml:"reconnect_max_interval"`

	// TopicPrefix is the first levels of every topic the node serves, e.g.
	// "site1/edged/pi-3". Empty means "edged/<node name>". No wildcards, no
	// empty levels, no leading '/' or '$'.
	TopicPrefix string `yaml:"topic_prefix"`

	// MaxPayloadBytes is the largest payload the node accepts; larger ones
	// are refused and reported. The embedded broker disconnects clients that
	// send a packet larger than MaxPayloadBytes + MaxTopicBytes + 4 KiB. Must
	// be positive.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`

	// MaxTopicBytes is the longest topic the node accepts as input or
	// publishes a key's document on. From 64 to 65535.
	MaxTopicBytes int `yaml:"max_topic_bytes"`

	// Workers is how many Backend calls may run at once. Must be positive.
	Workers int `yaml:"workers"`

	// QueueLength is how many inputs may wait for a worker, split evenly
	// among the workers (rounded up). Inputs for one sensor or one key
	// always go to the same worker, so they are handled in the order they
	// arrived; inputs for different ones may be handled in any order. A
	// QoS 0 input that finds its worker's queue full is dropped and
	// reported; a QoS 1 or 2 input waits, unacknowledged (see the package
	// doc). 0 means none wait.
	QueueLength int `yaml:"queue_length"`

	// BackendTimeout bounds each Backend call, and the time the node takes
	// at shutdown to drain its queue into the Backend. Must be positive.
	BackendTimeout time.Duration `yaml:"backend_timeout"`
}

// User is an account of the embedded broker.
type User struct {
	// Username is the MQTT user name. Must not be empty; unique.
	Username string `yaml:"username"`

	// PasswordFile is the path of a file holding the user's password in
	// plain text, read once at start; one trailing newline is ignored. Keep
	// it readable by edged only. Must not be empty.
	PasswordFile string `yaml:"password_file"`

	// Read lists the topic filters the user may subscribe to and receive
	// messages on; wildcards + and # allowed.
	Read []string `yaml:"read"`

	// Write lists the topic filters the user may publish to (and use as the
	// topic of a will message or a Response Topic). If both Read and Write
	// are empty, the user may read and write everything under the topic
	// prefix; if only one is set, the other grants nothing. A filter
	// guards topics, not the sensors a payload names: a reading on
	// <p>/readings/dev-1 is stored under the sensor its JSON "sensor" or
	// line protocol measurement names, if any (the topic's is the
	// default), and is classed for shedding by the topic's. So a filter
	// does not stop a device from writing readings of other sensors.
	Write []string `yaml:"write"`
}

// DefaultConfig returns the built-in configuration: an embedded broker on
// 127.0.0.1:1883 admitting anonymous local clients, topics under
// "edged/<node name>", payloads up to 256 KiB.
func DefaultConfig() Config {
	return Config{
		Mode:                 ModeEmbedded,
		Addr:                 "127.0.0.1:1883",
		ReconnectMaxInterval: 30 * time.Second,
		MaxPayloadBytes:      256 << 10,
		MaxTopicBytes:        512,
		Workers:              4,
		QueueLength:          256,
		BackendTimeout:       10 * time.Second,
	}
}

// maxPacketOverhead is what a packet may carry besides its topic and
// payload: fixed header, packet id and MQTT 5 properties. 4 KiB leaves room
// for a Response Topic, Correlation Data and a few user properties.
const maxPacketOverhead = 4 << 10

// maxPayloadLimit keeps MaxPayloadBytes + MaxTopicBytes + overhead below
// MQTT's largest packet (256 MiB).
const maxPayloadLimit = 256<<20 - 65535 - maxPacketOverhead - 1

// Validate reports every problem in c, joined with errors.Join, each
// prefixed with its field's YAML name: `users[0].password_file: must not be
// empty`. Fields of modes other than c.Mode are not checked.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeEmbedded:
		errs = append(errs, c.validateEmbedded()...)
	case ModeClient:
		errs = append(errs, c.validateClient()...)
	case ModeOff:
		return nil
	default:
		errs = append(errs, fmt.Errorf("mode: must be one of %s, %s, %s (got %q)", ModeEmbedded, ModeClient, ModeOff, c.Mode))
	}
	if c.TopicPrefix != "" {
		if err := validPrefix(c.TopicPrefix); err != nil {
			errs = append(errs, fmt.Errorf("topic_prefix: %w (got %q)", err, c.TopicPrefix))
		}
	}
	if c.MaxPayloadBytes <= 0 || c.MaxPayloadBytes > maxPayloadLimit {
		errs = append(errs, fmt.Errorf("max_payload_bytes: must be from 1 to %d (got %d)", maxPayloadLimit, c.MaxPayloadBytes))
	}
	if c.MaxTopicBytes < 64 || c.MaxTopicBytes > 65535 {
		errs = append(errs, fmt.Errorf("max_topic_bytes: must be from 64 to 65535 (got %d)", c.MaxTopicBytes))
	}
	if c.Workers <= 0 {
		errs = append(errs, fmt.Errorf("workers: must be positive (got %d)", c.Workers))
	}
	if c.QueueLength < 0 {
		errs = append(errs, fmt.Errorf("queue_length: must not be negative (got %d)", c.QueueLength))
	}
	if c.BackendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("backend_timeout: must be positive (got %s)", c.BackendTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) validateEmbedded() []error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("addr: must be host:port (%w)", err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("addr: port must be a number from 0 to 65535 (got %q)", port))
	} else if len(c.Users) == 0 && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("users: must list at least one user when addr is not a loopback address (got addr %q); anonymous clients are admitted on loopback only", c.Addr))
	}
	seen := make(map[string]int, len(c.Users))
	for i, u := range c.Users {
		for _, err := range u.validate() {
			errs = append(errs, fmt.Errorf("users[%d].%w", i, err))
		}
		if j, dup := seen[u.Username]; dup && u.Username != "" {
			errs = append(errs, fmt.Errorf("users[%d].username: %q is also users[%d]", i, u.Username, j))
		} else {
			seen[u.Username] = i
		}
	}
	return errs
}

func (u User) validate() []error {
	var errs []error
	if u.Username == "" {
		errs = append(errs, errors.New("username: must not be empty"))
	}
	if u.PasswordFile == "" {
		errs = append(errs, errors.New("password_file: must not be empty"))
	}
	for i, f := range u.Read {
		if !validFilter(f) {
			errs = append(errs, fmt.Errorf("read[%d]: not a valid topic filter (got %q)", i, f))
		}
	}
	for i, f := range u.Write {
		if !validFilter(f) {
			errs = append(errs, fmt.Errorf("write[%d]: not a valid topic filter (got %q)", i, f))
		}
	}
	return errs
}

// brokerSchemes are the URL schemes paho dials for Config.Broker.
var brokerSchemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}

func (c Config) validateClient() []error {
	var errs []error
	if u, err := url.Parse(c.Broker); err != nil || c.Broker == "" {
		errs = append(errs, fmt.Errorf("broker: must be a URL such as tcp://127.0.0.1:1883 (got %q)", c.Broker))
	} else if !slices.Contains(brokerSchemes, u.Scheme) {
		errs = append(errs, fmt.Errorf("broker: scheme must be one of %s (got %q)", strings.Join(brokerSchemes, ", "), u.Scheme))
	} else if u.Host == "" {
		errs = append(errs, fmt.Errorf("broker: must name a host (got %q)", c.Broker))
	}
	if c.PasswordFile != "" && c.Username == "" {
		errs = append(errs, errors.New("username: must not be empty when password_file is set"))
	}
	if c.ReconnectMaxInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconnect_max_interval: must be positive (got %s)", c.ReconnectMaxInterval))
	}
	return errs
}

// isLoopback reports whether host, from a host:port, is a loopback address
// or "localhost". Any other name counts as not loopback: it is not resolved.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
