package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shutdownTimeout is the shutdown_timeout of the node the end-to-end test
// starts.
const shutdownTimeout = 5 * time.Second

// TestEndToEnd builds the edged binary and runs it as a user would.
func TestEndToEnd(t *testing.T) {
	bin := buildEdged(t)

	t.Run("run serves /healthz and stops on SIGTERM", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		p := start(t, bin, []string{"EDGED_LOG_FORMAT=json", "EDGED_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String()},
			"run", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info")

		var addr string
		select {
		case addr = <-p.addr:
		case <-p.done:
			t.Fatalf("edged exited before it started: %v", p.err)
		case <-time.After(waitTimeout):
			t.Fatal("no \"node started\" log line in time")
		}
		waitHealthy(t, "http://"+addr+"/healthz")
		if _, err := os.Stat(dataDir); err != nil {
			t.Errorf("data dir: %v", err)
		}

		// A running node holds its data directory: backup goes through
		// its HTTP API.
		backup := filepath.Join(t.TempDir(), "node.backup")
		edged(t, bin, "backup", "--data-dir", dataDir, "--http-addr", addr, backup)

		// The client commands talk to the running node.
		if out := edged(t, bin, "put", "--http-addr", addr, "app/room/1", `{"type":"counter","op":"inc","by":2}`); !strings.Contains(out, `"value": 2`) {
			t.Errorf("edged put printed %q", out)
		}
		if out := edged(t, bin, "get", "--http-addr", addr, "app/room/1"); !strings.Contains(out, `"key": "room/1"`) {
			t.Errorf("edged get printed %q", out)
		}
		if out := edged(t, bin, "status", "--http-addr", addr); !strings.Contains(out, `"replica"`) {
			t.Errorf("edged status printed %q", out)
		}
		if out, err := exec.Command(bin, "get", "--http-addr", addr, "app/none").CombinedOutput(); err == nil || !strings.Contains(string(out), "HTTP 404") {
			t.Errorf("edged get of a missing key: %v %s, want an error naming HTTP 404", err, out)
		}
		id := edged(t, bin, "id", "--data-dir", dataDir)
		if !strings.Contains(id, "peer_id: 12D3Koo") || !strings.Contains(id, "replica: ") {
			t.Errorf("edged id printed %q", id)
		}

		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Allow for process exit on top of the shutdown itself.
		select {
		case <-p.done:
		case <-time.After(shutdownTimeout + 5*time.Second):
			t.Fatalf("edged did not exit within shutdown_timeout %s of SIGTERM", shutdownTimeout)
		}
		if p.err != nil {
			t.Errorf("edged exited with %v, want status 0", p.err)
		}

		// Restore into a new directory; a stopped node's directory is backed
		// up directly, and both backups load.
		restored := filepath.Join(t.TempDir(), "restored")
		edged(t, bin, "restore", "--data-dir", restored, backup)
		edged(t, bin, "backup", "--data-dir", restored, filepath.Join(t.TempDir(), "again.backup"))
		if out, err := exec.Command(bin, "restore", "--data-dir", restored, backup).CombinedOutput(); err == nil ||
			!strings.Contains(string(out), "not empty") {
			t.Errorf("restore over existing data: %v, %s", err, out)
		}
	})

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{
			name:       "version",
			args:       []string{"version"},
			wantStdout: []string{"edged dev (commit unknown, go"},
		},
		{
			name:       "config check of a good file",
			args:       []string{"config", "check", "../../configs/edged.yaml"},
			wantStdout: []string{"../../configs/edged.yaml: ok"},
		},
		{
			name:     "config check of a bad file",
			args:     []string{"config", "check", writeFile(t, "bad.yaml", badConfig)},
			wantCode: 1,
			wantStderr: []string{
				"edged: http.addr: must be host:port",
				"edged: log.level: must be one of debug, info, warn, error",
				"edged: log.format: must be one of text, json",
			},
		},
		{
			name:       "run with an invalid configuration",
			args:       []string{"run", "--http-addr", "127.0.0.1"},
			wantCode:   1,
			wantStderr: []string{"edged: http.addr: must be host:port"},
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantCode:   2,
			wantStderr: []string{`unknown command "frobnicate"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(t.Context(), bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Errorf("exit status %d (%v), want %d", code, err, tt.wantCode)
			}
			assertContains(t, "stdout", stdout.String(), tt.wantStdout)
			assertContains(t, "stderr", stderr.String(), tt.wantStderr)
		})
	}
}

// built is the edged binary the end-to-end tests run, built once for them
// all into a directory TestMain removes.
var built = struct {
	once     sync.Once
	dir, bin string
	err      error
}{}

// buildEdged returns the path of the edged binary, building it on first
// use; it skips the test in -short mode.
func buildEdged(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "edged-e2e"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "edged")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// process is a running edged binary.
type process struct {
	cmd  *exec.Cmd
	addr chan string   // receives the address from the "node started" log line
	done chan struct{} // closed when the process has exited
	err  error         // the result of Wait, once done is closed

	mu     sync.Mutex
	stderr strings.Builder
	p2p    []string // the node's p2p addresses, once it started
}

// start runs bin with args and env added to the environment. The process
// is killed, if still running, when the test ends; its stderr is logged if
// the test failed.
func start(t testing.TB, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{
		cmd:  exec.CommandContext(t.Context(), bin, args...),
		addr: make(chan string, 1),
		done: make(chan struct{}),
	}
	p.cmd.Env = append(append(os.Environ(), "EDGED_MQTT_ADDR=127.0.0.1:0"), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg, Addr string
				P2P       []string
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "node started" {
				p.mu.Lock()
				p.p2p = rec.P2P
				p.mu.Unlock()
				p.addr <- rec.Addr
			}
		}
		p.err = p.cmd.Wait() // only after reading all of stderr
		close(p.done)
	}()
	t.Cleanup(func() {
		<-p.done // t.Context is cancelled by now, which kills the process
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("edged stderr:\n%s", &p.stderr)
		}
	})
	return p
}

// waitHealthy polls url until it answers 200 OK, failing t if it does not
// within waitTimeout.
// edged runs the binary to completion and returns its standard output,
// failing the test if it exits non-zero.
func edged(t testing.TB, bin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edged %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// waitAtLeast polls count until it reaches n, failing with its last value
// after waitTimeout.
func waitAtLeast(t *testing.T, what string, count func() int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d %s, want %d", count(), what, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postOK posts a JSON body to base+path and reports whether the node
// answered 200 (an acknowledged write).
func postOK(base, path, body string) bool {
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == 200
}

func waitHealthy(t testing.TB, url string) {
	t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("GET %s: not healthy within %s: %v", url, waitTimeout, err)
		}
	}
}
