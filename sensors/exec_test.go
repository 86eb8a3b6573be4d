package sensors

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script returns the command that runs the shell script testdata/exec/name.
func script(t testing.TB, name string) []string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata/exec", name))
	if err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", path}
}

func TestExec(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      ExecConfig
		want     map[string]want
		errs     []error
		mentions []string
	}{{
		name: "named values",
		cfg:  ExecConfig{Name: "bme", Command: script(t, "pairs.sh"), Unit: "x", Env: []string{"FOO=7"}},
		want: map[string]want{
			"exec.bme.temperature": {21.5, "x"},
			"exec.bme.pressure":    {1013.25, "x"},
			"exec.bme.humidity":    {40, "x"},
			"exec.bme.home_unset":  {1, "x"},
			"exec.bme.foo":         {7, "x"},
		},
	}, {
		name: "numbers",
		cfg:  ExecConfig{Name: "n", Command: script(t, "numbers.sh")},
		want: map[string]want{"exec.n.0": {1, ""}, "exec.n.1": {2.5, ""}, "exec.n.2": {-300, ""}},
	}, {
		name: "single number, program looked up in PATH",
		cfg:  ExecConfig{Name: "one", Command: []string{"sh", script(t, "single.sh")[1]}},
		want: map[string]want{"exec.one": {42, ""}},
	}, {
		name:     "non-zero exit",
		cfg:      ExecConfig{Name: "f", Command: script(t, "fail.sh")},
		want:     map[string]want{},
		errs:     []error{errCommand},
		mentions: []string{"fail.sh", "exit status 3", "i2c bus error"},
	}, {
		name:     "unparsable line",
		cfg:      ExecConfig{Name: "g", Command: script(t, "garbage.sh")},
		want:     map[string]want{},
		errs:     []error{errSyntax},
		mentions: []string{"garbage.sh", `line 2 "temp2 twenty"`},
	}, {
		name:     "too much output",
		cfg:      ExecConfig{Name: "b", Command: script(t, "big.sh")},
		want:     map[string]want{},
		errs:     []error{errTooLarge},
		mentions: []string{"big.sh"},
	}, {
		name:     "timeout",
		cfg:      ExecConfig{Name: "s", Command: script(t, "slow.sh"), Timeout: 100 * time.Millisecond},
		want:     map[string]want{},
		errs:     []error{errCommand},
		mentions: []string{"slow.sh", "timed out after 100ms"},
	}, {
		name:     "no such program",
		cfg:      ExecConfig{Name: "m", Command: []string{"edged-no-such-program"}},
		want:     map[string]want{},
		errs:     []error{errCommand},
		mentions: []string{`"edged-no-such-program" not found in PATH`},
	}, {
		name:     "program fails to start",
		cfg:      ExecConfig{Name: "m", Command: []string{"/nonexistent/edged-sensor"}},
		want:     map[string]want{},
		errs:     []error{errCommand},
		mentions: []string{"/nonexistent/edged-sensor"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a := &command{cfg: tc.cfg.withDefaults()}
			start := time.Now()
			got, err := pollOnce(t, a.poll)
			checkReadings(t, got, tc.want)
			checkErrors(t, err, tc.errs, tc.mentions...)
			// slow.sh's sleep is killed with it: the run ends at its
			// timeout, not 30 s later.
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("poll took %s", elapsed)
			}
		})
	}
}

func TestExecCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &command{cfg: ExecConfig{Name: "s", Command: script(t, "slow.sh")}.withDefaults()}
	if _, err := a.poll(ctx, fixedNow); err == nil {
		t.Fatal("poll with a cancelled context succeeded")
	}
}

func TestParseExecOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []execValue // nil: an error mentioning err
		err  string
	}{
		{"single", "42\n", []execValue{{"", 42}}, ""},
		{"single without newline", "-1.5e3", []execValue{{"", -1500}}, ""},
		{"single with CRLF", "7\r\n", []execValue{{"", 7}}, ""},
		{"numbers", "1\n\n2\n# note\n3\n", []execValue{{"0", 1}, {"1", 2}, {"2", 3}}, ""},
		{"pairs", "a 1\nb=2\n c = 3 \nd.e-f_g\t4\n", []execValue{{"a", 1}, {"b", 2}, {"c", 3}, {"d.e-f_g", 4}}, ""},
		{"non-finite values pass", "a NaN\nb -Inf\n", []execValue{{"a", nan}, {"b", negInf}}, ""},
		{"empty", "", nil, "no values"},
		{"only comments", "# nothing\n\n", nil, "no values"},
		{"mixed", "a 1\n2\n", nil, `line 2 "2": mixes`},
		{"mixed other way", "1\na=2\n", nil, `line 2 "a=2": mixes`},
		{"three fields", "a 1 C\n", nil, "line 1"},
		{"not a number", "a one\n", nil, `"one" is not a number`},
		{"out of range", "a 1e999\n", nil, `"1e999" is not a number`},
		{"empty value", "a=\n", nil, "line 1"},
		{"no name", "=1\n", nil, "without a name"},
		{"name starts with digit", "1a 1\n", nil, "name must start with a letter"},
		{"two numbers", "1 2\n", nil, "name must start with a letter"},
		{"bad name", "a/b 1\n", nil, "name must"},
		{"empty name part", "a..b 1\n", nil, "name must"},
		{"long name", strings.Repeat("a", maxExecName+1) + " 1\n", nil, "name must"},
		{"duplicate", "a 1\nb 2\na 3\n", nil, "line 3 \"a 3\": name a appears twice"},
		{"too many", strings.Repeat("1\n", maxExecValues+1), nil, "more than 1024 values"},
		{"too large", strings.Repeat("#", maxExecOutput+1), nil, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseExecOutput([]byte(tc.in))
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseExecOutput = %v, %v; want an error mentioning %q", got, err, tc.err)
				}
				if !errors.Is(err, errSyntax) && !errors.Is(err, errTooLarge) {
					t.Errorf("error %v wraps neither errSyntax nor errTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameValues(got, tc.want) {
				t.Fatalf("parseExecOutput = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExecValidate(t *testing.T) {
	ok := ExecConfig{Name: "x", Command: []string{"/bin/true"}}
	for _, tc := range []struct {
		name string
		edit func(*ExecConfig)
		want string // "" for valid
	}{
		{"minimal", func(*ExecConfig) {}, ""},
		{"bare program", func(c *ExecConfig) { c.Command = []string{"vcgencmd", "measure_temp"} }, ""},
		{"no name", func(c *ExecConfig) { c.Name = "" }, "name: must be 1 to 63"},
		{"dotted name", func(c *ExecConfig) { c.Name = "a.b" }, "name: must be"},
		{"no command", func(c *ExecConfig) { c.Command = nil }, "command: must not be empty"},
		{"empty program", func(c *ExecConfig) { c.Command = []string{""} }, "command[0]: must not be empty"},
		{"relative program", func(c *ExecConfig) { c.Command = []string{"./read.sh"} }, "command[0]: must be an absolute path"},
		{"NUL", func(c *ExecConfig) { c.Command = []string{"/bin/echo", "a\x00b"} }, "command[1]: must not contain a NUL"},
		{"timeout at interval", func(c *ExecConfig) { c.Interval, c.Timeout = time.Second, time.Second }, "timeout: must be less than the interval, 1s (got 1s)"},
		{"timeout over default interval", func(c *ExecConfig) { c.Timeout = time.Minute }, "timeout: must be less than the interval, 30s"},
		{"negative timeout", func(c *ExecConfig) { c.Timeout = -time.Second }, "timeout: must not be negative"},
		{"short interval", func(c *ExecConfig) { c.Interval = time.Millisecond }, "interval: must be 0 (the default) or from 10ms to 24h0m0s (got 1ms)"},
		{"env", func(c *ExecConfig) { c.Env = []string{"A=1", "B="} }, ""},
		{"bad env", func(c *ExecConfig) { c.Env = []string{"A=1", "B"} }, `env[1]: must be KEY=VALUE`},
		{"unit", func(c *ExecConfig) { c.Unit = "°C" }, ""},
		{"bad unit", func(c *ExecConfig) { c.Unit = "C\n" }, "unit: must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			checkValid(t, c.Validate(), tc.want)
		})
	}
}

func TestExecDefaultTimeout(t *testing.T) {
	for interval, want := range map[time.Duration]time.Duration{
		0:                     5 * time.Second,
		time.Minute:           5 * time.Second,
		4 * time.Second:       2 * time.Second,
		20 * time.Millisecond: 10 * time.Millisecond,
	} {
		c := ExecConfig{Interval: interval}.withDefaults()
		if c.Timeout != want {
			t.Errorf("interval %s: default timeout %s, want %s", interval, c.Timeout, want)
		}
	}
}
