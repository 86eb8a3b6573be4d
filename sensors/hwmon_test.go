package sensors

import (
	"os"
	"path/filepath"
	"testing"
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
