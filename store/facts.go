package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/cborcheck"
	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// Readings are immutable facts (the grow-only reading sets of the key
// space). They are not materialised in their name's record, which would
// have to be read, grown and rewritten on every write: each commit stores
// the readings it adds as fragments of their own, keyed by name, time
// bucket, origin and first dot,
//
//	'r' name 0x00 bucket(8) origin(8) seq(8) → fragment
//
// so a write costs what it adds, a time range is one key range, and
// retention deletes whole fragments. Names cannot hold NUL, so the 0x00
// ends the name unambiguously and a name's fragments are contiguous.

// FactBucket is the time span of a fragment: a commit's readings of one
// name are split at multiples of it.
const FactBucket int64 = 3600e9 // one hour, in nanoseconds

// Fact is a set of readings of one name from one origin, with their dots.
type Fact struct {
	Name   string
	Origin crdt.ReplicaID
	// Seqs[i] is the sequence number of the dot of Readings[i].
	Seqs     []crdt.Seq
	Readings []crdt.Reading
}

// fragment is the stored form of the readings of a Fact that fall in one
// bucket: columns, which encode small and decode fast.
type fragment struct {
	Version uint      `cbor:"1,keyasint"`
	Seqs    []uint64  `cbor:"2,keyasint"`
	Times   []int64   `cbor:"3,keyasint"`
	Values  []float64 `cbor:"4,keyasint"`
	Flags   []byte    `cbor:"5,keyasint,omitempty"` // absent when all zero
}

// bucketOf returns the start of the bucket holding time t.
func bucketOf(t int64) int64 {
	b := t / FactBucket * FactBucket
	if t < 0 && b != t {
		b -= FactBucket
	}
	return b
}

// factKey returns the key of a fragment. The bucket is stored with its
// sign bit flipped, so negative times sort before positive ones.
func factKey(name string, bucket int64, origin crdt.ReplicaID, seq crdt.Seq) []byte {
	k := make([]byte, 0, len(name)+26)
	k = append(k, prefixFact)
	k = append(k, name...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(bucket)^(1<<63))
	k = binary.BigEndian.AppendUint64(k, uint64(origin))
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// factNamePrefix returns the prefix of every fragment of name.
func factNamePrefix(name string) []byte {
	k := make([]byte, 0, len(name)+2)
	k = append(k, prefixFact)
	k = append(k, name...)
	return append(k, 0)
}

// factBucket returns the bucket of a fragment key.
func factBucket(k []byte) (int64, bool) {
	if len(k) < 26 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(k[len(k)-24:]) ^ (1 << 63)), true
}

// encodeFacts passes the fragments of f, one per bucket it touches, to
// set as key and value.
func encodeFacts(f Fact, set func(k, v []byte) error) error {
	if len(f.Seqs) != len(f.Readings) {
		return fmt.Errorf("store: fact %q: %d dots for %d readings", f.Name, len(f.Seqs), len(f.Readings))
	}
	byBucket := map[int64]*fragment{}
	var buckets []int64
	first := map[int64]crdt.Seq{}
	for i, r := range f.Readings {
		b := bucketOf(r.Time)
		fr := byBucket[b]
		if fr == nil {
			fr = &fragment{Version: 1}
			byBucket[b] = fr
			buckets = append(buckets, b)
			first[b] = f.Seqs[i]
		}
		fr.Seqs = append(fr.Seqs, uint64(f.Seqs[i]))
		fr.Times = append(fr.Times, r.Time)
		fr.Values = append(fr.Values, r.Value)
		if r.Flags != 0 && fr.Flags == nil {
			fr.Flags = make([]byte, len(fr.Times)-1, cap(fr.Times))
		}
		if fr.Flags != nil {
			fr.Flags = append(fr.Flags, byte(r.Flags))
		}
		first[b] = min(first[b], f.Seqs[i])
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		enc, err := cbor.Marshal(byBucket[b])
		if err != nil {
			return err
		}
		if err := set(factKey(f.Name, b, f.Origin, first[b]), enc); err != nil {
			return err
		}
	}
	return nil
}

