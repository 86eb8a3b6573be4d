package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/engine/enginetest"
	"github.com/edged-dev/edged/kv"
	"github.com/edged-dev/edged/series"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWatchEndsOnShutdown: the server's graceful shutdown calls
// API.Shutdown (node.go registers it with RegisterOnShutdown), which
// ends an open /v1/watch stream (the dashboard keeps one); otherwise
// http.Server.Shutdown would run into its deadline.
func TestWatchEndsOnShutdown(t *testing.T) {
	a, _ := testAPI(t, Options{})
	srv := httptest.NewUnstartedServer(a)
	srv.Config.RegisterOnShutdown(a.Shutdown)
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, ": watching") {
		t.Fatalf("stream start: %q %v", line, err)
	}
	// The stream is open and its handler waits for changes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a watch stream open: %v (the stream was not ended)", err)
	}
}

// TestWatchSurvivesAKeyItCannotRead: a change to a key that the store
// holds (store.ValidateName: any UTF-8 name, as peers' entries are
// checked) but kv.ValidateKey refuses (an empty segment, a control
// character) is left out of watch streams rather than ending them.
func TestWatchSurvivesAKeyItCannotRead(t *testing.T) {
	hub := kv.NewHub()
	db, eng := enginetest.Start(t, 7, engine.Config{OnCommit: hub.Notify})
	a := New(Options{DB: db, KV: kv.New(db, eng), Series: series.New(db, eng, nil, nil), Hub: hub,
		Registry: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(a)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/watch?prefix=app/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": watching") {
		t.Fatalf("stream start: %q %v", line, err)
	}
	for _, name := range []string{"app/a//b", "app/x\x01", "app/ok"} { // as a peer's entries could hold
		if _, err := eng.Do(ctx, engine.Set(name, []byte(`1`))); err != nil {
			t.Fatal(err)
		}
	}
	var got strings.Builder
	for {
		line, err := br.ReadString('\n')
		got.WriteString(line)
		if strings.Contains(line, `"key":"ok"`) {
			break // the stream went on past the unreadable keys
		}
		if err != nil {
			t.Fatalf("stream ended before app/ok's event (%v); it held:\n%s", err, got.String())
		}
	}
	if s := got.String(); strings.Contains(s, "error") || strings.Count(s, "event:") != 1 {
		t.Errorf("the stream held more than app/ok's event:\n%s", s)
	}
}
