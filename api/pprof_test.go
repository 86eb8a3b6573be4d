package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPprof: the profiler is served only when asked for, and only with
// the token.
func TestPprof(t *testing.T) {
	get := func(a *API, path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w
	}
	off, _ := testAPI(t, Options{Token: "secret"})
	if w := get(off, "/debug/pprof/cmdline", "secret"); w.Code != http.StatusNotFound {
		t.Errorf("pprof off: %d, want 404", w.Code)
	}
	on, _ := testAPI(t, Options{Token: "secret", Pprof: true})
	if w := get(on, "/debug/pprof/cmdline", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("pprof on, no token: %d, want 401", w.Code)
	}
	if w := get(on, "/debug/pprof/cmdline", "secret"); w.Code != http.StatusOK {
		t.Errorf("pprof on: cmdline %d, want 200", w.Code)
	}
	if w := get(on, "/debug/pprof/goroutine?debug=1", "secret"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "goroutine profile") {
		t.Errorf("pprof on: goroutine profile %d %.100q", w.Code, w.Body)
	}
}

// TestProfileEndsOnShutdown: a CPU profile in progress does not hold the
// server's shutdown for the seconds it asked for.
func TestProfileEndsOnShutdown(t *testing.T) {
	a, _ := testAPI(t, Options{Pprof: true})
	srv := httptest.NewUnstartedServer(a)
	active := make(chan struct{}, 1)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateActive {
			active <- struct{}{}
		}
	}
	srv.Config.RegisterOnShutdown(a.Shutdown)
	srv.Start()
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/debug/pprof/profile?seconds=60")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("profile: %s", resp.Status)
			}
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-active: // the profile's request is being read, or served
	case err := <-done:
		t.Fatalf("the profile ended before the shutdown: %v", err)
	case <-ctx.Done():
		t.Fatal("the profile's request did not arrive")
	}
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("the profile did not end")
	}
}
