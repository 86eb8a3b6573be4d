package sensors

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edged-dev/edged/invalid"
)

// Bounds on every adapter's interval.
const (
	// MinInterval keeps a typo such as "1us" from spinning a core.
	MinInterval = 10 * time.Millisecond
	// MaxInterval keeps backoff arithmetic far from overflow; a sensor
	// read less than daily is not a sensor this package is for.
	MaxInterval = 24 * time.Hour
)

// Config lists the adapters, as in the node's YAML file under `sensors:`.
// Each list may hold several entries, for instance to read some zones more
// often than others; entries run independently.
type Config struct {
	// Thermal reads Linux thermal zones (/sys/class/thermal).
	Thermal []ThermalConfig `yaml:"thermal"`

	// Hwmon reads hardware monitoring chips (/sys/class/hwmon).
	Hwmon []HwmonConfig `yaml:"hwmon"`

	// OneWire reads DS18B20 temperature sensors on the 1-Wire bus
	// (/sys/bus/w1/devices).
	OneWire []OneWireConfig `yaml:"onewire"`

	// Exec runs commands and parses the numbers they print.
	Exec []ExecConfig `yaml:"exec"`

	// Simulated generates waveforms, for demonstrations and load tests.
	Simulated []SimulatedConfig `yaml:"simulated"`
}

// DefaultConfig returns the built-in configuration: no adapters, so a node
// reads no sensors until its configuration lists some.
func DefaultConfig() Config { return Config{} }

// Validate reports every problem in c, joined with errors.Join, each
// prefixed with the YAML path of its field within the sensors section:
// `exec[1].command: must not be empty`. It returns nil if c is valid.
func (c Config) Validate() error {
	var errs []error
	for i, e := range c.Thermal {
		errs = append(errs, invalid.PrefixEach(fmt.Sprintf("thermal[%d].", i), e.Validate())...)
	}
	for i, e := range c.Hwmon {
		errs = append(errs, invalid.PrefixEach(fmt.Sprintf("hwmon[%d].", i), e.Validate())...)
	}
	for i, e := range c.OneWire {
		errs = append(errs, invalid.PrefixEach(fmt.Sprintf("onewire[%d].", i), e.Validate())...)
	}
	execNames := make(map[string]int)
	for i, e := range c.Exec {
		errs = append(errs, invalid.PrefixEach(fmt.Sprintf("exec[%d].", i), e.Validate())...)
		if first, dup := execNames[e.Name]; dup && e.Name != "" {
			errs = append(errs, fmt.Errorf("exec[%d].name: %q is already the name of exec[%d]", i, e.Name, first))
		} else {
			execNames[e.Name] = i
		}
	}
	simNames := make(map[string]int)
	for i, e := range c.Simulated {
		errs = append(errs, invalid.PrefixEach(fmt.Sprintf("simulated[%d].", i), e.Validate())...)
		if first, dup := simNames[e.Name]; dup && e.Name != "" {
			errs = append(errs, fmt.Errorf("simulated[%d].name: %q is already the name of simulated[%d]", i, e.Name, first))
		} else {
			simNames[e.Name] = i
		}
	}
	return errors.Join(errs...)
}

// jobs returns an adapter for every entry of c, which must be valid, with
// sysfs paths under root.
func (c Config) jobs(root string) []job {
	var jobs []job
	for i, e := range c.Thermal {
		e = e.withDefaults()
		jobs = append(jobs, job{fmt.Sprintf("thermal[%d]", i), e.Interval, (&thermal{cfg: e, root: root}).poll})
	}
	for i, e := range c.Hwmon {
		e = e.withDefaults()
		jobs = append(jobs, job{fmt.Sprintf("hwmon[%d]", i), e.Interval, (&hwmon{cfg: e, root: root}).poll})
	}
	for i, e := range c.OneWire {
		e = e.withDefaults()
		jobs = append(jobs, job{fmt.Sprintf("onewire[%d]", i), e.Interval, (&oneWire{cfg: e, root: root}).poll})
	}
	for i, e := range c.Exec {
		e = e.withDefaults()
		jobs = append(jobs, job{fmt.Sprintf("exec[%d]", i), e.Interval, (&command{cfg: e}).poll})
	}
	for i, e := range c.Simulated {
		e = e.withDefaults()
		jobs = append(jobs, job{fmt.Sprintf("simulated[%d]", i), e.Interval, newSimulator(e).poll})
	}
	return jobs
}

// validateInterval reports a problem with an interval field, zero meaning
// the adapter's default.
func validateInterval(d time.Duration) error {
	if d != 0 && (d < MinInterval || d > MaxInterval) {
		return fmt.Errorf("interval: must be 0 (the default) or from %s to %s (got %s)", MinInterval, MaxInterval, d)
	}
	return nil
}

// validatePrefix reports a problem with a prefix field, empty meaning the
// adapter's default.
func validatePrefix(prefix string) error {
	if prefix != "" && !validPath(prefix) {
		return fmt.Errorf("prefix: must be at most 63 bytes of dot-separated parts of letters, digits, '_' or '-' (got %q)", prefix)
	}
	return nil
}

// validateName reports a problem with a required name field.
func validateName(name string) error {
	if !validWord(name) {
		return fmt.Errorf("name: must be 1 to 63 letters, digits, '_' or '-', starting with a letter or digit (got %q)", name)
	}
	return nil
}

// validateUnit reports a problem with a unit field.
func validateUnit(unit string) error {
	if len(unit) > 16 || !utf8.ValidString(unit) || strings.ContainsFunc(unit, unicode.IsControl) {
		return fmt.Errorf("unit: must be at most 16 bytes of UTF-8 without control characters (got %q)", unit)
	}
	return nil
}

// validateSelection reports empty or repeated entries of a filter list
// such as zones or chips.
func validateSelection(field string, list []string) []error {
	var errs []error
	seen := make(map[string]bool)
	for i, s := range list {
		switch {
		case strings.TrimSpace(s) == "":
			errs = append(errs, fmt.Errorf("%s[%d]: must not be empty", field, i))
		case seen[s]:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", field, i, s))
		}
		seen[s] = true
	}
	return errs
}

// validWord reports whether s is 1 to 63 letters, digits, '_' or '-',
// starting with a letter or digit: one part of a sensor name.
func validWord(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := range len(s) {
		if !wordByte(s[i]) {
			return false
		}
	}
	return true
}

// validPath reports whether s is at most 63 bytes of valid words joined
// by dots.
func validPath(s string) bool {
	if len(s) > 63 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !validWord(part) {
			return false
		}
	}
	return true
}

func wordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}