// fragmentMode decodes fragments with limits above the largest fragment
// a commit (MaxReadings in one write, a 4 MiB sync message) or a
// compaction (compactMaxBytes) can make.
var fragmentMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxArrayElements: 1 << 22, MaxMapPairs: 16, MaxNestedLevels: 4, IndefLength: cbor.IndefLengthForbidden}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}()

func decodeFragment(b []byte, fr *fragment) error {
	*fr = fragment{Seqs: fr.Seqs[:0], Times: fr.Times[:0], Values: fr.Values[:0], Flags: fr.Flags[:0]}
	if err := cborcheck.Unmarshal(fragmentMode, b, fr); err != nil {
		return err
	}
	n := len(fr.Times)
	if fr.Version != 1 || len(fr.Seqs) != n || len(fr.Values) != n || (len(fr.Flags) != 0 && len(fr.Flags) != n) {
		return errors.New("malformed reading fragment")
	}
	return nil
}

// Readings calls fn for each stored reading of name taken in [from, to)
// (Unix nanoseconds), with its dot, in bucket order: ordered by hour, not
// within one.
func (db *DB) Readings(name string, from, to int64, fn func(origin crdt.ReplicaID, seq crdt.Seq, r crdt.Reading) error) error {
	if from >= to {
		return nil
	}
	return db.bdb.View(func(txn *badger.Txn) error {
		prefix := factNamePrefix(name)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
		defer it.Close()
		var fr fragment
		last := bucketOf(to - 1)
		for it.Seek(factKey(name, bucketOf(from), 0, 0)); it.Valid(); it.Next() {
			k := it.Item().Key()
			b, ok := factBucket(k)
			if !ok {
				return fmt.Errorf("%w: reading key %x", ErrCorrupt, k)
			}
			if b > last {
				return nil
			}
			origin := crdt.ReplicaID(binary.BigEndian.Uint64(k[len(k)-16:]))
			err := it.Item().Value(func(v []byte) error { return decodeFragment(v, &fr) })
			if err != nil {
				return fmt.Errorf("%w: readings of %q: %v", ErrCorrupt, name, err)
			}
			for i, t := range fr.Times {
				if t < from || t >= to {
					continue
				}
				r := crdt.Reading{Time: t, Value: fr.Values[i]}
				if len(fr.Flags) > 0 {
					r.Flags = crdt.ReadingFlags(fr.Flags[i])
				}
				if err := fn(origin, crdt.Seq(fr.Seqs[i]), r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ReadingNames calls fn for each name with stored readings, in order.
func (db *DB) ReadingNames(fn func(name string) error) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixFact}})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			end := slices.Index(k, 0)
			if end < 0 {
				return fmt.Errorf("%w: reading key %x", ErrCorrupt, k)
			}
			name := string(k[1:end])
			if err := fn(name); err != nil {
				return err
			}
			// Skip the rest of this name's fragments.
			it.Seek(append(factNamePrefix(name)[:end], 1))
		}
		return nil
	})
}

// DropReadings deletes the fragments whose whole bucket lies before
// before (Unix nanoseconds), and then, while the fragments take more than
// maxBytes (when maxBytes > 0; keys and values, uncompressed), those of the
// oldest buckets. Their dots stay in the context, so copies relayed back by
// peers are not taken again. It returns the number of fragments deleted.
func (db *DB) DropReadings(before int64, maxBytes int64) (int, error) {
	sizes, total, err := db.bucketSizes(func(item *badger.Item) int64 { return item.EstimatedSize() })
	if err != nil {
		return 0, err
	}
	db.factBytes.Store(total)
	cutoff := int64(math.MinInt64) // buckets before it end before 'before'
	if validFactTime(before) {
		cutoff = bucketOf(before)
	}
	for _, b := range sizes {
		if b.bucket < cutoff {
			total -= b.bytes
			continue
		}
		if maxBytes <= 0 || total <= maxBytes {
			break
		}
		total -= b.bytes
		cutoff = b.bucket + FactBucket
	}
	return db.dropBuckets(sizes, cutoff)
}

