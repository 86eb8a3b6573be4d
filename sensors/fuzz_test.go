package sensors

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseW1Slave checks that parseW1Slave never panics, accepts only
// readings in the DS18B20's range, and explains every rejection with one
// of the package's errors.
func FuzzParseW1Slave(f *testing.F) {
	for _, root := range []string{"testdata/sysfs", "testdata/faulty"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "w1_slave" {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				f.Add(data)
			}
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Add([]byte(w1Slave(ds18b20(-55*16), -55000)))
	f.Add([]byte(w1Slave(ds18b20(0x0550), 85000)))
	f.Add([]byte(w1Slave(ds18b20(1), 62)))
	f.Add([]byte(""))
	f.Add([]byte("\n\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseW1Slave(data)
		if err != nil {
			if !anyIs(err, errSyntax, errCRC, errTooLarge, errPowerOnReset, errOutOfRange) {
				t.Fatalf("error %v wraps none of the package's errors", err)
			}
			return
		}
		if math.IsNaN(c) || c < -55 || c > 125 {
			t.Fatalf("accepted %v °C", c)
		}
		if len(data) > maxW1SlaveBytes || !strings.Contains(string(data), " YES") {
			t.Fatalf("accepted %q", data)
		}
	})
}

// FuzzParseExecOutput checks that parseExecOutput never panics, respects
// its limits, returns names that make valid sensor names, and that what it
// returns, printed back, parses to the same values.
func FuzzParseExecOutput(f *testing.F) {
	for _, seed := range []string{
		"42\n", "1\n2.5\n-3e2\n", "temp 21.5\npressure=1013.25\n", "# c\n\n a = 1 \n",
		"a NaN\nb +Inf\n", "a 1\n2\n", "1 2 3\n", "a..b 1", "=1", "0x1p-2\n", "1_0\n", "a\t1\r\nb\t2\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		values, err := parseExecOutput(out)
		if err != nil {
			if !anyIs(err, errSyntax, errTooLarge) {
				t.Fatalf("error %v wraps neither errSyntax nor errTooLarge", err)
			}
			return
		}
		if len(values) == 0 || len(values) > maxExecValues {
			t.Fatalf("%d values", len(values))
		}
		var b strings.Builder
		seen := make(map[string]bool)
		for i, v := range values {
			switch {
			case v.name == "" && len(values) == 1:
			case v.name == strconv.Itoa(i):
			case validExecName(v.name) && !seen[v.name]:
			default:
				t.Fatalf("value %d named %q", i, v.name)
			}
			seen[v.name] = true
			number := strconv.FormatFloat(v.value, 'g', -1, 64)
			if v.name == "" || v.name == strconv.Itoa(i) {
				b.WriteString(number + "\n")
			} else {
				b.WriteString(v.name + " " + number + "\n")
			}
			if !validDotted(joinName("exec", "x", v.name)) {
				t.Fatalf("sensor name exec.x.%s is not a valid name", v.name)
			}
		}
		again, err := parseExecOutput([]byte(b.String()))
		if err != nil || !sameValues(again, values) {
			t.Fatalf("%q parsed as %v, printed as %q, parsed again as %v, %v", out, values, b.String(), again, err)
		}
	})
}

func anyIs(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
