package sensors

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// testTime is the clock of tests that do not care about time.
var testTime = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func fixedNow() time.Time { return testTime }

// pollOnce polls once with fixedNow and returns the readings by sensor
// name, failing the test on a repeated name, a wrong time, and the poll's
// error.
func pollOnce(t testing.TB, poll pollFunc) (map[string]Reading, error) {
	t.Helper()
	rs, err := poll(context.Background(), fixedNow)
	byName := make(map[string]Reading)
	for _, r := range rs {
		if _, dup := byName[r.Sensor]; dup {
			t.Errorf("sensor %s read twice", r.Sensor)
		}
		if !r.Time.Equal(testTime) {
			t.Errorf("sensor %s at %v, want %v", r.Sensor, r.Time, testTime)
		}
		byName[r.Sensor] = r
	}
	return byName, err
}

// want is an expected reading.
type want struct {
	value float64
	unit  string
}

// checkReadings compares got with the expected readings exactly: readings
// are decimal sysfs values divided by a power of ten, so equal inputs give
// equal floats.
func checkReadings(t testing.TB, got map[string]Reading, expected map[string]want) {
	t.Helper()
	for name, w := range expected {
		r, ok := got[name]
		switch {
		case !ok:
			t.Errorf("no reading of %s; got %s", name, strings.Join(slices.Sorted(maps.Keys(got)), ", "))
		case r.Value != w.value || r.Unit != w.unit:
			t.Errorf("%s = %v %s, want %v %s", name, r.Value, r.Unit, w.value, w.unit)
		}
	}
	for name := range got {
		if _, ok := expected[name]; !ok {
			t.Errorf("unexpected reading %s = %v", name, got[name].Value)
		}
	}
}

// checkErrors checks that err wraps each of the sentinels and mentions
// each of the fragments.
func checkErrors(t testing.TB, err error, sentinels []error, fragments ...string) {
	t.Helper()
	if err == nil {
		if len(sentinels) > 0 || len(fragments) > 0 {
			t.Errorf("no error, want one matching %v %q", sentinels, fragments)
		}
		return
	}
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Errorf("error does not wrap %v: %v", s, err)
		}
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not mention %q: %v", f, err)
		}
	}
}

var (
	nan    = math.NaN()
	negInf = math.Inf(-1)
)

// sameValues reports whether a and b hold the same names and values, NaN
// equal to NaN.
func sameValues(a, b []execValue) bool {
	return slices.EqualFunc(a, b, func(x, y execValue) bool {
		return x.name == y.name && (x.value == y.value || math.IsNaN(x.value) && math.IsNaN(y.value))
	})
}

// checkValid checks that err is nil if want is empty, and otherwise
// mentions want.
func checkValid(t testing.TB, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("invalid: %v", err)
	case want != "" && err == nil:
		t.Errorf("valid, want an error mentioning %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not mention %q", err, want)
	}
}
