// Package ui is edged's built-in web dashboard, served at /ui/: a node
// view (identity, health, store, sensors with live sparklines and a
// zoomable chart, keys, peers, uplink, shedding) and, on an aggregator, the
// fleet view. The assets are embedded (go:embed): nothing is downloaded at
// run time, so it works on a LAN with no internet. The pages are static;
// every datum comes from the /v1 API, with the API's bearer token when one
// is set (the page asks for it and keeps it in the browser).
//
// Charts use uPlot 1.6.32 (MIT licence, static/LICENSE.uPlot), vendored as
// its minified build: no framework and no build step, so `make build`
// stays Go-only.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard's assets under prefix (such as "/ui/").
func Handler(prefix string) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
