// Package mqtttest starts a real Mosquitto broker for tests, on a free
// loopback port with its own configuration and persistence directory. It
// skips the test where mosquitto is not installed, and fails it under
// CI=true, where it must be.
package mqtttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for the broker to listen.
const startTimeout = 10 * time.Second

// Broker is a running (or stopped) Mosquitto.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	// Addr is host:port; URL is tcp://Addr.
	Addr, URL string

	mu     sync.Mutex
	cancel context.CancelFunc
	exited chan struct{}
	out    bytes.Buffer
}

// Start starts a broker with persistence (sessions, QoS 1 messages in
// flight and retained messages survive a restart) that admits anonymous
// clients, and stops it when the test ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
			bin = "/usr/sbin/mosquitto" // Debian's, outside a non-root PATH
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not installed: apt-get install mosquitto")
		}
		t.Skip("mosquitto not installed: apt-get install mosquitto")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // a free port for mosquitto, which cannot take a listener
	dir := t.TempDir()
	b := &Broker{t: t, bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	b.URL = "tcp://" + b.Addr
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 100000\n", port, dir)
	if os.Geteuid() == 0 {
		text += "user root\n" // else it switches to user mosquitto, who cannot read dir
	}
	if err := os.WriteFile(b.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Restart()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("mosquitto output:\n%s", b.out.String())
			b.mu.Unlock()
		}
	})
	return b
}

// Stop stops the broker (SIGTERM: it saves its persistent state) and
// waits for it to exit.
func (b *Broker) Stop() {
	b.mu.Lock()
	cancel, exited := b.cancel, b.exited
	b.cancel = nil
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		<-exited
	}
}

// Restart starts the stopped broker again on the same port and state, and
// waits until it listens.
func (b *Broker) Restart() {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, b.bin, "-c", b.conf)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	w := &lockedWriter{b: b}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		b.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	b.mu.Lock()
	b.cancel, b.exited = cancel, exited
	b.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			b.t.Fatalf("mosquitto exited:\n%s", b.output())
		default:
		}
		if conn, err := net.Dial("tcp", b.Addr); err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on %s after %s", b.Addr, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *Broker) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

type lockedWriter struct{ b *Broker }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.out.Write(p)
}
