package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/edged-dev/edged/localmqtt"
	"github.com/edged-dev/edged/shedding"
)

// SheddingConfig configures load shedding: admission control of HTTP
// requests and local MQTT inputs by priority class.
type SheddingConfig struct {
	// Enabled turns admission control on. Off, the node takes all work
	// until it falls over; keep it on.
	Enabled bool `yaml:"enabled"`

	// LatencyTarget is the request latency above which the node is taken
	// to be queueing: while even the fastest requests of an interval
	// (100ms) are slower, the concurrency limit falls in proportion (by a
	// tenth to a half per interval). At least 1ms.
	LatencyTarget time.Duration `yaml:"latency_target"`

	// QueueTarget is how long runnable work may wait for a CPU (the 90th
	// percentile of the Go scheduler's latency, measured every 100ms
	// under load) before the node is taken to be queueing: above it for
	// an interval, with MinConcurrency requests in flight, the
	// concurrency limit falls in proportion, and it stops growing; with
	// MinConcurrency requests taken in the interval, an admission rate for
	// normal and bulk work is set below the rate they came in at, and
	// falls the same way. At least 1ms.
	QueueTarget time.Duration `yaml:"queue_target"`

	// MinConcurrency and MaxConcurrency bound the adaptive limit of
	// requests in flight (it starts at 32). Critical work is taken
	// whatever the limit: beyond MaxConcurrency critical requests in
	// flight, more wait until one ends (10s at most, then 429).
	// 1 ≤ min ≤ max ≤ 65536.
	MinConcurrency int `yaml:"min_concurrency"`
	MaxConcurrency int `yaml:"max_concurrency"`

	// Hold is how long a class stays shed after its signal cleared, so
	// the node does not flap. Positive.
	Hold time.Duration `yaml:"hold"`

	// RetryAfter is the wait advised to refused clients (Retry-After).
	// At least 1s.
	RetryAfter time.Duration `yaml:"retry_after"`

	// DefaultClass is the class of work not classed otherwise: critical,
	// normal or bulk.
	DefaultClass string `yaml:"default_class"`

	// ReadingsClass is the class of readings (HTTP writes and MQTT) of
	// sensors not listed in Sensors.
	ReadingsClass string `yaml:"readings_class"`

	// Namespaces gives key namespaces a class (writes to them). Keys are
	// namespaces as the key space takes them (lowercase).
	Namespaces map[string]string `yaml:"namespaces"`

	// Sensors gives sensors a class, for their readings over local MQTT
	// (whose topic names the sensor). Keys are sensor names as a readings
	// topic level carries them: one level, no wildcard.
	Sensors map[string]string `yaml:"sensors"`

	// RequestPriority lets clients set a request's class with the header
	// X-Edged-Priority; off, the header may only lower it.
	RequestPriority bool `yaml:"request_priority"`
}

func defaultShedding() SheddingConfig {
	return SheddingConfig{Enabled: true, LatencyTarget: 50 * time.Millisecond, QueueTarget: 2 * time.Millisecond, MinConcurrency: 8, MaxConcurrency: 256,
		Hold: time.Second, RetryAfter: time.Second, DefaultClass: "normal", ReadingsClass: "bulk", RequestPriority: true}
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name. Off, there is nothing to check.
func (c SheddingConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.LatencyTarget < time.Millisecond {
		errs = append(errs, fmt.Errorf("latency_target: must be at least 1ms (got %s)", c.LatencyTarget))
	}
	if c.QueueTarget < time.Millisecond {
		errs = append(errs, fmt.Errorf("queue_target: must be at least 1ms (got %s)", c.QueueTarget))
	}
	if c.MinConcurrency < 1 || c.MaxConcurrency < c.MinConcurrency || c.MaxConcurrency > 65536 {
		errs = append(errs, fmt.Errorf("min_concurrency, max_concurrency: need 1 ≤ min ≤ max ≤ 65536 (got %d, %d)", c.MinConcurrency, c.MaxConcurrency))
	}
	if c.Hold <= 0 {
		errs = append(errs, fmt.Errorf("hold: must be positive (got %s)", c.Hold))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, fmt.Errorf("retry_after: must be at least 1s (got %s)", c.RetryAfter))
	}
	class := func(field, s string) {
		if _, ok := shedding.ParseClass(s); !ok {
			errs = append(errs, fmt.Errorf("%s: must be critical, normal or bulk (got %q)", field, s))
		}
	}
	class("default_class", c.DefaultClass)
	class("readings_class", c.ReadingsClass)
	// A key that no namespace or sensor can have would never match: a
	// class silently not applied, found only under overload.
	for _, ns := range slices.Sorted(maps.Keys(c.Namespaces)) {
		if !validNamespace(ns) {
			errs = append(errs, fmt.Errorf("namespaces.%s: %s (got %q)", ns, namespaceRule, ns))
		}
		class(fmt.Sprintf("namespaces.%s", ns), c.Namespaces[ns])
	}
	for _, sensor := range slices.Sorted(maps.Keys(c.Sensors)) {
		if err := localmqtt.CheckSensor(sensor); err != nil {
			errs = append(errs, fmt.Errorf("sensors.%s: %v, so no readings topic names it (got %q)", sensor, err, sensor))
		}
		class(fmt.Sprintf("sensors.%s", sensor), c.Sensors[sensor])
	}
	return errors.Join(errs...)
}

// Governor returns the admission governor c configures.
func (c SheddingConfig) Governor() *shedding.Governor {
	return shedding.New(shedding.Config{LatencyTarget: c.LatencyTarget, QueueTarget: c.QueueTarget, MinLimit: c.MinConcurrency, MaxLimit: c.MaxConcurrency,
		Hold: c.Hold, RetryAfter: c.RetryAfter})
}

// Class returns the class named s, which Validate checked.
func Class(s string) shedding.Class {
	c, _ := shedding.ParseClass(s)
	return c
}
