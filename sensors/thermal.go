package sensors

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// ThermalConfig configures an adapter that reads Linux thermal zones,
// /sys/class/thermal/thermal_zone*/{type,temp}: the SoC temperature of a
// Raspberry Pi, ACPI and package temperatures of a PC.
type ThermalConfig struct {
	// Interval is the time between polls. 0 means 10s.
	Interval time.Duration `yaml:"interval"`

	// Prefix starts the name of each sensor, which is the prefix, '.' and
	// the zone's type made lower case with runs of characters other than
	// letters, digits, '_' and '-' turned into '_': "thermal.cpu-thermal",
	// "thermal.x86_pkg_temp". Zones whose names would be the same, such
	// as two of type acpitz, also get their zone number,
	// "thermal.acpitz.0" and "thermal.acpitz.1" (the kernel may number
	// zones differently after a hardware change). Dot-separated parts of
	// letters, digits, '_' and '-', at most 63 bytes. Empty
	// means "thermal".
	Prefix string `yaml:"prefix"`

	// Zones, if not empty, lists the types of the zones to read, as in
	// their type file ("cpu-thermal"); a listed type that no zone has is
	// reported at each poll. Empty means every zone.
	Zones []string `yaml:"zones"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c ThermalConfig) Validate() error {
	errs := []error{validateInterval(c.Interval), validatePrefix(c.Prefix)}
	errs = append(errs, validateSelection("zones", c.Zones)...)
	return errors.Join(errs...)
}

func (c ThermalConfig) withDefaults() ThermalConfig {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Prefix == "" {
		c.Prefix = "thermal"
	}
	return c
}

// thermal is the adapter of one ThermalConfig entry.
type thermal struct {
	cfg  ThermalConfig
	root string
}

func (a *thermal) poll(_ context.Context, now func() time.Time) ([]Reading, error) {
	dir := filepath.Join(a.root, "sys/class/thermal")
	list, err := listNumbered(dir, "thermal_zone")
	if err != nil {
		return nil, err
	}
	type zone struct {
		numbered
		typ string
	}
	var (
		zones []zone
		errs  []error
		found = make(map[string]int) // zones by type
	)
	for _, z := range list {
		typ, err := readAttr(filepath.Join(z.path, "type"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(a.cfg.Zones) > 0 && !slices.Contains(a.cfg.Zones, typ) {
			continue
		}
		zones = append(zones, zone{z, typ})
		found[typ]++
	}
	for _, want := range a.cfg.Zones {
		if found[want] == 0 {
			errs = append(errs, fmt.Errorf("thermal zone of type %q: %w in %s", want, errNotFound, dir))
		}
	}
	if len(a.cfg.Zones) == 0 && len(list) == 0 {
		errs = append(errs, fmt.Errorf("thermal zones: %w in %s", errNotFound, dir))
	}

	names := make([]string, len(zones))
	uses := make(map[string]int)
	for i, z := range zones {
		names[i] = sanitize(z.typ)
		uses[names[i]]++
	}
	var rs []Reading
	for i, z := range zones {
		milli, err := readInt(filepath.Join(z.path, "temp"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		name := names[i]
		if uses[name] > 1 || name == "" {
			name = joinName(name, strconv.Itoa(z.n))
		}
		rs = append(rs, Reading{
			Sensor: a.cfg.Prefix + "." + name,
			Value:  float64(milli) / 1000,
			Unit:   "C",
			Time:   now(),
		})
	}
	return rs, errors.Join(errs...)
}
