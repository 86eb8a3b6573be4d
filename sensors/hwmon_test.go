package sensors

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestHwmon(t *testing.T) {
	all := map[string]want{
		// Labels, made lower case and without spaces.
		"hwmon.coretemp.package_id_0": {52, "C"},
		"hwmon.coretemp.core_0":       {49, "C"},
		"hwmon.coretemp.core_1":       {51, "C"},
		// No labels, and two labels that clash: named by channel.
		"hwmon.nct6775.in0":    {1.104, "V"},
		"hwmon.nct6775.fan1":   {1245, "RPM"},
		"hwmon.nct6775.fan2":   {0, "RPM"},
		"hwmon.nct6775.systin": {38, "C"},
		"hwmon.nct6775.temp2":  {41, "C"},
		"hwmon.nct6775.temp3":  {-2.5, "C"},
		// Every unit.
		"hwmon.ina219.in0":       {0.012, "V"},
		"hwmon.ina219.in1":       {5.104, "V"},
		"hwmon.ina219.curr1":     {0.452, "A"},
		"hwmon.ina219.power1":    {2.306, "W"},
		"hwmon.sht3x.temp1":      {21.456, "C"},
		"hwmon.sht3x.humidity1":  {45.123, "%"},
		"hwmon.nvme.4.composite": {38.85, "C"},
		"hwmon.nvme.5.composite": {40.85, "C"},
		// Attributes under device/, as old drivers have them.
		"hwmon.lm75.temp1": {24.5, "C"},
	}
	for _, tc := range []struct {
		name     string
		cfg      HwmonConfig
		root     string
		want     map[string]want
		errs     []error
		mentions []string
	}{{
		name: "every chip",
		root: "testdata/sysfs",
		want: all,
	}, {
		name: "selected chips and prefix",
		cfg:  HwmonConfig{Prefix: "pi", Chips: []string{"sht3x", "ina219", "lm75a"}},
		root: "testdata/sysfs",
		want: map[string]want{
			"pi.ina219.in0":      {0.012, "V"},
			"pi.ina219.in1":      {5.104, "V"},
			"pi.ina219.curr1":    {0.452, "A"},
			"pi.ina219.power1":   {2.306, "W"},
			"pi.sht3x.temp1":     {21.456, "C"},
			"pi.sht3x.humidity1": {45.123, "%"},
		},
		errs:     []error{errNotFound},
		mentions: []string{`"lm75a"`},
	}, {
		name:     "faulty chip",
		root:     "testdata/faulty",
		want:     map[string]want{"hwmon.broken.temp2": {30, "C"}},
		errs:     []error{errSyntax},
		mentions: []string{"temp1_input", `"oops"`},
	}, {
		name:     "no chips",
		root:     t.TempDir(),
		want:     map[string]want{},
		errs:     []error{errNotFound},
		mentions: []string{"sys/class/hwmon"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			a := &hwmon{cfg: tc.cfg.withDefaults(), root: tc.root}
			got, err := pollOnce(t, a.poll)
			checkReadings(t, got, tc.want)
			checkErrors(t, err, tc.errs, tc.mentions...)
		})
	}
}

// TestHwmonSymlinks reads a tree laid out as sysfs really is: the entries
// of /sys/class/hwmon are symbolic links into /sys/devices.
func TestHwmonSymlinks(t *testing.T) {
	root := t.TempDir()
	chip := filepath.Join(root, "sys/devices/platform/coretemp.0/hwmon/hwmon3")
	class := filepath.Join(root, "sys/class/hwmon")
	for _, dir := range []string{chip, class} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"name": "coretemp\n", "temp1_input": "47000\n"} {
		if err := os.WriteFile(filepath.Join(chip, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../devices/platform/coretemp.0/hwmon/hwmon3", filepath.Join(class, "hwmon3")); err != nil {
		t.Fatal(err)
	}
	a := &hwmon{cfg: HwmonConfig{}.withDefaults(), root: root}
	got, err := pollOnce(t, a.poll)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, got, map[string]want{"hwmon.coretemp.temp1": {47, "C"}})
}

