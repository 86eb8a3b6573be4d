package sensors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ExecConfig configures an adapter that runs a command at each poll and
// reads the numbers it prints on standard output, one per line, as:
//
//	23.5            a single number: sensor exec.<name>
//	23.5            one number per line: sensors exec.<name>.0,
//	1013.2          exec.<name>.1, … in order
//	temp 23.5       name and value: sensor exec.<name>.temp
//	pressure=1013.2 name=value: sensor exec.<name>.pressure
//
// The lines of one output are all numbers or all named. Names start with a
// letter and are letters, digits, '_', '-' and '.', at most 64 bytes; each
// may appear once. Blank lines and lines starting with '#' are skipped.
// Numbers are Go floating-point literals ("23.5", "-1e3"); a NaN or
// infinite value is skipped and reported.
//
// The command runs without a shell, with standard input empty, in edged's
// working directory, with the same user as edged, and with an environment
// of only PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
// and LC_ALL=C (so decimal points are points) plus Env. A poll fails, and
// names the command and the offending line, if the command does not start,
// exits with a non-zero status, runs out of time (it is then killed, with
// its process group), prints more than 64 KiB or more than 1024 values, or
// prints anything that does not parse.
type ExecConfig struct {
	// Name names the entry and its sensors: exec.<name> or
	// exec.<name>.<output name>. 1 to 63 letters, digits, '_' or '-',
	// starting with a letter or digit, unique among exec entries.
	// Required.
	Name string `yaml:"name"`

	// Command is the program and its arguments, such as
	// ["/usr/local/bin/read-bme280", "--bus", "1"]. The program is an
	// absolute path or a bare name looked up in the PATH above; to use a
	// shell, say so: ["/bin/sh", "-c", "…"]. Required.
	Command []string `yaml:"command"`

	// Interval is the time between the end of a run and the start of the
	// next. 0 means 30s.
	Interval time.Duration `yaml:"interval"`

	// Timeout bounds a run; the command is killed when it expires. Must
	// be less than the interval. 0 means 5s, or half the interval if that
	// is shorter.
	Timeout time.Duration `yaml:"timeout"`

	// Unit is the unit of every value the command prints, such as "C" or
	// "hPa". Empty means none.
	Unit string `yaml:"unit"`

	// Env lists KEY=VALUE variables added to the command's environment;
	// they override PATH and LC_ALL. Empty means none.
	Env []string `yaml:"env"`
}

// Validate reports every problem in c, each prefixed with its field's YAML
// name.
func (c ExecConfig) Validate() error {
	errs := []error{validateName(c.Name), validateInterval(c.Interval)}
	switch {
	case len(c.Command) == 0:
		errs = append(errs, errors.New("command: must not be empty"))
	case c.Command[0] == "":
		errs = append(errs, errors.New("command[0]: must not be empty"))
	case strings.ContainsRune(c.Command[0], '/') && !filepath.IsAbs(c.Command[0]):
		errs = append(errs, fmt.Errorf("command[0]: must be an absolute path or a bare name looked up in PATH (got %q)", c.Command[0]))
	}
	for i, arg := range c.Command {
		if strings.IndexByte(arg, 0) >= 0 {
			errs = append(errs, fmt.Errorf("command[%d]: must not contain a NUL byte", i))
		}
	}
	interval := c.withDefaults().Interval
	switch {
	case c.Timeout < 0:
		errs = append(errs, fmt.Errorf("timeout: must not be negative (got %s)", c.Timeout))
	case c.Timeout != 0 && c.Timeout >= interval:
		errs = append(errs, fmt.Errorf("timeout: must be less than the interval, %s (got %s)", interval, c.Timeout))
	}
	errs = append(errs, validateUnit(c.Unit))
	for i, kv := range c.Env {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" || strings.IndexByte(kv, 0) >= 0 {
			errs = append(errs, fmt.Errorf("env[%d]: must be KEY=VALUE without NUL bytes (got %q)", i, kv))
		}
	}
	return errors.Join(errs...)
}

func (c ExecConfig) withDefaults() ExecConfig {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = min(5*time.Second, c.Interval/2)
	}
	return c
}

// Limits of a command's run.
const (
	// maxExecOutput bounds standard output: far more than any sensor
	// script prints, little enough to hold on a Pi Zero.
	maxExecOutput = 64 << 10
	// maxExecStderr bounds how much of standard error is kept for the
	// error message of a failed run; the rest is discarded.
	maxExecStderr = 512
	// maxExecValues bounds the values of one output.
	maxExecValues = 1024
	// maxExecName bounds a name in the output.
	maxExecName = 64
	// execWaitDelay bounds the wait for the output pipes to close once
	// the command has exited or been killed: a background child that
	// keeps them open does not hang the adapter.
	execWaitDelay = time.Second
)

// execPath is the PATH of every command, before Env.
const execPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// command is the adapter of one ExecConfig entry.
type command struct {
	cfg ExecConfig
}

func (a *command) poll(ctx context.Context, now func() time.Time) ([]Reading, error) {
	out, err := a.run(ctx)
	if err != nil {
		return nil, err
	}
	t := now()
	values, err := parseExecOutput(out)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", a.cfg.Command, err)
	}
	rs := make([]Reading, len(values))
	for i, v := range values {
		rs[i] = Reading{Sensor: joinName("exec", a.cfg.Name, v.name), Value: v.value, Unit: a.cfg.Unit, Time: t}
	}
	return rs, nil
}

