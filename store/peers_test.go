package store

import (
	"path/filepath"
	"testing"

	"github.com/edged-dev/edged/crdt"
)

// reopened opens a store, calls write, and returns the store reopened.
func reopened(t *testing.T, write func(*DB) error) *DB {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(Options{Dir: dir, Durability: None})
	if err != nil {
		t.Fatal(err)
	}
	if err := write(db); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(Options{Dir: dir, Durability: None}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestKnownPeersSurviveReopen(t *testing.T) {
	want := KnownPeer{Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}, LastSeen: 1234, Left: true}
	db := reopened(t, func(db *DB) error { return db.SetKnownPeer("12D3KooWpeer", want) })
	got, err := db.KnownPeers()
	if p := got["12D3KooWpeer"]; err != nil || len(got) != 1 || p.LastSeen != 1234 || !p.Left || p.Addrs[0] != want.Addrs[0] {
		t.Errorf("known peers %+v, %v", got, err)
	}
}

func TestNodeRecordsSurviveReopen(t *testing.T) {
	db := reopened(t, func(db *DB) error {
		if err := db.SetNodeRecords(map[crdt.ReplicaID][]byte{1: []byte("one"), 1 << 60: []byte("big")}); err != nil {
			return err
		}
		return db.SetNodeRecords(map[crdt.ReplicaID][]byte{1: []byte("uno")})
	})
	got, err := db.NodeRecords()
	if err != nil || len(got) != 2 || string(got[1]) != "uno" || string(got[1<<60]) != "big" {
		t.Errorf("node records %q, %v", got, err)
	}
}
