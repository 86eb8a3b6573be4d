package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
