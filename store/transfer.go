package store

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// Record is one name's stored record (EncodeRecord), as state transfer
// carries it.
type Record struct {
	Name string
	Enc  []byte
}

// Records returns the records of the names after after and up to upto (to
// the end when upto is "") for which keep is true (every name when keep is
// nil), in name order: as many as fit in maxBytes (at least one; all when
// maxBytes is 0), and whether they are all there are in that range.
func (db *DB) Records(after, upto string, maxBytes int, keep func(name string) bool) ([]Record, bool, error) {
	var out []Record
	complete := true
	err := db.bdb.View(func(txn *badger.Txn) error {
		prefix := []byte{prefixName}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
		defer it.Close()
		size := 0
		for it.Seek(append(nameKey(after), 0)); it.Valid(); it.Next() {
			name := string(it.Item().Key()[1:])
			if upto != "" && name > upto {
				break
			}
			if keep != nil && !keep(name) {
				continue
			}
			if maxBytes > 0 && len(out) > 0 && size+int(it.Item().ValueSize()) > maxBytes {
				complete = false
				break
			}
			enc, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, Record{Name: name, Enc: enc})
			size += len(enc)
		}
		return nil
	})
	return out, complete, err
}

// Transfer is the progress of the state transfer this node is catching up
// by (see package replication): the server, the last name joined, and the
// server's context and log vector when the transfer began. It is stored
// with each page, so a restarted node resumes where it was.
type Transfer struct {
	Version    uint               `cbor:"1,keyasint"`
	From       string             `cbor:"2,keyasint"`
	Cursor     string             `cbor:"3,keyasint"`
	Base       crdt.Context       `cbor:"4,keyasint"`
	BaseVector crdt.VersionVector `cbor:"5,keyasint"`
}

// Transfer returns the stored state transfer progress, or nil.
func (db *DB) Transfer() (*Transfer, error) {
	var t Transfer
	err := db.bdb.View(func(txn *badger.Txn) error { return getCBOR(txn, keyTransfer, &t) })
	if err != nil || t.Version == 0 {
		return nil, err
	}
	return &t, nil
}

// setTransfer writes (or with nil deletes) the transfer progress in txn.
func setTransfer(txn *badger.Txn, t *Transfer) error {
	if t == nil {
		return txn.Delete(keyTransfer)
	}
	enc, err := cbor.Marshal(t)
	if err != nil {
		return err
	}
	err = txn.Set(keyTransfer, enc)
	if errors.Is(err, badger.ErrTxnTooBig) {
		return ErrTxnTooBig
	}
	return err
}
