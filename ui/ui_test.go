package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlerServesTheEmbeddedAssets: the pages and uPlot come from the
// binary, with their types and a Content-Security-Policy; nothing else.
func TestHandlerServesTheEmbeddedAssets(t *testing.T) {
	h := Handler("/ui/")
	for path, want := range map[string]string{
		"/ui/":                  "text/html",
		"/ui/app.js":            "text/javascript",
		"/ui/app.css":           "text/css",
		"/ui/uPlot.iife.min.js": "text/javascript",
		"/ui/uPlot.min.css":     "text/css",
		"/ui/LICENSE.uPlot":     "text/plain",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, w.Code, w.Header().Get("Content-Type"), want)
		}
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/nope.js", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nope.js: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/", nil))
	if body := w.Body.String(); !strings.Contains(body, `src="uPlot.iife.min.js"`) || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("index.html must load its scripts from the node only")
	}
}
