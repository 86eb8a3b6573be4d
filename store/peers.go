package store

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"
)

// KnownPeer is what the store keeps of a peer between restarts, so that a
// rebooted node reconnects without waiting for discovery, and counts a
// peer's silence from when it was last heard.
type KnownPeer struct {
	Version uint     `cbor:"1,keyasint"`
	Addrs   []string `cbor:"2,keyasint,omitempty"` // multiaddrs
	// LastSeen is when the peer was last heard from, Unix milliseconds.
	LastSeen int64 `cbor:"3,keyasint"`
	// Left: it said goodbye at LastSeen.
	Left bool `cbor:"4,keyasint,omitempty"`
}

func knownPeerKey(id string) []byte { return append([]byte{prefixPeer}, id...) }

// SetKnownPeer records what is known of the peer id.
func (db *DB) SetKnownPeer(id string, p KnownPeer) error {
	p.Version = 1
	enc, err := cbor.Marshal(p)
	if err != nil {
		return err
	}
	return db.update(func(txn *badger.Txn) error { return txn.Set(knownPeerKey(id), enc) })
}

// KnownPeers returns every known peer by ID.
func (db *DB) KnownPeers() (map[string]KnownPeer, error) {
	out := map[string]KnownPeer{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{prefixPeer}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var p KnownPeer
			if err := getCBOR(txn, it.Item().KeyCopy(nil), &p); err != nil {
				return err
			}
			out[string(it.Item().Key()[1:])] = p
		}
		return nil
	})
	return out, err
}
