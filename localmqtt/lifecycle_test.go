package localmqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestRunDrainsQueueOnStop checks that inputs queued when Run's context is
// cancelled still reach the Backend before Run returns.
func TestRunDrainsQueueOnStop(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.Workers = 1
	srv, err := New(cfg, "n1", be, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cancel, wait := run(t, srv)
	defer cancel()
	c, err := tryConnect(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, p+"/readings/block", false, "1")
	select {
	case <-be.started:
	case <-timeAfter():
		t.Fatal("worker did not start")
	}
	publish(t, c, p+"/readings/queued", false, "2")
	eventually(t, "reading queued", func() bool { return len(srv.queues[0]) == 1 })
	c.Disconnect(0)

	cancel()
	close(be.unblock)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"block", "queued"} {
		select {
		case got := <-be.ingests:
			if got.sensor != want {
				t.Errorf("ingested %s, want %s", got.sensor, want)
			}
		default:
			t.Fatalf("%s not ingested before Run returned", want)
		}
	}
}

// brokenWatch is a Backend whose Watch fails.
type brokenWatch struct{ *fakeBackend }

func (brokenWatch) Watch(context.Context, func(string, string, []byte)) error {
	return errors.New("watch broke")
}

func TestRunFailsWhenWatchFails(t *testing.T) {
	srv, err := New(testConfig(), "n1", brokenWatch{newFake()}, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "watch broke") {
			t.Fatalf("Run = %v, want the watch error", err)
		}
	case <-timeAfter():
		t.Fatal("Run did not return")
	}
}

func TestRunFailsWhenAddrInUse(t *testing.T) {
	first := start(t, testConfig(), newFake())
	cfg := testConfig()
	cfg.Addr = first.Addr().String()
	srv, err := New(cfg, "n1", newFake(), Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "addr:") {
		t.Fatalf("Run = %v, want an addr error", err)
	}
}

// TestStopWhileClientsComeAndGo stops the broker, round after round, while
// clients connect and disconnect: mochi's own Close could deadlock then
// (closeBroker).
func TestStopWhileClientsComeAndGo(t *testing.T) {
	for round := range 20 {
		srv, err := New(testConfig(), "n1", newFake(), Options{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		cancel, wait := run(t, srv)
		addr := srv.Addr().String()
		var sessions atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() { comeAndGo(addr, fmt.Sprintf("r%d-c%d", round, i), stop, &sessions) })
		}
		eventually(t, "clients connecting", func() bool { return sessions.Load() >= 20 })
		cancel()
		if err := wait(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		close(stop)
		wg.Wait()
	}
}

// comeAndGo connects to addr as a new MQTT 3.1.1 client, waits for the
// CONNACK and hangs up, again and again until stop is closed, counting
// the sessions that got a CONNACK.
func comeAndGo(addr, prefix string, stop <-chan struct{}, sessions *atomic.Int64) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue // the broker has stopped listening
		}
		id := fmt.Sprintf("%s-%d", prefix, n)
		// CONNECT: protocol MQTT level 4, clean session, keep-alive 60 s.
		body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err == nil {
			if _, err := io.ReadFull(conn, make([]byte, 4)); err == nil {
				sessions.Add(1)
			}
		}
		_ = conn.Close()
	}
}

// flakyListener fails its first Accept, as when the process is out of file
// descriptors.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, errors.New("accept: too many open files")
	}
	return l.Listener.Accept()
}

func TestListenerAcceptsAfterAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: ln}
	b := mqtt.New(&mqtt.Options{Logger: testLogger()})
	if err := b.AddHook(&passwordHook{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.AddListener(newListener("t", flaky, b)); err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	connect(t, ln.Addr().String())
	if !flaky.failed.Load() {
		t.Fatal("the listener never saw the failed Accept")
	}
}