// TestHwmonLabelClashChain: labels that are other channels' ids, in a
// chain three long, still give every channel a name of its own.
func TestHwmonLabelClashChain(t *testing.T) {
	root := t.TempDir()
	chip := filepath.Join(root, "sys/class/hwmon/hwmon0")
	if err := os.MkdirAll(chip, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"name":        "chip",
		"temp1_input": "1000",
		"temp1_label": "temp2",
		"temp2_input": "2000",
		"temp2_label": "temp3",
		"temp3_input": "3000",
		"temp3_label": "a",
		"temp4_input": "4000",
		"temp4_label": "a",
		"temp5_input": "5000",
		"temp5_label": "b", // clashes with nothing: keeps its label
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(chip, n), []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := &hwmon{cfg: HwmonConfig{}.withDefaults(), root: root}
	got, err := pollOnce(t, a.poll) // fails on a sensor read twice
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, got, map[string]want{
		"hwmon.chip.temp1": {1, "C"},
		"hwmon.chip.temp2": {2, "C"},
		"hwmon.chip.temp3": {3, "C"},
		"hwmon.chip.temp4": {4, "C"},
		"hwmon.chip.b":     {5, "C"},
	})
}

// TestSettleClashesProperties: any labels, drawn from the channels' own
// ids and a few words, give unique names, each the channel's label or
// its id; names that were unique to begin with are kept; and wherever the
// former two rounds gave unique names, the names are theirs, so no
// sensor of a working setup is renamed.
func TestSettleClashesProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 10).Draw(rt, "channels")
		channels := make([]hwmonChannel, n)
		ids := make([]string, n)
		for i := range channels {
			kind := rapid.SampledFrom([]string{"temp", "in", "fan"}).Draw(rt, "kind")
			channels[i] = hwmonChannel{kind: kind, n: i, id: fmt.Sprintf("%s%d", kind, i)}
			ids[i] = channels[i].id
		}
		words := append(slices.Clone(ids), "a", "b", "")
		for i := range channels {
			channels[i].suffix = channels[i].id
			if l := rapid.SampledFrom(words).Draw(rt, "label"); l != "" {
				channels[i].suffix = l
			}
		}
		start := slices.Clone(channels)
		twoRounds := slices.Clone(channels)
		for range 2 { // the former scheme, the reference for stability
			uses := make(map[string]int)
			for _, ch := range twoRounds {
				uses[ch.suffix]++
			}
			for i, ch := range twoRounds {
				if uses[ch.suffix] > 1 {
					twoRounds[i].suffix = ch.id
				}
			}
		}

		settleClashes(channels)

		seen := make(map[string]int)
		for i, ch := range channels {
			if j, dup := seen[ch.suffix]; dup {
				rt.Fatalf("%s and %s both named %q (labels %v)", channels[j].id, ch.id, ch.suffix, suffixes(start))
			}
			seen[ch.suffix] = i
			if ch.suffix != ch.id && ch.suffix != start[i].suffix {
				rt.Fatalf("%s named %q, neither its label %q nor its id", ch.id, ch.suffix, start[i].suffix)
			}
		}
		if unique(start) && !slices.Equal(suffixes(channels), suffixes(start)) {
			rt.Fatalf("unique labels %v renamed to %v", suffixes(start), suffixes(channels))
		}
		if unique(twoRounds) && !slices.Equal(suffixes(channels), suffixes(twoRounds)) {
			rt.Fatalf("labels %v: named %v, formerly %v", suffixes(start), suffixes(channels), suffixes(twoRounds))
		}
	})
}

func suffixes(channels []hwmonChannel) []string {
	s := make([]string, len(channels))
	for i, ch := range channels {
		s[i] = ch.suffix
	}
	return s
}

func unique(channels []hwmonChannel) bool {
	seen := make(map[string]bool)
	for _, ch := range channels {
		seen[ch.suffix] = true
	}
	return len(seen) == len(channels)
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"cpu-thermal":  "cpu-thermal",
		"Package id 0": "package_id_0",
		"  Core 1 ":    "core_1",
		"a.b/c":        "a_b_c",
		"CPUTIN":       "cputin",
		"température":  "temp_rature",
		"_x_":          "x",
		"...":          "",
		"":             "",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
