package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Errors that adapters log; a poll's error wraps one of them, test with
// errors.Is. Run itself returns only configuration errors.
var (
	// errNotFound: a configured zone, chip or device is absent, or the
	// adapter found nothing at all to read.
	errNotFound = errors.New("sensors: not found")
	// errSyntax: a file or a command's output is not in the expected
	// format.
	errSyntax = errors.New("sensors: cannot parse")
	// errCRC: a 1-Wire scratchpad failed its CRC check.
	errCRC = errors.New("sensors: CRC mismatch")
	// errPowerOnReset: a DS18B20 returned its power-on reset value (85 °C)
	// instead of a conversion result.
	errPowerOnReset = errors.New("sensors: power-on reset value")
	// errOutOfRange: a value outside what the sensor can measure.
	errOutOfRange = errors.New("sensors: value out of range")
	// errNotFinite: a NaN or infinite value, which the sink never sees.
	errNotFinite = errors.New("sensors: value not finite")
	// errTooLarge: a file or a command's output exceeds its size limit.
	errTooLarge = errors.New("sensors: too large")
	// errCommand: a command failed: non-zero exit, timeout or no start.
	errCommand = errors.New("sensors: command failed")
	// errPanic: an adapter or the sink panicked; the panic was recovered.
	errPanic = errors.New("sensors: panic")
)

// Reading is one measurement taken by an adapter.
type Reading struct {
	// Sensor names the measured quantity, such as "thermal.cpu-thermal";
	// see the package documentation for the naming scheme.
	Sensor string
	// Value is the measurement in Unit; never NaN or infinite.
	Value float64
	// Unit is the unit of Value: "C", "V", "A", "W", "RPM", "%", or what
	// the configuration says for exec and simulated sensors ("" if none).
	Unit string
	// Time is when the value was read, from Options.Now.
	Time time.Time
}

// Sink receives the readings of one poll of one adapter, in a slice that
// is the sink's to keep: the adapter does not touch it after the call. rs
// is never empty. Each adapter calls the sink from its own goroutine, so a
// sink must be safe for concurrent use. It may block, which delays that
// adapter's next poll (back-pressure), and should return when ctx is
// cancelled. An error is logged and counted; the adapter keeps polling and
// does not retry the readings.
type Sink func(ctx context.Context, rs []Reading) error

// Options are Run's dependencies.
type Options struct {
	// Logger receives failures and recoveries; nil discards.
	Logger *slog.Logger

	// Now is the clock that timestamps readings and drives simulated
	// sensors; nil means time.Now. Poll scheduling always uses real
	// timers.
	Now func() time.Time

	// Root is prepended to every sysfs path (/sys/class/thermal,
	// /sys/class/hwmon, /sys/bus/w1/devices); "" means "/". Tests point
	// it at trees under testdata.
	Root string

	// Rand seeds the random source of each adapter, which draws its
	// first-poll offset and its jitter; nil means randomly seeded. Run
	// draws from it on the calling goroutine, before it starts any
	// adapter, and never after.
	Rand *rand.Rand

	// Stats, if not nil, is updated as Run goes.
	Stats *Stats
}

// Stats counts what Run's adapters do, over all adapters. The counters are
// updated atomically and may be read at any time.
type Stats struct {
	// Polls counts polls, successful or not.
	Polls atomic.Uint64
	// PollErrors counts polls that failed in whole or in part.
	PollErrors atomic.Uint64
	// Readings counts readings the sink accepted (returned nil for).
	Readings atomic.Uint64
	// Rejected counts NaN or infinite values that were skipped.
	Rejected atomic.Uint64
	// SinkErrors counts sink calls that returned an error or panicked.
	SinkErrors atomic.Uint64
	// Panics counts panics recovered from adapters and the sink.
	Panics atomic.Uint64
}

// Run starts every adapter configured in cfg, each on its own goroutine
// with its own interval: the first poll comes at a random offset within the
// interval, the following ones an interval apart, each interval jittered by
// ±10% so adapters and nodes do not poll in lockstep. Each poll's readings
// go to sink.
//
// A poll that fails in part (a zone that does not read, a 1-Wire sensor
// with a bad CRC) hands the rest of its readings to the sink; one that
// fails in whole delays the next poll, doubling the delay with each
// consecutive failure up to 32 intervals or 5 minutes, whichever is
// shorter. Failures are logged at the 1st, 2nd, 4th, 8th… consecutive one,
// and a recovery once. Panics in an adapter or in sink are recovered,
// logged with their stack and counted as failures; other adapters go on.
//
// Run validates cfg and returns its problems before starting anything;
// otherwise it blocks until ctx is cancelled and returns nil once every
// adapter has stopped. An adapter stops between polls; a poll in progress
// is cancelled through its context, although a sysfs read in the kernel
// (about 750 ms for a DS18B20) cannot be interrupted.
func Run(ctx context.Context, cfg Config, sink Sink, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("sensors: invalid configuration: %w", err)
	}
	if sink == nil {
		return errors.New("sensors: nil sink")
	}
	return runJobs(ctx, cfg.jobs(opts.root()), sink, opts)
}

// root returns the filesystem root that sysfs paths are relative to.
func (o Options) root() string {
	if o.Root == "" {
		return "/"
	}
	return o.Root
}
