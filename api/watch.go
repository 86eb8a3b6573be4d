package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/edged-dev/edged/kv"
)

// heartbeat is how often an idle watch stream sends a comment, so proxies
// and clients can tell a quiet stream from a dead one.
const heartbeat = 15 * time.Second

// watchBuffer is how many changes a watcher may have pending before it is
// dropped as too slow.
const watchBuffer = 1024

// watch streams key changes as server-sent events: event "put" with the
// key's document, or "delete" with {"ns","key"}. A client that falls
// behind gets event "lagged" and the stream ends; it should reconnect
// and re-read the keys it cares about. The stream ends too when the node
// stops (Shutdown): a client's open stream must not hold the server's
// graceful shutdown until its deadline.
func (a *API) watch(w http.ResponseWriter, r *http.Request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return errors.New("streaming not supported by this connection")
	}
	prefix := r.URL.Query().Get("prefix")
	sub := a.o.Hub.Watch(prefix, watchBuffer)
	defer a.o.Hub.Stop(sub)
	a.m.watchers.Inc()
	defer a.m.watchers.Dec()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": watching\n\n")
	fl.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-a.stopping.Done():
			fl.Flush()
			return nil
		case <-tick.C:
			fmt.Fprint(w, ": heartbeat\n\n")
		case c, ok := <-sub.C:
			if !ok {
				if a.o.Hub.Lagged(sub) {
					fmt.Fprint(w, "event: lagged\ndata: {}\n\n")
				}
				fl.Flush()
				return nil
			}
			event, data := "put", []byte(nil)
			d, err := a.o.KV.Get(c.NS, c.Key)
			switch {
			case errors.Is(err, kv.ErrNotFound):
				event = "delete"
				data, _ = json.Marshal(map[string]string{"ns": c.NS, "key": c.Key})
			case err != nil:
				// The 200 is sent: the error cannot be the answer.
				a.o.Logger.Error("watch stream ended", "ns", c.NS, "key", c.Key, "err", err)
				fl.Flush()
				return nil
			default:
				data, _ = json.Marshal(d)
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		}
		fl.Flush()
	}
}
