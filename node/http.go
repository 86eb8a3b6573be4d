package node

import (
	"io"
	"net/http"

	"github.com/edged-dev/edged/store"
)

// routes returns the handler of the local HTTP API.
func routes(db *store.DB) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /v1/backup", backup(db))
	return mux
}

// healthz answers liveness probes: the process is up and serving HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"ok"}`+"\n")
}

// backup streams a consistent snapshot of the store (edged backup uses it
// while the node runs). A failure midway cuts the stream, so the client
// sees a truncated backup that restore refuses.
func backup(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := db.Backup(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	})
}
