package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/buildinfo"
	"github.com/edged-dev/edged/config"
)

// goodConfig and badConfig are configuration files for "config check".
const (
	goodConfig = "http:\n  addr: 127.0.0.1:9000\n"
	badConfig  = "http:\n  addr: nowhere\nlog:\n  level: verbose\n  format: xml\n"
)

func TestRun(t *testing.T) {
	good := writeFile(t, "good.yaml", goodConfig)
	bad := writeFile(t, "bad.yaml", badConfig)
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    error    // compared with errors.Is
		wantErrMsg []string // substrings of the error; with neither, run must succeed
		wantStdout []string // substrings of stdout
		wantStderr []string // substrings of stderr
	}{
		{
			name:       "version",
			args:       []string{"version"},
			wantStdout: []string{buildinfo.Version, buildinfo.Commit, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH},
		},
		{
			name:       "version with an argument",
			args:       []string{"version", "extra"},
			wantErr:    errUsage,
			wantStderr: []string{"wrong number of arguments", "Usage: edged version"},
		},
		{
			name:       "config check of a good file",
			args:       []string{"config", "check", good},
			wantStdout: []string{good + ": ok"},
		},
		{
			name:       "config check of the shipped file",
			args:       []string{"config", "check", "../../configs/edged.yaml"},
			wantStdout: []string{"../../configs/edged.yaml: ok"},
		},
		{
			name: "config check reports every problem",
			args: []string{"config", "check", bad},
			wantErrMsg: []string{
				"http.addr: must be host:port",
				`log.level: must be one of debug, info, warn, error (got "verbose")`,
				`log.format: must be one of text, json (got "xml")`,
			},
		},
		{
			name:       "config check applies the environment",
			args:       []string{"config", "check", good},
			env:        map[string]string{"EDGED_SHUTDOWN_TIMEOUT": "-1s", "EDGED_LOG_FORMAT": "yaml"},
			wantErrMsg: []string{"shutdown_timeout: must be positive", "log.format: must be one of"},
		},
		{
			name:       "config check of a bad environment variable",
			args:       []string{"config", "check", good},
			env:        map[string]string{"EDGED_SHUTDOWN_TIMEOUT": "soon"},
			wantErrMsg: []string{`EDGED_SHUTDOWN_TIMEOUT: invalid value "soon"`},
		},
		{
			name:       "config check of an unknown field",
			args:       []string{"config", "check", writeFile(t, "typo.yaml", "http:\n  adress: x\n")},
			wantErrMsg: []string{"typo.yaml: http.adress: unknown field (line 2)"},
		},
		{
			name:       "config check of a missing file",
			args:       []string{"config", "check", filepath.Join(t.TempDir(), "missing.yaml")},
			wantErr:    os.ErrNotExist,
			wantErrMsg: []string{"missing.yaml"},
		},
		{
			name:       "config check without a file",
			args:       []string{"config", "check"},
			wantErr:    errUsage,
			wantStderr: []string{"Usage: edged config check FILE"},
		},
		{
			name:       "config without check",
			args:       []string{"config"},
			wantErr:    errUsage,
			wantStderr: []string{"Usage: edged config check FILE"},
		},
		{
			name:       "run with an invalid flag value does not start",
			args:       []string{"run", "--log-level", "verbose", "--http-addr", "127.0.0.1:0"},
			wantErrMsg: []string{`log.level: must be one of debug, info, warn, error (got "verbose")`},
		},
		{
			name:       "run with an unknown flag",
			args:       []string{"run", "--verbose"},
			wantErr:    errUsage,
			wantStderr: []string{"flag provided but not defined: -verbose", "-http-addr"},
		},
		{
			name:       "run -h",
			args:       []string{"run", "-h"},
			wantErr:    flag.ErrHelp,
			wantStderr: []string{"Usage: edged run", "-config FILE", "-data-dir DIR", "-http-addr ADDR", "-log-level LEVEL"},
		},
		{
			name:       "help",
			args:       []string{"help"},
			wantStdout: []string{"Commands:", "run", "version", "config check"},
		},
		{
			name:       "no command",
			args:       nil,
			wantErr:    errUsage,
			wantStderr: []string{"Commands:"},
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantErr:    errUsage,
			wantStderr: []string{`unknown command "frobnicate"`, "Commands:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			err := run(ctx, tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == nil && tt.wantErrMsg == nil:
				if err != nil {
					t.Fatalf("run = %v, want success", err)
				}
			case err == nil:
				t.Fatal("run succeeded, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("run = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.wantErrMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q:\n%v", s, err)
				}
			}
			assertContains(t, "stdout", stdout.String(), tt.wantStdout)
			assertContains(t, "stderr", stderr.String(), tt.wantStderr)
		})
	}
}

// TestRunConfigPrecedence checks that flags override the environment, which
// overrides the file, which overrides the defaults.
func TestRunConfigPrecedence(t *testing.T) {
	file := writeFile(t, "edged.yaml",
		"node:\n  data_dir: /file\n  name: from-file\nhttp:\n  addr: 127.0.0.1:1\nlog:\n  level: debug\n")
	t.Setenv("EDGED_HTTP_ADDR", "127.0.0.1:2")
	t.Setenv("EDGED_MQTT_ADDR", "127.0.0.1:0")
	t.Setenv("EDGED_NODE_DATA_DIR", "/env")
	var stderr bytes.Buffer
	got, err := runConfig([]string{"--config", file, "--data-dir", "/flag"}, &stderr)
	if err != nil {
		t.Fatalf("runConfig: %v\n%s", err, &stderr)
	}
	want := config.Default()
	want.Node.Name = "from-file"
	want.Node.DataDir = "/flag"    // flag over environment and file
	want.HTTP.Addr = "127.0.0.1:2" // environment over file
	want.Log.Level = "debug"       // file over default
	want.MQTT.Addr = "127.0.0.1:0"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runConfig = %+v, want %+v", got, want)
	}
}

// writeFile writes data to a file called name in a fresh directory and
// returns its path.
func writeFile(t testing.TB, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertContains fails t unless text, called what, contains each of want.
func assertContains(t testing.TB, what, text string, want []string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

// waitTimeout bounds every wait in these tests; it is generous so that a
// loaded CI machine does not cause flakes.
const waitTimeout = 30 * time.Second

func TestMemoryLimit(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	if l, ok := memoryLimit("low-memory", none); !ok || l != lowMemoryLimit {
		t.Errorf("low-memory: %d %v", l, ok)
	}
	if _, ok := memoryLimit("standard", none); ok {
		t.Error("standard profile got a limit")
	}
	env := func(string) (string, bool) { return "100MiB", true }
	if _, ok := memoryLimit("low-memory", env); ok {
		t.Error("GOMEMLIMIT was overridden")
	}
}
