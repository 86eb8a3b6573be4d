package localmqtt

import (
	"context"
	"errors"
	"strings"
	"testing"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case <-timeAfter():
		t.Fatal("not ready")
	}
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
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timeAfter():
		t.Fatal("Run did not return")
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
