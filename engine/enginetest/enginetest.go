// Package enginetest starts a store and an engine for tests of the
// packages built on them.
package enginetest

import (
	"context"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

// Start opens a store in a temporary directory with durability none and
// runs an engine on it as replica; both stop when the test ends.
func Start(tb testing.TB, replica crdt.ReplicaID, cfg engine.Config) (*store.DB, *engine.Engine) {
	tb.Helper()
	db, err := store.Open(store.Options{Dir: tb.TempDir(), Durability: store.None})
	if err != nil {
		tb.Fatal(err)
	}
	eng := engine.New(db, replica, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		db.Close()
	})
	return db, eng
}
