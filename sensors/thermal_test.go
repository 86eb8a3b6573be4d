package sensors

import (
	"testing"
)

func TestThermal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      ThermalConfig
		root     string
		want     map[string]want
		errs     []error
		mentions []string
	}{{
		name: "every zone",
		root: "testdata/sysfs",
		want: map[string]want{
			"thermal.cpu-thermal":  {45.277, "C"},
			"thermal.acpitz.1":     {27.8, "C"},
			"thermal.acpitz.2":     {29.8, "C"},
			"thermal.x86_pkg_temp": {51, "C"},
		},
	}, {
		name: "selected zones and prefix",
		cfg:  ThermalConfig{Prefix: "board.t", Zones: []string{"cpu-thermal", "gpu-thermal"}},
		root: "testdata/sysfs",
		want: map[string]want{
			"board.t.cpu-thermal": {45.277, "C"},
		},
		errs:     []error{errNotFound},
		mentions: []string{`"gpu-thermal"`},
	}, {
		name: "faulty zones",
		root: "testdata/faulty",
		want: map[string]want{
			"thermal.cpu-thermal": {45.277, "C"},
		},
		errs:     []error{errSyntax},
		mentions: []string{"thermal_zone1/temp", "thermal_zone2/temp", `"4x000"`},
	}, {
		name:     "no thermal zones",
		root:     t.TempDir(),
		want:     map[string]want{},
		errs:     []error{errNotFound},
		mentions: []string{"sys/class/thermal"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			a := &thermal{cfg: tc.cfg.withDefaults(), root: tc.root}
			got, err := pollOnce(t, a.poll)
			checkReadings(t, got, tc.want)
			checkErrors(t, err, tc.errs, tc.mentions...)
		})
	}
}
