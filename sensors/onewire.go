package sensors

import (
	"bytes"
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

// OneWireConfig configures an adapter that reads DS18B20 temperature
// sensors through the kernel's w1-therm driver,
// /sys/bus/w1/devices/28-*/w1_slave, in °C ("C"). Each reading takes the
// kernel about 750 ms (a 12-bit conversion), one sensor after the other, so
// keep the interval well above that times the number of sensors.
//
// A reading is rejected, and reported, if the kernel or this package finds
// a CRC mismatch in the sensor's scratchpad, if the scratchpad is all
// zeros (a shorted bus passes the CRC), if it holds the power-on reset
// value 85 °C with the reset value in its reserved byte (the sensor lost
// power before converting), or if the temperature is outside the DS18B20's
// range of −55 to 125 °C.
type OneWireConfig struct {
	// Interval is the time between polls. 0 means 30s.
	Interval time.Duration `yaml:"interval"`

	// Prefix starts the name of each sensor, which is the prefix, '.' and
	// the sensor's 1-Wire ID, as in its directory name: "w1.28-0316a2795eff".
	// Dot-separated parts of letters, digits, '_' and '-', at most 63
	// bytes. Empty means "w1".
	Prefix string `yaml:"prefix"`

	// Devices, if not empty, lists the IDs of the sensors to read, such
	// as "28-0316a2795eff"; a listed sensor that is absent is reported at
	// each poll. Empty means every DS18B20 (family 28) on the bus.
	Devices []string `yaml:"devices"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c OneWireConfig) Validate() error {
	errs := []error{validateInterval(c.Interval), validatePrefix(c.Prefix)}
	errs = append(errs, validateSelection("devices", c.Devices)...)
	for i, id := range c.Devices {
		if !validDS18B20ID(id) {
			errs = append(errs, fmt.Errorf("devices[%d]: must be 28- and 12 lower-case hex digits (got %q)", i, id))
		}
	}
	return errors.Join(errs...)
}

func (c OneWireConfig) withDefaults() OneWireConfig {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Prefix == "" {
		c.Prefix = "w1"
	}
	return c
}

// validDS18B20ID reports whether id names a DS18B20 as the kernel does:
// family code 28, '-', 48-bit serial number in lower-case hex.
func validDS18B20ID(id string) bool {
	serial, ok := strings.CutPrefix(id, "28-")
	if !ok || len(serial) != 12 {
		return false
	}
	for i := range len(serial) {
		if c := serial[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// oneWire is the adapter of one OneWireConfig entry.
type oneWire struct {
	cfg  OneWireConfig
	root string
}

func (a *oneWire) poll(ctx context.Context, now func() time.Time) ([]Reading, error) {
	dir := filepath.Join(a.root, "sys/bus/w1/devices")
	ids := a.cfg.Devices
	if len(ids) == 0 {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range entries {
			if validDS18B20ID(e.Name()) {
				ids = append(ids, e.Name())
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("DS18B20 sensors: %w in %s", errNotFound, dir)
		}
		slices.Sort(ids)
	}

	var (
		rs   []Reading
		errs []error
	)
	for _, id := range ids {
		if ctx.Err() != nil {
			// Each read takes most of a second: stop early.
			return rs, ctx.Err()
		}
		path := filepath.Join(dir, id, "w1_slave")
		data, err := readLimited(path, maxW1SlaveBytes)
		if os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("DS18B20 %s: %w in %s", id, errNotFound, dir))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := parseW1Slave(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		rs = append(rs, Reading{Sensor: a.cfg.Prefix + "." + id, Value: c, Unit: "C", Time: now()})
	}
	return rs, errors.Join(errs...)
}

// Limits of a w1_slave file.
const (
	// maxW1SlaveBytes bounds the file: the kernel writes 75 bytes or so.
	maxW1SlaveBytes = 256
	// ds18b20Min and ds18b20Max are the DS18B20's range, in m°C.
	ds18b20Min = -55000
	ds18b20Max = 125000
	// powerOnResetRaw is the temperature register at power-on (+85 °C),
	// and powerOnResetByte6 the reserved byte 6 then; after a conversion
	// a genuine DS18B20 sets byte 6 to 0x10 − (LSB & 0x0F), 0x10 for a
	// real 85 °C.
	powerOnResetRaw   = 0x0550
	powerOnResetByte6 = 0x0c
)

// parseW1Slave returns the temperature, in °C, in the content of a DS18B20's
// w1_slave file, which the kernel writes as the 9 bytes of the scratchpad,
// its CRC verdict, the same bytes again and the temperature in m°C:
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
//
// It checks the scratchpad's CRC itself, rejects the power-on reset value
// and values out of the sensor's range; see OneWireConfig.
func parseW1Slave(data []byte) (float64, error) {
	if len(data) > maxW1SlaveBytes {
		return 0, fmt.Errorf("%w: w1_slave of %d bytes, limit %d", errTooLarge, len(data), maxW1SlaveBytes)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) != 2 {
		return 0, fmt.Errorf("%w: w1_slave has %d lines, want 2", errSyntax, len(lines))
	}

	// Line 1: scratchpad, ':', crc=XX (the CRC the kernel computed), and
	// whether it matched the scratchpad's last byte.
	f := strings.Fields(string(lines[0]))
	if len(f) != 12 || f[9] != ":" {
		return 0, fmt.Errorf("%w: w1_slave line 1: want 9 bytes, ':', crc= and YES or NO", errSyntax)
	}
	pad, err := parseScratchpad(f[:9])
	if err != nil {
		return 0, fmt.Errorf("w1_slave line 1: %w", err)
	}
	crcText, ok := strings.CutPrefix(f[10], "crc=")
	kernelCRC, err := strconv.ParseUint(crcText, 16, 8)
	if !ok || len(crcText) != 2 || err != nil {
		return 0, fmt.Errorf("%w: w1_slave line 1: want crc=XX, got %q", errSyntax, truncate(f[10]))
	}
	switch f[11] {
	case "YES":
	case "NO":
		// The kernel's second line then holds the last good scratchpad,
		// not this one: nothing more to read.
		return 0, fmt.Errorf("%w: kernel reports crc=%02x for scratchpad ending %02x", errCRC, kernelCRC, pad[8])
	default:
		return 0, fmt.Errorf("%w: w1_slave line 1: want YES or NO, got %q", errSyntax, truncate(f[11]))
	}
	if crc := crc8(pad[:8]); crc != pad[8] || byte(kernelCRC) != crc {
		return 0, fmt.Errorf("%w: computed %02x, scratchpad has %02x, kernel says %02x", errCRC, crc, pad[8], kernelCRC)
	}
	if pad == [9]byte{} {
		return 0, fmt.Errorf("%w: all-zero scratchpad (shorted bus or no sensor); its CRC matches but it is no reading", errCRC)
	}

	// Line 2: the same scratchpad, then t=temperature in m°C.
	f = strings.Fields(string(lines[1]))
	if len(f) != 10 {
		return 0, fmt.Errorf("%w: w1_slave line 2: want 9 bytes and t=", errSyntax)
	}
	pad2, err := parseScratchpad(f[:9])
	if err != nil {
		return 0, fmt.Errorf("w1_slave line 2: %w", err)
	}
	if pad2 != pad {
		return 0, fmt.Errorf("%w: w1_slave lines 1 and 2 hold different scratchpads", errSyntax)
	}
	tText, ok := strings.CutPrefix(f[9], "t=")
	if !ok || len(tText) > 8 {
		return 0, fmt.Errorf("%w: w1_slave line 2: want t=, got %q", errSyntax, truncate(f[9]))
	}
	milli, err := strconv.Atoi(tText)
	if err != nil {
		return 0, fmt.Errorf("%w: w1_slave line 2: t=%q is not an integer", errSyntax, tText)
	}

	raw := uint16(pad[1])<<8 | uint16(pad[0])
	if milli == 85000 && raw == powerOnResetRaw && pad[6] == powerOnResetByte6 {
		return 0, fmt.Errorf("%w: 85 °C with reset scratchpad (the sensor lost power or has not converted)", errPowerOnReset)
	}
	if milli < ds18b20Min || milli > ds18b20Max {
		return 0, fmt.Errorf("%w: t=%d m°C is outside the DS18B20's −55 to 125 °C", errOutOfRange, milli)
	}
	return float64(milli) / 1000, nil
}

// parseScratchpad parses 9 bytes written as two hex digits each.
func parseScratchpad(fields []string) ([9]byte, error) {
	var pad [9]byte
	for i, s := range fields {
		b, err := strconv.ParseUint(s, 16, 8)
		if len(s) != 2 || err != nil {
			return pad, fmt.Errorf("%w: scratchpad byte %d is %q, want two hex digits", errSyntax, i, truncate(s))
		}
		pad[i] = byte(b)
	}
	return pad, nil
}

// crc8 returns the Dallas/Maxim 1-Wire CRC-8 of data: polynomial
// x⁸+x⁵+x⁴+1 (0x31), processed least significant bit first (0x8C
// reflected), initial value 0. Over a scratchpad's first 8 bytes it equals
// the 9th.
func crc8(data []byte) byte {
	var crc byte
	for _, b := range data {
		for range 8 {
			mix := (crc ^ b) & 1
			crc >>= 1
			if mix != 0 {
				crc ^= 0x8c
			}
			b >>= 1
		}
	}
	return crc
}