// run runs the command and returns its standard output.
func (a *command) run(ctx context.Context) ([]byte, error) {
	env := append([]string{"PATH=" + execPath, "LC_ALL=C"}, a.cfg.Env...)
	prog, err := lookPath(a.cfg.Command[0], env)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w: %w", a.cfg.Command, errCommand, err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, a.cfg.Command[1:]...)
	cmd.Args[0] = a.cfg.Command[0]
	cmd.Env = env
	stdout := &limitedBuffer{limit: maxExecOutput, fail: true}
	stderr := &limitedBuffer{limit: maxExecStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = execWaitDelay
	killProcessGroup(cmd)

	err = cmd.Run()
	switch {
	case stdout.overflow:
		return nil, fmt.Errorf("command %q: %w: output exceeds %d bytes", a.cfg.Command, errTooLarge, maxExecOutput)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("command %q: %w: timed out after %s", a.cfg.Command, errCommand, a.cfg.Timeout)
	case err != nil:
		msg := strings.TrimSpace(stderr.buf.String())
		if msg == "" {
			return nil, fmt.Errorf("command %q: %w: %w", a.cfg.Command, errCommand, err)
		}
		return nil, fmt.Errorf("command %q: %w: %w: %q", a.cfg.Command, errCommand, err, msg)
	}
	return stdout.buf.Bytes(), nil
}

// lookPath returns the program name names: itself if it has a slash,
// otherwise the first executable of that name in the PATH of env (the last
// PATH there, as exec uses the last of duplicate variables).
func lookPath(name string, env []string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	var path string
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = p
		}
	}
	for dir := range strings.SplitSeq(path, ":") {
		if !filepath.IsAbs(dir) {
			continue // a relative entry would depend on the working directory
		}
		if prog, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return prog, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH %s", name, path)
}

// limitedBuffer keeps the first limit bytes written to it. Past the limit
// it records the overflow and either fails the write, which closes the
// pipe and so stops a chatty command, or discards the rest.
type limitedBuffer struct {
	buf      bytes.Buffer
	limit    int
	fail     bool
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.buf.Write(p[:max(room, 0)])
	b.overflow = true
	if b.fail {
		return 0, errTooLarge
	}
	return len(p), nil
}

// execValue is one value in a command's output.
type execValue struct {
	name  string // "" for a single number, "0", "1"… for unnamed ones
	value float64
}

// parseExecOutput returns the values in a command's output; see
// ExecConfig for the format. Errors name the line by number and content.
func parseExecOutput(out []byte) ([]execValue, error) {
	if len(out) > maxExecOutput {
		return nil, fmt.Errorf("%w: output of %d bytes, limit %d", errTooLarge, len(out), maxExecOutput)
	}
	var (
		values []execValue
		named  = -1 // unknown until the first value: 0 numbers, 1 named
		seen   = make(map[string]bool)
	)
	for i, line := range strings.Split(string(out), "\n") {
		lineErr := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d %q: %s", errSyntax, i+1, truncate(line), fmt.Sprintf(format, args...))
		}
		text := strings.TrimSpace(line)
		if text == "" || text[0] == '#' {
			continue
		}
		var name, number string
		if k, v, ok := strings.Cut(text, "="); ok {
			name, number = strings.TrimSpace(k), strings.TrimSpace(v)
			if name == "" {
				return nil, lineErr("name=value without a name")
			}
		} else {
			switch f := strings.Fields(text); len(f) {
			case 1:
				number = f[0]
			case 2:
				name, number = f[0], f[1]
			default:
				return nil, lineErr("want a number, name value or name=value")
			}
		}
		isNamed := 0
		if name != "" {
			isNamed = 1
			if !validExecName(name) {
				return nil, lineErr("name must start with a letter and be at most %d letters, digits, '_', '-' or '.' parts", maxExecName)
			}
			if seen[name] {
				return nil, lineErr("name %s appears twice", name)
			}
			seen[name] = true
		}
		if named >= 0 && named != isNamed {
			return nil, lineErr("mixes bare numbers and named values")
		}
		named = isNamed
		if len(values) == maxExecValues {
			return nil, lineErr("more than %d values", maxExecValues)
		}
		v, err := strconv.ParseFloat(number, 64)
		if err != nil {
			return nil, lineErr("%q is not a number a float64 holds", truncate(number))
		}
		if name == "" {
			name = strconv.Itoa(len(values))
		}
		values = append(values, execValue{name, v})
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("%w: no values in output", errSyntax)
	}
	if named == 0 && len(values) == 1 {
		values[0].name = ""
	}
	return values, nil
}

// validExecName reports whether s can name a value in a command's output.
func validExecName(s string) bool {
	c := s[0]
	return len(s) <= maxExecName && ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && validDotted(s)
}

// validDotted reports whether s is non-empty parts of letters, digits, '_'
// and '-' joined by dots.
func validDotted(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		for i := range len(part) {
			if !wordByte(part[i]) {
				return false
			}
		}
	}
	return true
}