// evictReadings deletes the fragments of the oldest buckets that take
// at least need bytes on disk (by diskBytes with ratio), or all of them. It
// returns the number of fragments deleted and their bytes on disk.
func (db *DB) evictReadings(need int64, ratio float64) (int, int64, error) {
	sizes, _, err := db.bucketSizes(func(item *badger.Item) int64 { return diskBytes(item, ratio) })
	if err != nil {
		return 0, 0, err
	}
	var freed int64
	cutoff := int64(math.MinInt64)
	for _, b := range sizes {
		if freed >= need {
			break
		}
		freed += b.bytes
		cutoff = b.bucket + FactBucket
	}
	n, err := db.dropBuckets(sizes, cutoff)
	return n, freed, err
}

// bucketSize is the bytes of the fragments of one bucket.
type bucketSize struct {
	bucket, bytes int64
}

// bucketSizes sizes the fragments of every bucket, by size, in one
// key-only pass, and returns them in bucket order with their total.
func (db *DB) bucketSizes(size func(*badger.Item) int64) ([]bucketSize, int64, error) {
	sizes := map[int64]int64{}
	var total int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixFact}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if b, ok := factBucket(it.Item().Key()); ok {
				sz := size(it.Item())
				sizes[b] += sz
				total += sz
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]bucketSize, 0, len(sizes))
	for b, n := range sizes {
		out = append(out, bucketSize{b, n})
	}
	slices.SortFunc(out, func(x, y bucketSize) int { return cmp.Compare(x.bucket, y.bucket) })
	return out, total, nil
}

// dropBuckets deletes the fragments of the buckets before cutoff.
func (db *DB) dropBuckets(sizes []bucketSize, cutoff int64) (int, error) {
	if len(sizes) == 0 || sizes[0].bucket >= cutoff {
		return 0, nil
	}
	return db.dropWhere([]byte{prefixFact}, false, func(item *badger.Item) (bool, bool, error) {
		b, ok := factBucket(item.Key())
		return ok && b < cutoff, false, nil
	})
}

// deleteKeys deletes keys in write batches.
func (db *DB) deleteKeys(keys [][]byte) error {
	db.wmu.RLock()
	defer db.wmu.RUnlock()
	wb := db.bdb.NewWriteBatch()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			wb.Cancel()
			return err
		}
	}
	return wb.Flush()
}

// validFactTime reports whether t can be a reading time: bucketOf cannot
// overflow for it.
func validFactTime(t int64) bool { return t > math.MinInt64+FactBucket }

// compactMin is how many fragments of one name, hour and origin make
// CompactReadings merge them, and compactMax how many it merges in one
// transaction.
const (
	compactMin = 8
	compactMax = 2048
	// compactMaxBytes caps a merged fragment, so merging never makes one
	// that is slow to rewrite or beyond the decoder's limits.
	compactMaxBytes = 1 << 20
	// txnEntryBytes is what Badger counts for each write of a transaction
	// besides its key and value (Txn.checkSize: the key's version, its
	// meta bytes).
	txnEntryBytes = 12
)

// CompactReadings merges the fragments of each name, hour and origin into
// one when there are at least compactMin of them: a sensor polled every
// second writes 3,600 small fragments an hour, which cost a key each to
// store and to read. Each merge is one transaction that writes the merged
// fragment under its first key and deletes the rest, so a crash leaves
// either the parts or the whole. A merge that fails (a damaged fragment)
// is logged and skipped, so that it does not keep every name after it
// from being compacted; the error returned then counts the failures and
// wraps the first. It returns the number of fragments merged away.
func (db *DB) CompactReadings() (int, error) {
	var (
		total, failed int
		first, stop   error
	)
	from := []byte{prefixFact}
	for {
		group, next, err := db.nextGroup(from)
		if err == nil && group == nil {
			break
		}
		if err == nil && len(group) >= compactMin {
			if err = db.mergeFragments(group); err == nil {
				total += len(group) - 1
			}
		}
		if err != nil {
			// No place to go on from, or a store that is closing or
			// failed: every later group would fail the same way.
			if next == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrFailed) || errors.Is(err, badger.ErrDBClosed) {
				stop = err
				break
			}
			failed++
			first = cmp.Or(first, err)
			name := ""
			if len(group) > 0 {
				name = string(group[0][1 : len(group[0])-25])
			}
			db.opts.Logger.Warn("readings compaction skipped fragments", "name", name, "fragments", len(group), "err", err)
		}
		from = next
	}
	if failed > 0 {
		return total, errors.Join(fmt.Errorf("%d groups of fragments not compacted, the first: %w", failed, first), stop)
	}
	return total, stop
}

