package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/store"
)

// waitTimeout bounds every wait in these tests; it is generous so that a
// loaded CI machine does not cause flakes.
const waitTimeout = 10 * time.Second

func TestRunServesHealthzAndStops(t *testing.T) {
	cfg := testConfig(t)
	cfg.Node.DataDir = filepath.Join(t.TempDir(), "nested", "data")
	n := newNode(t, cfg)
	done, cancel := runNode(t, n)

	waitReady(t, n, done)
	if info, err := os.Stat(cfg.Node.DataDir); err != nil || !info.IsDir() {
		t.Errorf("data dir not created: %v", err)
	}

	resp, err := http.Get("http://" + n.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "ok" {
		t.Errorf("GET /healthz = %d %+v, want 200 {status: ok}", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

// TestRunStopsWithWatchOpen: a node stopped while a /v1/watch stream is
// open (an open dashboard) ends the stream and stops cleanly, rather than
// waiting all of shutdown_timeout and failing.
func TestRunStopsWithWatchOpen(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownTimeout = waitTimeout
	n := newNode(t, cfg)
	done, cancel := runNode(t, n)
	waitReady(t, n, done)
	resp, err := http.Get("http://" + n.Addr().String() + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, ": watching") {
		t.Fatalf("stream start: %q %v", line, err)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

func TestRunFailsToStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		edit   func(*config.Config)
		wantIs error
		want   []string // substrings of the error
	}{
		{
			name:   "address in use",
			edit:   func(c *config.Config) { c.HTTP.Addr = busy.Addr().String() },
			wantIs: syscall.EADDRINUSE,
			want:   []string{"http.addr", busy.Addr().String(), "address already in use"},
		},
		{
			name:   "data dir is a file",
			edit:   func(c *config.Config) { c.Node.DataDir = file },
			wantIs: syscall.ENOTDIR,
			want:   []string{"node.data_dir", file},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.edit(&cfg)
			n := newNode(t, cfg)
			done, _ := runNode(t, n)
			select {
			case err := <-done:
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("Run = %v, want %v", err, tt.wantIs)
				}
				for _, s := range tt.want {
					if err == nil || !strings.Contains(err.Error(), s) {
						t.Errorf("Run = %v, want it to mention %q", err, s)
					}
				}
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return")
			}
		})
	}
}

// TestRunStopsWhenTheStoreFails checks that a node whose store failed a
// commit after Badger took it (store.ErrFailed) answers the write with an
// error and stops with that error, for its service manager to start it
// again on the data directory opened anew.
func TestRunStopsWhenTheStoreFails(t *testing.T) {
	n := newNode(t, testConfig(t))
	n.commitFault = func() error { return syscall.EIO }
	done, _ := runNode(t, n)
	waitReady(t, n, done)
	resp, err := http.Post("http://"+n.Addr().String()+"/v1/kv/app/c", "application/json", strings.NewReader(`{"type":"counter","op":"inc"}`))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 500 {
			t.Errorf("write on a failed store: %s, want a server error", resp.Status)
		}
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrFailed) {
			t.Errorf("Run = %v, want store.ErrFailed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after the store failed")
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Log.Level = "verbose"
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("New = %v, want an error naming log.level", err)
	}
}

func TestNewNamesNodeAfterHost(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	if n := newNode(t, testConfig(t)); n.name != host {
		t.Errorf("name = %q, want the host name %q", n.name, host)
	}
}

// waitReady waits until n, which runNode runs (done), is ready. It fails
// the test if Run returns first or the node takes longer than waitTimeout.
func waitReady(t testing.TB, n *Node, done <-chan error) {
	t.Helper()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run returned before the node was ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("node not ready in time")
	}
}

// testConfig returns a valid configuration with its data in a temporary
// directory and its HTTP API on a free loopback port.
func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	return cfg
}

// newNode returns a node for cfg that logs to the test's output.
func newNode(t testing.TB, cfg config.Config) *Node {
	t.Helper()
	n, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return n
}

// runNode runs n in a goroutine. It returns a channel that receives Run's
// result and a function that cancels Run's context. The test cancels it and
// waits for Run to return before it ends.
func runNode(t testing.TB, n *Node) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done, cancel
}
