package kv

import (
	"strings"
	"sync"
)

// Hub fans the names of changed keys out to watchers. The engine reports
// every commit to Notify; each watcher has a bounded buffer, and one that
// falls behind is dropped (its channel closed, Lagged true) rather than
// slowing the write path. Watchers read the current state when they
// handle a name, so bursts of changes to one key cost one read.
type Hub struct {
	mu   sync.Mutex
	subs map[*Watch]struct{}
}

// Watch is one watcher's subscription.
type Watch struct {
	// C receives the ns and key of each change; it is closed when the
	// watcher lagged or was stopped.
	C      <-chan Change
	c      chan Change
	prefix string
	lagged bool // guarded by the hub's mu
}

// Change names a changed key.
type Change struct{ NS, Key string }

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Watch]struct{}{}} }

// Watch subscribes to changes of keys whose "ns/key" starts with prefix,
// with room for buf pending changes.
func (h *Hub) Watch(prefix string, buf int) *Watch {
	c := make(chan Change, buf)
	w := &Watch{C: c, c: c, prefix: prefix}
	h.mu.Lock()
	h.subs[w] = struct{}{}
	h.mu.Unlock()
	return w
}

// Stop ends a subscription; its channel is closed. Stopping twice is
// harmless.
func (h *Hub) Stop(w *Watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[w]; ok {
		delete(h.subs, w)
		close(w.c)
	}
}

// Lagged reports whether w was dropped for falling behind.
func (h *Hub) Lagged(w *Watch) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return w.lagged
}

// Notify reports changed store names; names outside the user namespaces,
// and names that are not keys the API can read (a peer's entry may hold
// a name the store takes but ValidateKey refuses, such as "app/a//b"), are
// ignored. It never blocks.
func (h *Hub) Notify(names []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		return
	}
	for _, name := range names {
		ns, key, ok := Split(name)
		if !ok || ValidateKey(key) != nil {
			continue
		}
		for w := range h.subs {
			if !strings.HasPrefix(name, w.prefix) {
				continue
			}
			select {
			case w.c <- Change{NS: ns, Key: key}:
			default:
				w.lagged = true
				delete(h.subs, w)
				close(w.c)
			}
		}
	}
}
