package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SimulatedConfig configures an adapter that generates waveforms, for
// demonstrations and load tests. Its values depend only on the
// configuration and the time (Options.Now), never on when or how often it
// is polled, so tests can compute them. For sensor i of Count, at time t
// (in nanoseconds since the Unix epoch) and with p the phase, the fraction
// of a period t mod Period, plus i/Count, less its integer part:
//
//	sine         Offset + Amplitude·sin(2πp)
//	square       Offset + Amplitude while p < ½, Offset − Amplitude after
//	sawtooth     Offset + Amplitude·(2p − 1), rising from −Amplitude to +Amplitude
//	random-walk  Offset + Amplitude·(s[k−63] + … + s[k]) / (8σ)
//
// plus Noise·z. The random walk takes a step s[k] every Period, k being
// t/Period rounded down; the steps are integers drawn uniformly from
// −1000 to 1000 (their standard deviation σ is √(1000·1001/3)) and the walk
// forgets those older than 64 Periods, so it wanders like a random walk
// over short spans while staying within a few Amplitudes of Offset. z is
// standard normal. Steps and z are drawn from a hash of Seed, i and k or
// t, so equal configurations give equal values at equal times.
type SimulatedConfig struct {
	// Name names the entry and its sensors: sim.<name>, or sim.<name>.<i>
	// for i from 0 to Count−1 if Count is more than 1. 1 to 63 letters,
	// digits, '_' or '-', starting with a letter or digit, unique among
	// simulated entries. Required.
	Name string `yaml:"name"`

	// Waveform is "sine", "square", "sawtooth" or "random-walk". Empty
	// means "sine".
	Waveform string `yaml:"waveform"`

	// Interval is the time between polls. 0 means 1s.
	Interval time.Duration `yaml:"interval"`

	// Period is the period of the waveform, or the time between two steps
	// of the random walk; at least 1ms. 0 means 1m.
	Period time.Duration `yaml:"period"`

	// Amplitude is the peak deviation of the waveform from Offset, or the
	// standard deviation of the random walk, in Unit; finite and not
	// negative. 0, the default, makes a flat line at Offset.
	Amplitude float64 `yaml:"amplitude"`

	// Offset is the centre of the waveform, in Unit; finite. Default 0.
	Offset float64 `yaml:"offset"`

	// Noise is the standard deviation of normal noise added to each
	// value, in Unit; finite and not negative. 0, the default, adds none.
	Noise float64 `yaml:"noise"`

	// Seed selects the random walk's steps and the noise. Default 0.
	Seed int64 `yaml:"seed"`

	// Count is the number of sensors of the entry, at most 100000; each
	// poll yields one reading of each. 0 means 1.
	Count int `yaml:"count"`

	// Unit is the unit of the values, such as "C". Empty means none.
	Unit string `yaml:"unit"`
}

// Waveforms of simulated sensors.
var waveforms = []string{"sine", "square", "sawtooth", "random-walk"}

// Limits of simulated sensors.
const (
	// maxSimulatedCount bounds Count: 100 000 readings a poll is well
	// past what a Pi stores, which is the point of a load test.
	maxSimulatedCount = 100_000
	// minPeriod keeps the waveform from being sampled as noise.
	minPeriod = time.Millisecond
)

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c SimulatedConfig) Validate() error {
	errs := []error{validateName(c.Name), validateInterval(c.Interval), validateUnit(c.Unit)}
	if c.Waveform != "" && !slices.Contains(waveforms, c.Waveform) {
		errs = append(errs, fmt.Errorf("waveform: must be one of %s (got %q)", strings.Join(waveforms, ", "), c.Waveform))
	}
	if c.Period != 0 && c.Period < minPeriod {
		errs = append(errs, fmt.Errorf("period: must be 0 (the default) or at least %s (got %s)", minPeriod, c.Period))
	}
	if math.IsNaN(c.Amplitude) || math.IsInf(c.Amplitude, 0) || c.Amplitude < 0 {
		errs = append(errs, fmt.Errorf("amplitude: must be finite and not negative (got %v)", c.Amplitude))
	}
	if math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
		errs = append(errs, fmt.Errorf("offset: must be finite (got %v)", c.Offset))
	}
	if math.IsNaN(c.Noise) || math.IsInf(c.Noise, 0) || c.Noise < 0 {
		errs = append(errs, fmt.Errorf("noise: must be finite and not negative (got %v)", c.Noise))
	}
	if c.Count < 0 || c.Count > maxSimulatedCount {
		errs = append(errs, fmt.Errorf("count: must be from 0 (meaning 1) to %d (got %d)", maxSimulatedCount, c.Count))
	}
	return errors.Join(errs...)
}

