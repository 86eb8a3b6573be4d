package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/mqttconn"
	"github.com/edged-dev/edged/uplink"
	"github.com/libp2p/go-libp2p/core/peer"
)

// CloudConfig configures cloud sync over MQTT: a node's uplink to the
// aggregator, and the aggregator's side (`edged aggregate`).
type CloudConfig struct {
	// URL is the cloud broker: tcp://host:1883 (also mqtt://),
	// ssl://host:8883 (also tls://, mqtts://), ws:// or wss://. Empty
	// turns the uplink off; `edged aggregate` needs it.
	URL string `yaml:"url"`

	// Username is the user name to log in to the broker with; empty means
	// none. Use it over TLS only.
	Username string `yaml:"username"`

	// PasswordFile is the path of a file holding the password for
	// Username, read once at start.
	PasswordFile string `yaml:"password_file"`

	// CAFile is a PEM file of the authorities that sign the broker's
	// certificate (CA pinning: only these are trusted). Empty means the
	// system's roots. TLS URLs only.
	CAFile string `yaml:"ca_file"`

	// CertFile and KeyFile are the node's client certificate and key for
	// brokers that authenticate clients by certificate. TLS URLs only.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// ReconnectMaxInterval bounds the wait between connection attempts,
	// which start at 1s and double, with jitter. Must be positive.
	ReconnectMaxInterval time.Duration `yaml:"reconnect_max_interval"`

	// Compress compresses batches with zstd (worth it on metered links;
	// it costs CPU).
	Compress bool `yaml:"compress"`

	// MaxBatchBytes bounds the deltas of one batch (an MQTT message).
	// From 4 KiB to 2 MiB.
	MaxBatchBytes int `yaml:"max_batch_bytes"`

	// Window is how many batches may await the aggregator's ack. From 1
	// to 64.
	Window int `yaml:"window"`

	// AckTimeout is how long batches may await their ack before the node
	// sends again from the last ack. At least 1s.
	AckTimeout time.Duration `yaml:"ack_timeout"`

	// AggregatorID, when set, is the peer ID (`edged id` on the
	// aggregator) of the only aggregator whose acks the node takes: acks
	// are signed, and a forged one could make the node collect its log
	// before the cloud has it.
	AggregatorID string `yaml:"aggregator_id"`

	// BudgetBytesPerHour, when positive, bounds the bytes the uplink
	// publishes per hour, for metered links, with a burst of five
	// minutes' worth (at least max_batch_bytes). While less than half of
	// that burst is left, raw readings are shed: left out of batches,
	// counted and reported; their minute summaries still go. 0: no
	// budget.
	BudgetBytesPerHour int64 `yaml:"budget_bytes_per_hour"`

	// Schedule lists the daily windows, "HH:MM-HH:MM" in local time (one
	// may run past midnight, such as 22:00-06:00), in which the uplink
	// publishes. Empty: always.
	Schedule []string `yaml:"schedule"`

	// ReadingsOrder is the order in which raw readings go, after the
	// CRDT state (key state, summaries, latest values) the cloud lacks:
	// "oldest" first (the cloud's history fills in order) or "newest"
	// first (after an outage, the latest readings go first, then older
	// ones back to where the cloud stopped).
	ReadingsOrder string `yaml:"readings_order"`

	// Fleets lists the fleets the aggregator merges. Empty means every
	// fleet. Aggregator only.
	Fleets []string `yaml:"fleets"`

	// SharedGroup, when set, makes the aggregator subscribe to batches
	// through the shared subscription $share/<group>/…. Aggregator only;
	// aggregators of one group must share one store.
	SharedGroup string `yaml:"shared_group"`
}

// Broker returns the broker settings of c.
func (c CloudConfig) Broker() mqttconn.Broker {
	return mqttconn.Broker{URL: c.URL, Username: c.Username, PasswordFile: c.PasswordFile, CAFile: c.CAFile,
		CertFile: c.CertFile, KeyFile: c.KeyFile, ReconnectMaxInterval: c.ReconnectMaxInterval}
}

func defaultCloud() CloudConfig {
	return CloudConfig{ReconnectMaxInterval: time.Minute, Compress: true, MaxBatchBytes: 256 << 10, Window: 4, AckTimeout: 30 * time.Second,
		ReadingsOrder: "oldest"}
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name. With an empty URL (cloud sync off) there is nothing to check.
func (c CloudConfig) Validate() error {
	if c.URL == "" {
		return nil // off
	}
	errs := invalid.PrefixEach("", c.Broker().Validate())
	if c.MaxBatchBytes < 4<<10 || c.MaxBatchBytes > 2<<20 {
		errs = append(errs, fmt.Errorf("max_batch_bytes: must be from 4096 to 2097152 (got %d)", c.MaxBatchBytes))
	}
	if c.Window < 1 || c.Window > 64 {
		errs = append(errs, fmt.Errorf("window: must be from 1 to 64 (got %d)", c.Window))
	}
	if c.AckTimeout < time.Second {
		errs = append(errs, fmt.Errorf("ack_timeout: must be at least 1s (got %s)", c.AckTimeout))
	}
	if c.AggregatorID != "" {
		if _, err := peer.Decode(c.AggregatorID); err != nil {
			errs = append(errs, fmt.Errorf("aggregator_id: not a peer ID: %v", err))
		}
	}
	if c.BudgetBytesPerHour < 0 {
		errs = append(errs, fmt.Errorf("budget_bytes_per_hour: must not be negative (got %d)", c.BudgetBytesPerHour))
	}
	for i, w := range c.Schedule {
		if _, err := uplink.ParseWindow(w); err != nil {
			errs = append(errs, fmt.Errorf("schedule[%d]: %w", i, err))
		}
	}
	if c.ReadingsOrder != "oldest" && c.ReadingsOrder != "newest" {
		errs = append(errs, fmt.Errorf("readings_order: must be oldest or newest (got %q)", c.ReadingsOrder))
	}
	for i, f := range c.Fleets {
		if f == "" || !validName(f) {
			errs = append(errs, fmt.Errorf("fleets[%d]: must be a fleet name (got %q)", i, f))
		}
	}
	if c.SharedGroup != "" && !validName(c.SharedGroup) {
		errs = append(errs, fmt.Errorf("shared_group: must be at most 63 letters, digits, '.', '_' or '-' (got %q)", c.SharedGroup))
	}
	return errors.Join(errs...)
}