// nextGroup returns the keys of the first run of at least one fragment of
// one name, bucket and origin at or after from, and the key to continue
// from; nil when there are no more. A run is cut to what one merge can
// take: at most compactMax fragments, compactMaxBytes of values (a full
// fragment stays alone) and one Badger transaction, whose limit (15% of a
// memtable: 614 KiB in the low-memory profile) long names reach first:
// 2,048 keys of a 1,000-byte name take 2 MB. A key too short to be a
// fragment's is ErrCorrupt, with next past it.
func (db *DB) nextGroup(from []byte) (group [][]byte, next []byte, err error) {
	maxTxnBytes, maxTxnCount := db.bdb.MaxBatchSize(), db.bdb.MaxBatchCount()
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixFact}})
		defer it.Close()
		bytesIn := int64(0)
		// The merge's transaction as Badger counts it: each key with
		// txnEntryBytes, and the merged value, counted in full under
		// ValueThreshold and as a 14-byte pointer from it, so at most
		// ValueThreshold.
		txnBytes := int64(ValueThreshold)
		for it.Seek(from); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 26 {
				if len(group) > 0 {
					break // the next call starts at k
				}
				next = append(it.Item().KeyCopy(nil), 0)
				return fmt.Errorf("%w: reading key %x", ErrCorrupt, k)
			}
			size := it.Item().ValueSize()
			entry := int64(len(k)) + txnEntryBytes
			if len(group) > 0 && (len(group) == compactMax || bytesIn+size > compactMaxBytes ||
				txnBytes+entry >= maxTxnBytes || int64(len(group))+1 >= maxTxnCount ||
				!bytes.Equal(k[:len(k)-8], group[0][:len(group[0])-8])) {
				break
			}
			group = append(group, it.Item().KeyCopy(nil))
			bytesIn += size
			txnBytes += entry
		}
		return nil
	})
	if len(group) > 0 {
		next = append(slices.Clone(group[len(group)-1]), 0)
	}
	return group, next, err
}

// mergeFragments replaces the fragments under keys (one name, bucket and
// origin, in seq order) by one under the first key.
func (db *DB) mergeFragments(keys [][]byte) error {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	var all, fr fragment
	all.Version = 1
	for _, k := range keys {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		if err := item.Value(func(v []byte) error { return decodeFragment(v, &fr) }); err != nil {
			return fmt.Errorf("%w: reading fragment %x: %v", ErrCorrupt, k, err)
		}
		if len(fr.Flags) > 0 && all.Flags == nil {
			all.Flags = make([]byte, len(all.Times))
		}
		all.Seqs = append(all.Seqs, fr.Seqs...)
		all.Times = append(all.Times, fr.Times...)
		all.Values = append(all.Values, fr.Values...)
		if all.Flags != nil {
			if len(fr.Flags) > 0 {
				all.Flags = append(all.Flags, fr.Flags...)
			} else {
				all.Flags = append(all.Flags, make([]byte, len(fr.Times))...)
			}
		}
	}
	enc, err := cbor.Marshal(&all)
	if err != nil {
		return err
	}
	if err := txn.Set(keys[0], enc); err != nil {
		return err
	}
	for _, k := range keys[1:] {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return db.commit(txn)
}