func (c SimulatedConfig) withDefaults() SimulatedConfig {
	if c.Waveform == "" {
		c.Waveform = "sine"
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Period == 0 {
		c.Period = time.Minute
	}
	if c.Count == 0 {
		c.Count = 1
	}
	return c
}

// The random walk.
const (
	walkWindow = 64   // steps remembered; √64 = 8
	walkStepN  = 1000 // steps are integers from −walkStepN to walkStepN
)

// walkSigma is the standard deviation of a step.
var walkSigma = math.Sqrt(walkStepN * (walkStepN + 1) / 3.0)

// Salts that keep the hashes of steps and of noise apart.
const (
	saltWalk  = 1
	saltNoise = 2
)

// simulator is the adapter of one SimulatedConfig entry.
type simulator struct {
	cfg   SimulatedConfig
	names []string
	walks []walk // for random-walk, by sensor
}

// walk is the state of one random walk: the sum of the steps up to k.
// Sums are of integers, so updating one step at a time gives exactly what
// summing afresh would, and values do not depend on the polling history.
type walk struct {
	k   int64
	sum int64
	ok  bool
}

func newSimulator(cfg SimulatedConfig) *simulator {
	s := &simulator{cfg: cfg, names: make([]string, cfg.Count)}
	for i := range s.names {
		s.names[i] = "sim." + cfg.Name
		if cfg.Count > 1 {
			s.names[i] += "." + strconv.Itoa(i)
		}
	}
	if cfg.Waveform == "random-walk" {
		s.walks = make([]walk, cfg.Count)
	}
	return s
}

func (s *simulator) poll(_ context.Context, now func() time.Time) ([]Reading, error) {
	t := now()
	rs := make([]Reading, len(s.names))
	for i, name := range s.names {
		rs[i] = Reading{Sensor: name, Value: s.value(i, t), Unit: s.cfg.Unit, Time: t}
	}
	return rs, nil
}

// value returns the value of sensor i at t.
func (s *simulator) value(i int, t time.Time) float64 {
	c := s.cfg
	ns, period := t.UnixNano(), int64(c.Period)
	var wave float64
	switch c.Waveform {
	case "random-walk":
		wave = float64(s.walkSum(i, floorDiv(ns, period))) / (math.Sqrt(walkWindow) * walkSigma)
	default:
		p := float64(floorMod(ns, period))/float64(period) + float64(i)/float64(c.Count)
		p -= math.Floor(p)
		switch c.Waveform {
		case "sine":
			wave = math.Sin(2 * math.Pi * p)
		case "square":
			wave = 1
			if p >= 0.5 {
				wave = -1
			}
		case "sawtooth":
			wave = 2*p - 1
		}
	}
	v := c.Offset + c.Amplitude*wave
	if c.Noise > 0 {
		v += c.Noise * gaussian(c.Seed, i, ns)
	}
	return v
}

// walkSum returns s[k−63] + … + s[k] for sensor i, in O(1) when k has
// moved on by a few steps since the last call.
func (s *simulator) walkSum(i int, k int64) int64 {
	w := &s.walks[i]
	switch {
	case w.ok && k == w.k:
	case w.ok && k > w.k && k-w.k < walkWindow:
		for j := w.k + 1; j <= k; j++ {
			w.sum += walkStep(s.cfg.Seed, i, j) - walkStep(s.cfg.Seed, i, j-walkWindow)
		}
	default:
		w.sum = 0
		for j := k - walkWindow + 1; j <= k; j++ {
			w.sum += walkStep(s.cfg.Seed, i, j)
		}
	}
	w.k, w.ok = k, true
	return w.sum
}

// walkStep returns step j of sensor i's random walk: an integer from
// −walkStepN to walkStepN.
func walkStep(seed int64, i int, j int64) int64 {
	return int64(hash(seed, saltWalk, i, j)%(2*walkStepN+1)) - walkStepN
}

// gaussian returns a standard normal value drawn from seed, i and ns, by
// the Box–Muller transform.
func gaussian(seed int64, i int, ns int64) float64 {
	h1 := hash(seed, saltNoise, i, ns)
	h2 := mix64(h1 ^ 0x9e3779b97f4a7c15)
	u1 := (float64(h1>>11) + 1) / (1 << 53) // in (0, 1], so the log is finite
	u2 := float64(h2>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// hash mixes its arguments into 64 well-distributed bits.
func hash(seed int64, salt uint64, i int, j int64) uint64 {
	h := mix64(uint64(seed) ^ salt*0x9e3779b97f4a7c15)
	h = mix64(h ^ uint64(i))
	return mix64(h ^ uint64(j))
}

// mix64 is SplitMix64's finaliser: a bijection on 64 bits in which every
// input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// floorDiv returns a/b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// floorMod returns a mod b in [0, b), for b > 0.
func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
