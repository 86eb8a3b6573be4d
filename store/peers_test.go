package store

import (
	"path/filepath"
	"testing"

	"github.com/edged-dev/edged/crdt"
)

func TestKnownPeersSurviveReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(Options{Dir: dir, Durability: None})
	if err != nil {
		t.Fatal(err)
	}
	want := KnownPeer{Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}, LastSeen: 1234, Left: true}
	if err := db.SetKnownPeer("12D3KooWpeer", want); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(Options{Dir: dir, Durability: None}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.KnownPeers()
	if p := got["12D3KooWpeer"]; err != nil || len(got) != 1 || p.LastSeen != 1234 || !p.Left || p.Addrs[0] != want.Addrs[0] {
		t.Errorf("known peers %+v, %v", got, err)
	}
}

func TestNodeRecordsSurviveReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(Options{Dir: dir, Durability: None})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetNodeRecords(map[crdt.ReplicaID][]byte{1: []byte("one"), 1 << 60: []byte("big")}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetNodeRecords(map[crdt.ReplicaID][]byte{1: []byte("uno")}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(Options{Dir: dir, Durability: None}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.NodeRecords()
	if err != nil || len(got) != 2 || string(got[1]) != "uno" || string(got[1<<60]) != "big" {
		t.Errorf("node records %q, %v", got, err)
	}
}
