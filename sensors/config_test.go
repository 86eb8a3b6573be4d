package sensors

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if jobs := DefaultConfig().jobs("/"); len(jobs) != 0 {
		t.Errorf("the default configuration has %d adapters, want none", len(jobs))
	}
}

// TestExampleConfig decodes testdata/example.yaml as the node's
// configuration loader does (unknown fields are errors) and validates it.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Sensors Config `yaml:"sensors"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	cfg := file.Sensors
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Thermal) != 1 || len(cfg.Hwmon) != 1 || len(cfg.OneWire) != 1 || len(cfg.Exec) != 1 || len(cfg.Simulated) != 1 {
		t.Fatalf("decoded %+v, want one entry of each adapter", cfg)
	}
	if e := cfg.Exec[0]; e.Interval != time.Minute || e.Timeout != 10*time.Second || e.Command[2] != "0" || e.Unit != "%" {
		t.Errorf("exec entry decoded as %+v", e)
	}
	if s := cfg.Simulated[0]; s.Period != time.Hour || s.Amplitude != 5 || s.Noise != 0.2 || s.Waveform != "sine" {
		t.Errorf("simulated entry decoded as %+v", s)
	}
	jobs := cfg.jobs("/")
	var paths []string
	for _, j := range jobs {
		paths = append(paths, j.path+"@"+j.interval.String())
	}
	if got, want := strings.Join(paths, " "), "thermal[0]@10s hwmon[0]@10s onewire[0]@30s exec[0]@1m0s simulated[0]@1s"; got != want {
		t.Errorf("adapters %s, want %s", got, want)
	}
}

func TestDefaults(t *testing.T) {
	if c := (ThermalConfig{}).withDefaults(); c.Interval != 10*time.Second || c.Prefix != "thermal" {
		t.Errorf("thermal defaults %+v", c)
	}
	if c := (HwmonConfig{}).withDefaults(); c.Interval != 10*time.Second || c.Prefix != "hwmon" {
		t.Errorf("hwmon defaults %+v", c)
	}
	if c := (OneWireConfig{}).withDefaults(); c.Interval != 30*time.Second || c.Prefix != "w1" {
		t.Errorf("onewire defaults %+v", c)
	}
	if c := (ExecConfig{}).withDefaults(); c.Interval != 30*time.Second || c.Timeout != 5*time.Second {
		t.Errorf("exec defaults %+v", c)
	}
	if c := (SimulatedConfig{}).withDefaults(); c.Interval != time.Second || c.Period != time.Minute || c.Waveform != "sine" || c.Count != 1 {
		t.Errorf("simulated defaults %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{
		Thermal: []ThermalConfig{
			{},
			{Interval: -time.Second, Prefix: "a..b", Zones: []string{"cpu", "", "cpu"}},
		},
		Hwmon:   []HwmonConfig{{Prefix: "x y", Chips: []string{" "}}},
		OneWire: []OneWireConfig{{Devices: []string{"28-0316A2795EFF", "10-000802b4c2d1", "28-0316a2795eff"}}},
		Exec: []ExecConfig{
			{Name: "a", Command: []string{"/bin/true"}},
			{Name: "b"},
			{Name: "a", Command: []string{"/bin/true"}},
		},
		Simulated: []SimulatedConfig{{Name: "s"}, {Name: "s", Waveform: "saw"}},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("valid")
	}
	want := []string{
		"thermal[1].interval: must be 0 (the default) or from 10ms to 24h0m0s (got -1s)",
		`thermal[1].prefix: must be at most 63 bytes of dot-separated parts of letters, digits, '_' or '-' (got "a..b")`,
		"thermal[1].zones[1]: must not be empty",
		`thermal[1].zones[2]: "cpu" is listed twice`,
		`hwmon[0].prefix: must be at most 63 bytes of dot-separated parts of letters, digits, '_' or '-' (got "x y")`,
		"hwmon[0].chips[0]: must not be empty",
		`onewire[0].devices[0]: must be 28- and 12 lower-case hex digits (got "28-0316A2795EFF")`,
		`onewire[0].devices[1]: must be 28- and 12 lower-case hex digits (got "10-000802b4c2d1")`,
		"exec[1].command: must not be empty",
		`exec[2].name: "a" is already the name of exec[0]`,
		`simulated[1].waveform: must be one of sine, square, sawtooth, random-walk (got "saw")`,
		`simulated[1].name: "s" is already the name of simulated[0]`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Validate:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestPrefixes(t *testing.T) {
	for prefix, valid := range map[string]bool{
		"":                      true,
		"thermal":               true,
		"site-3.rack_2.board":   true,
		strings.Repeat("a", 63): true,
		strings.Repeat("a", 64): false,
		".a":                    false,
		"a.":                    false,
		"-a":                    false,
		"a b":                   false,
		"ä":                     false,
	} {
		if err := validatePrefix(prefix); (err == nil) != valid {
			t.Errorf("validatePrefix(%q) = %v", prefix, err)
		}
	}
}
