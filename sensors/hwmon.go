package sensors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HwmonConfig configures an adapter that reads hardware monitoring chips,
// /sys/class/hwmon/hwmon*: CPU and board temperatures, voltages, fan
// speeds, power and current monitors (INA219, INA226), humidity sensors
// (SHT3x, HTU21). It reads every channel's *_input file and converts it:
// temp (m°C) to "C", in (mV) to "V", fan to "RPM", power (µW) to "W",
// curr (mA) to "A", humidity (m%) to "%".
type HwmonConfig struct {
	// Interval is the time between polls. 0 means 10s.
	Interval time.Duration `yaml:"interval"`

	// Prefix starts the name of each sensor, which is the prefix, the
	// chip's name and the channel's label, or the channel itself if it
	// has no label, joined by '.': "hwmon.coretemp.temp1",
	// "hwmon.coretemp.package_id_0" (label "Package id 0"). Names and
	// labels are made lower case, with runs of characters other than
	// letters, digits, '_' and '-' turned into '_'. Chips sharing a name
	// also get their hwmon number, "hwmon.nvme.1.composite" (the kernel
	// may number them differently after a reboot); channels whose labels
	// clash are named by channel. Dot-separated parts of letters, digits,
	// '_' and '-', at most 63 bytes. Empty means "hwmon".
	Prefix string `yaml:"prefix"`

	// Chips, if not empty, lists the names of the chips to read, as in
	// their name file ("coretemp", "ina219"); a listed name that no chip
	// has is reported at each poll. Empty means every chip.
	Chips []string `yaml:"chips"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c HwmonConfig) Validate() error {
	errs := []error{validateInterval(c.Interval), validatePrefix(c.Prefix)}
	errs = append(errs, validateSelection("chips", c.Chips)...)
	return errors.Join(errs...)
}

func (c HwmonConfig) withDefaults() HwmonConfig {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Prefix == "" {
		c.Prefix = "hwmon"
	}
	return c
}

// hwmonKind is a kind of hwmon channel: how to convert its values.
type hwmonKind struct {
	unit string
	// div is what a raw value is divided by to be in unit. Dividing,
	// rather than multiplying by 1e-3, gives the nearest float64 to the
	// decimal value: 45277 / 1000 is exactly 45.277's float64.
	div float64
}

// hwmonKinds are the channel kinds read, by file name prefix.
var hwmonKinds = map[string]hwmonKind{
	"temp":     {"C", 1e3},
	"in":       {"V", 1e3},
	"fan":      {"RPM", 1},
	"power":    {"W", 1e6},
	"curr":     {"A", 1e3},
	"humidity": {"%", 1e3},
}

// hwmon is the adapter of one HwmonConfig entry.
type hwmon struct {
	cfg  HwmonConfig
	root string
}

// hwmonChip is a chip found under /sys/class/hwmon.
type hwmonChip struct {
	numbered
	name  string // from its name file
	attrs string // directory of its attribute files
}

func (a *hwmon) poll(_ context.Context, now func() time.Time) ([]Reading, error) {
	dir := filepath.Join(a.root, "sys/class/hwmon")
	list, err := listNumbered(dir, "hwmon")
	if err != nil {
		return nil, err
	}
	var (
		chips []hwmonChip
		errs  []error
		found = make(map[string]bool)
	)
	for _, d := range list {
		chip, err := openChip(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(a.cfg.Chips) > 0 && !slices.Contains(a.cfg.Chips, chip.name) {
			continue
		}
		chips = append(chips, chip)
		found[chip.name] = true
	}
	for _, want := range a.cfg.Chips {
		if !found[want] {
			errs = append(errs, fmt.Errorf("hwmon chip %q: %w in %s", want, errNotFound, dir))
		}
	}
	if len(a.cfg.Chips) == 0 && len(list) == 0 {
		errs = append(errs, fmt.Errorf("hwmon chips: %w in %s", errNotFound, dir))
	}

	names := make([]string, len(chips))
	uses := make(map[string]int)
	for i, c := range chips {
		names[i] = sanitize(c.name)
		uses[names[i]]++
	}
	var rs []Reading
	for i, c := range chips {
		name := names[i]
		if uses[name] > 1 || name == "" {
			name = joinName(name, strconv.Itoa(c.n))
		}
		chipRs, err := a.readChip(c, a.cfg.Prefix+"."+name, now)
		rs = append(rs, chipRs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rs, errors.Join(errs...)
}

// openChip finds the name and the attribute directory of the chip in d.
// Old drivers keep both in the device directory instead.
func openChip(d numbered) (hwmonChip, error) {
	name, err := readAttr(filepath.Join(d.path, "name"))
	if err == nil {
		return hwmonChip{d, name, d.path}, nil
	}
	device := filepath.Join(d.path, "device")
	if name, err2 := readAttr(filepath.Join(device, "name")); err2 == nil {
		return hwmonChip{d, name, device}, nil
	}
	return hwmonChip{}, err
}

// hwmonChannel is one *_input file of a chip.
type hwmonChannel struct {
	kind   string // "temp"
	n      int    // 1
	id     string // "temp1"
	suffix string // the last part of its sensor name
}

// readChip reads every channel of chip, naming its sensors base.label.
func (a *hwmon) readChip(chip hwmonChip, base string, now func() time.Time) ([]Reading, error) {
	entries, err := os.ReadDir(chip.attrs)
	if err != nil {
		return nil, err
	}
	var channels []hwmonChannel
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), "_input")
		if !ok {
			continue
		}
		kind := strings.TrimRight(id, "0123456789")
		n, err := strconv.Atoi(id[len(kind):])
		if _, known := hwmonKinds[kind]; !known || err != nil {
			continue
		}
		channels = append(channels, hwmonChannel{kind: kind, n: n, id: id})
	}
	slices.SortFunc(channels, func(a, b hwmonChannel) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.n, b.n))
	})

	// Name channels by label, falling back to the channel id for those
	// without a usable label and for those whose names clash.
	for i, ch := range channels {
		channels[i].suffix = ch.id
		if label, err := readAttr(filepath.Join(chip.attrs, ch.id+"_label")); err == nil && sanitize(label) != "" {
			channels[i].suffix = sanitize(label)
		}
	}
	settleClashes(channels)

	var (
		rs   []Reading
		errs []error
	)
	for _, ch := range channels {
		raw, err := readInt(filepath.Join(chip.attrs, ch.id+"_input"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kind := hwmonKinds[ch.kind]
		rs = append(rs, Reading{
			Sensor: base + "." + ch.suffix,
			Value:  float64(raw) / kind.div,
			Unit:   kind.unit,
			Time:   now(),
		})
	}
	return rs, errors.Join(errs...)
}

// settleClashes gives channels unique suffixes, each a channel's label or
// its id: every channel whose suffix clashes takes its id, round after
// round, since taking its id can make a new clash with a channel labelled
// with that id (temp1 labelled "temp2", temp2 labelled "temp3", temp3 and
// temp4 labelled "a" take three rounds). Ids are unique, so every clash
// involves a label and each round with a clash names one more channel by
// id: there are at most as many rounds as channels. A channel keeps its
// label unless its name clashed, directly or through such a chain.
func settleClashes(channels []hwmonChannel) {
	uses := make(map[string]int, len(channels))
	for clash := true; clash; {
		clear(uses)
		for _, ch := range channels {
			uses[ch.suffix]++
		}
		clash = false
		for i, ch := range channels {
			if uses[ch.suffix] > 1 && ch.suffix != ch.id {
				channels[i].suffix = ch.id
				clash = true
			}
		}
	}
}
