package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
