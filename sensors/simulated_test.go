package sensors

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"
)

// simAt polls sim once at t and returns the values by sensor index.
func simAt(t testing.TB, s *simulator, at time.Time) []float64 {
	t.Helper()
	rs, err := s.poll(context.Background(), func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	vs := make([]float64, len(rs))
	for i, r := range rs {
		if !r.Time.Equal(at) {
			t.Errorf("reading at %v, want %v", r.Time, at)
		}
		vs[i] = r.Value
	}
	return vs
}

// phase is the phase of sensor i of n at t, as SimulatedConfig defines it.
func phase(t time.Time, period time.Duration, i, n int) float64 {
	p := float64(floorMod(t.UnixNano(), int64(period)))/float64(period) + float64(i)/float64(n)
	return p - math.Floor(p)
}

func TestSimulatedWaveforms(t *testing.T) {
	const period = time.Minute
	// A period starts at every whole minute since the epoch.
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	quarter := start.Add(period / 4)
	for _, tc := range []struct {
		waveform string
		formula  func(p float64) float64 // the waveform at phase p, amplitude 1
		exact    map[time.Time]float64   // values with amplitude 2, offset 10
	}{
		{"sine", func(p float64) float64 { return math.Sin(2 * math.Pi * p) },
			map[time.Time]float64{start: 10, quarter: 12}},
		{"square", func(p float64) float64 { return map[bool]float64{true: 1, false: -1}[p < 0.5] },
			map[time.Time]float64{start: 12, quarter: 12, start.Add(period / 2): 8, start.Add(-time.Nanosecond): 8}},
		{"sawtooth", func(p float64) float64 { return 2*p - 1 },
			map[time.Time]float64{start: 8, quarter: 9, start.Add(period / 2): 10}},
	} {
		t.Run(tc.waveform, func(t *testing.T) {
			cfg := SimulatedConfig{Name: "w", Waveform: tc.waveform, Period: period, Amplitude: 2, Offset: 10, Count: 3}.withDefaults()
			s := newSimulator(cfg)
			for at, want := range tc.exact {
				if got := simAt(t, s, at)[0]; got != want {
					t.Errorf("at %v: %v, want %v", at, got, want)
				}
			}
			// Times before the epoch too, and odd offsets into periods.
			for _, at := range []time.Time{start.Add(7 * time.Second), start.Add(-time.Hour - 13*time.Millisecond), time.Unix(-86400, 12345), testTime} {
				got := simAt(t, s, at)
				for i, v := range got {
					want := 10 + 2*tc.formula(phase(at, period, i, 3))
					if v != want {
						t.Errorf("sensor %d at %v: %v, want %v", i, at, v, want)
					}
				}
			}
		})
	}
}

func TestSimulatedRandomWalk(t *testing.T) {
	const period = time.Second
	cfg := SimulatedConfig{Name: "rw", Waveform: "random-walk", Period: period, Amplitude: 3, Offset: -4, Seed: 42, Count: 2}.withDefaults()
	expected := func(i int, at time.Time) float64 {
		k := floorDiv(at.UnixNano(), int64(period))
		var sum int64
		for j := k - 63; j <= k; j++ {
			sum += walkStep(42, i, j)
		}
		return -4 + 3*(float64(sum)/(8*math.Sqrt(1000*1001/3.0)))
	}
	polled := newSimulator(cfg) // polled at every step
	base := time.Unix(1_800_000_000, 0)
	var times []time.Time
	for k := range 200 {
		times = append(times, base.Add(time.Duration(k)*period+time.Duration(k%7)*100*time.Millisecond))
	}
	// Then the same step again, a jump by more than the window, and back
	// in time (the clock was stepped).
	times = append(times, times[len(times)-1], base.Add(1000*period), base.Add(-5*period))
	for _, at := range times {
		got := simAt(t, polled, at)
		for i, v := range got {
			if want := expected(i, at); v != want {
				t.Fatalf("sensor %d at %v: %v, want %v", i, at, v, want)
			}
		}
	}
	// A fresh simulator, polled once, agrees with the one polled all along.
	last := times[len(times)-4]
	if a, b := simAt(t, newSimulator(cfg), last), simAt(t, polled, last); !slices.Equal(a, b) {
		t.Errorf("values depend on the polling history: %v, %v", a, b)
	}

	// Its spread is about the amplitude.
	var sum, sumSq float64
	const n = 5000
	for k := range n {
		v := simAt(t, polled, base.Add(time.Duration(64*k)*period))[0] + 4 // independent windows
		sum += v
		sumSq += v * v
	}
	mean := sum / n
	if sd := math.Sqrt(sumSq/n - mean*mean); math.Abs(sd-3) > 0.3 || math.Abs(mean) > 0.3 {
		t.Errorf("random walk mean %.3f, standard deviation %.3f; want about 0 and 3", mean, sd)
	}
}

func TestSimulatedNoise(t *testing.T) {
	cfg := SimulatedConfig{Name: "n", Noise: 0.5, Offset: 20, Seed: 7, Count: 2}.withDefaults()
	s, same, other := newSimulator(cfg), newSimulator(cfg), newSimulator(SimulatedConfig{Name: "n", Noise: 0.5, Offset: 20, Seed: 8, Count: 2}.withDefaults())
	if a, b := simAt(t, s, testTime), simAt(t, same, testTime); !slices.Equal(a, b) {
		t.Errorf("same seed, same time: %v and %v", a, b)
	}
	if a, b := simAt(t, s, testTime), simAt(t, other, testTime); slices.Equal(a, b) {
		t.Errorf("different seeds, same values %v", a)
	}
	var sum, sumSq float64
	const n = 20000
	for k := range n {
		v := simAt(t, s, testTime.Add(time.Duration(k)*time.Millisecond))[1] - 20
		sum += v
		sumSq += v * v
	}
	mean := sum / n
	if sd := math.Sqrt(sumSq/n - mean*mean); math.Abs(sd-0.5) > 0.025 || math.Abs(mean) > 0.025 {
		t.Errorf("noise mean %.4f, standard deviation %.4f; want about 0 and 0.5", mean, sd)
	}
}

func TestSimulatedNames(t *testing.T) {
	one, err := newSimulator(SimulatedConfig{Name: "a", Unit: "C"}.withDefaults()).poll(context.Background(), fixedNow)
	if err != nil || len(one) != 1 || one[0].Sensor != "sim.a" || one[0].Unit != "C" {
		t.Errorf("count 1: %v, %v", one, err)
	}
	many, err := newSimulator(SimulatedConfig{Name: "b", Count: 3}.withDefaults()).poll(context.Background(), fixedNow)
	var names []string
	for _, r := range many {
		names = append(names, r.Sensor)
	}
	if err != nil || !slices.Equal(names, []string{"sim.b.0", "sim.b.1", "sim.b.2"}) {
		t.Errorf("count 3: %v, %v", names, err)
	}
}

func TestSimulatedValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SimulatedConfig
		want string
	}{
		{"minimal", SimulatedConfig{Name: "a"}, ""},
		{"full", SimulatedConfig{Name: "a", Waveform: "random-walk", Interval: time.Second, Period: time.Hour, Amplitude: 1, Offset: -3, Noise: 0.1, Seed: -9, Count: 100000, Unit: "C"}, ""},
		{"no name", SimulatedConfig{}, "name: must be"},
		{"waveform", SimulatedConfig{Name: "a", Waveform: "triangle"}, `waveform: must be one of sine, square, sawtooth, random-walk (got "triangle")`},
		{"period", SimulatedConfig{Name: "a", Period: time.Microsecond}, "period: must be 0 (the default) or at least 1ms"},
		{"negative amplitude", SimulatedConfig{Name: "a", Amplitude: -1}, "amplitude: must be finite and not negative"},
		{"NaN amplitude", SimulatedConfig{Name: "a", Amplitude: nan}, "amplitude: must be finite"},
		{"infinite offset", SimulatedConfig{Name: "a", Offset: negInf}, "offset: must be finite"},
		{"negative noise", SimulatedConfig{Name: "a", Noise: -0.1}, "noise: must be finite and not negative"},
		{"count", SimulatedConfig{Name: "a", Count: 100001}, "count: must be from 0 (meaning 1) to 100000"},
		{"negative count", SimulatedConfig{Name: "a", Count: -1}, "count: must be"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkValid(t, tc.cfg.Validate(), tc.want) })
	}
}
