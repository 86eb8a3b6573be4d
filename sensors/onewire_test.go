package sensors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestOneWire(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      OneWireConfig
		root     string
		want     map[string]want
		errs     []error
		mentions []string
	}{{
		name: "every sensor",
		root: "testdata/sysfs",
		want: map[string]want{
			"w1.28-0316a2795eff": {23.125, "C"},
			"w1.28-0416b3a1c2ff": {-10.5, "C"},
		},
	}, {
		name: "selected sensors and prefix",
		cfg:  OneWireConfig{Prefix: "tank", Devices: []string{"28-0416b3a1c2ff", "28-aaaaaaaaaaaa"}},
		root: "testdata/sysfs",
		want: map[string]want{
			"tank.28-0416b3a1c2ff": {-10.5, "C"},
		},
		errs:     []error{errNotFound},
		mentions: []string{"28-aaaaaaaaaaaa"},
	}, {
		name: "faulty sensors",
		root: "testdata/faulty",
		want: map[string]want{
			"w1.28-0316a2795eff": {23.125, "C"},
		},
		errs: []error{errCRC, errPowerOnReset, errNotFound},
		mentions: []string{
			"28-01191ee0b3aa/w1_slave: sensors: CRC mismatch: computed 09, scratchpad has 57",
			"28-02131a6d54aa/w1_slave: sensors: CRC mismatch: kernel reports",
			"28-3c01d075a1b2/w1_slave: sensors: power-on reset",
			"28-00000000ab12/w1_slave: sensors: CRC mismatch: all-zero scratchpad",
			"DS18B20 28-05167c9a04ff: sensors: not found",
		},
	}, {
		name:     "no sensors",
		root:     t.TempDir(),
		want:     map[string]want{},
		errs:     []error{errNotFound},
		mentions: []string{"sys/bus/w1/devices"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			a := &oneWire{cfg: tc.cfg.withDefaults(), root: tc.root}
			got, err := pollOnce(t, a.poll)
			checkReadings(t, got, tc.want)
			checkErrors(t, err, tc.errs, tc.mentions...)
		})
	}
}

// w1Slave returns the content of a w1_slave file as the kernel writes it
// for a scratchpad, with the correct CRC, and a temperature.
func w1Slave(pad [8]byte, milli int) string {
	var b strings.Builder
	for _, x := range pad {
		fmt.Fprintf(&b, "%02x ", x)
	}
	crc := crc8(pad[:])
	bytes := fmt.Sprintf("%s%02x ", b.String(), crc)
	return fmt.Sprintf("%s: crc=%02x YES\n%st=%d\n", bytes, crc, bytes, milli)
}

// ds18b20 returns the scratchpad of a genuine DS18B20 that has converted
// the raw temperature (in 1/16 °C).
func ds18b20(raw int16) [8]byte {
	return [8]byte{byte(raw), byte(uint16(raw) >> 8), 0x4b, 0x46, 0x7f, 0xff, byte(0x10 - raw&0x0f), 0x10}
}

func TestParseW1Slave(t *testing.T) {
	good := "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
	for _, tc := range []struct {
		name string
		in   string
		want float64
		err  error
	}{
		{"good", good, 23.125, nil},
		{"no final newline", strings.TrimSuffix(good, "\n"), 23.125, nil},
		{"below zero", w1Slave(ds18b20(-168), -10500), -10.5, nil},
		{"lowest", w1Slave(ds18b20(-55*16), -55000), -55, nil},
		{"highest", w1Slave(ds18b20(125*16), 125000), 125, nil},
		{"genuine 85 °C", w1Slave(ds18b20(0x0550), 85000), 85, nil},
		{"power-on reset", w1Slave([8]byte{0x50, 0x05, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10}, 85000), 0, errPowerOnReset},
		{"too cold", w1Slave(ds18b20(-56*16), -56000), 0, errOutOfRange},
		{"too hot", w1Slave(ds18b20(0x07d1), 125062), 0, errOutOfRange},
		{"kernel says NO", "ff ff ff ff ff ff ff ff ff : crc=c9 NO\n72 01 4b 46 7f ff 0e 10 57 t=-62\n", 0, errCRC},
		{"CRC byte wrong", strings.ReplaceAll(good, "10 57", "10 58"), 0, errCRC},
		{"kernel CRC wrong", strings.Replace(good, "crc=57", "crc=58", 1), 0, errCRC},
		{"data byte flipped", strings.ReplaceAll(good, "0e 10", "0e 11"), 0, errCRC},
		{"all zero", w1Slave([8]byte{}, 0), 0, errCRC},
		{"lines differ", strings.Replace(good, "72 01 4b 46 7f ff 0e 10 57 t", "72 01 4b 46 7f ff 0e 10 56 t", 1), 0, errSyntax},
		{"one line", strings.SplitAfter(good, "\n")[0], 0, errSyntax},
		{"three lines", good + good[:10], 0, errSyntax},
		{"empty", "", 0, errSyntax},
		{"short scratchpad", "72 01 4b 46 7f ff 0e 10 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, errSyntax},
		{"one-digit byte", "72 1 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, errSyntax},
		{"not hex", "72 0g 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, errSyntax},
		{"no verdict", "72 01 4b 46 7f ff 0e 10 57 : crc=57 MAYBE\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, errSyntax},
		{"no t=", strings.Replace(good, "t=", "x=", 1), 0, errSyntax},
		{"t not a number", strings.Replace(good, "t=23125", "t=23.125", 1), 0, errSyntax},
		{"t huge", strings.Replace(good, "t=23125", "t=99999999999999999999", 1), 0, errSyntax},
		{"too long", good + strings.Repeat(" ", maxW1SlaveBytes), 0, errTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseW1Slave([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("parseW1Slave = %v, %v; want error %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseW1Slave = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCRC8(t *testing.T) {
	// The example of Maxim's application note 27: a ROM code of family
	// 02, serial 1C B8 01 00 00 00, whose CRC byte is A2.
	if got := crc8([]byte{0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00}); got != 0xa2 {
		t.Errorf("crc8 = %02x, want a2", got)
	}
	// A CRC over data and its own CRC is 0.
	data := []byte{0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10}
	if got := crc8(append(data, crc8(data))); got != 0 {
		t.Errorf("crc8 over data and CRC = %02x, want 0", got)
	}
}
