package store

import (
	"encoding/binary"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
)

func nodeKey(id crdt.ReplicaID) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixNode}, uint64(id))
}

// SetNodeRecords stores, in one transaction, what an aggregator knows of
// each node in recs: records the store keeps but does not read, so that
// the aggregator's view of its fleets survives a restart.
func (db *DB) SetNodeRecords(recs map[crdt.ReplicaID][]byte) error {
	return db.update(func(txn *badger.Txn) error {
		for id, rec := range recs {
			if err := txn.Set(nodeKey(id), rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteNodeRecord deletes the record of node id.
func (db *DB) DeleteNodeRecord(id crdt.ReplicaID) error {
	return db.update(func(txn *badger.Txn) error { return txn.Delete(nodeKey(id)) })
}

// NodeRecords returns every record SetNodeRecords stored, by node.
func (db *DB) NodeRecords() (map[crdt.ReplicaID][]byte, error) {
	out := map[crdt.ReplicaID][]byte{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{prefixNode}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 {
				continue
			}
			rec, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[crdt.ReplicaID(binary.BigEndian.Uint64(k[1:]))] = rec
		}
		return nil
	})
	return out, err
}
