package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/cborcheck"
	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// FormatVersion is the layout version of a data directory. Open refuses a
// directory of a newer version.
const FormatVersion = 1

// DB is an edged data directory: the materialised state of every field of
// the key space, the store-wide causal context, the delta log and the
// destinations' watermarks, all in one Badger database.
//
// DB is safe for concurrent use. Commit is meant to have one caller at a
// time (the engine): it does not serialise read-modify-write cycles.
type DB struct {
	opts Options
	bdb  *badger.DB

	mu     sync.RWMutex
	ctx    crdt.Context // committed context; the copy readers get
	logvv  crdt.VersionVector
	held   map[crdt.ReplicaID]crdt.Ranges
	hlc    crdt.Timestamp
	closed bool
	failed error // see fail

	size      atomic.Int64 // bytes of the data directory, last measured
	written   atomic.Bool  // committed since the last measure
	evicted   atomic.Int64 // log entries dropped to meet the budget
	factBytes atomic.Int64 // bytes of reading fragments, last measured
	dropped   atomic.Int64 // reading fragments dropped by retention or budget
	// unreclaimed is the disk bytes that the budget's evictions deleted
	// and their reclamation has not yet returned (see used).
	unreclaimed atomic.Int64
	// wmu is held shared by every write to Badger and exclusively by
	// reclaim's flush: Badger refuses writes while it flushes
	// (ErrBlockedWrites), which Commit would report as ErrClosed.
	wmu       sync.RWMutex
	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed, unless o.ReadOnly) the data directory
// in o.Dir.
func Open(o Options) (*DB, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		// Badger would say only "no manifest found": name the directory.
		if _, err := os.Stat(filepath.Join(o.Dir, badger.ManifestFilename)); errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(o.Dir); errors.Is(derr, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s does not exist", ErrNoStore, o.Dir)
			}
			return nil, fmt.Errorf("%w: %s holds no edged store (no Badger %s)", ErrNoStore, o.Dir, badger.ManifestFilename)
		}
	} else if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	bdb, err := badger.Open(o.badgerOptions())
	if err != nil {
		return nil, openError(o.Dir, err)
	}
	db := &DB{opts: o, bdb: bdb, stop: make(chan struct{})}
	if err := db.load(); err != nil {
		bdb.Close()
		return nil, err
	}
	db.repairLogVector()
	db.measure()
	if !o.ReadOnly {
		db.done.Add(1)
		go db.maintain()
	}
	return db, nil
}

// openError explains why Badger refused to open dir, and what to do.
// Badger flattens the errors it wraps into strings, so most cases are
// told by their text.
func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return fmt.Errorf("%w: %s is open in another process (is an edged node already running on it?): %v", ErrLocked, dir, err)
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, syscall.ENOSPC.Error()):
		return fmt.Errorf("%w: cannot open %s: %v", ErrDiskFull, dir, err)
	case errors.Is(err, os.ErrPermission) || strings.Contains(msg, syscall.EACCES.Error()) || strings.Contains(msg, syscall.EPERM.Error()):
		return fmt.Errorf("store: cannot open %s: permission denied%s: %v", dir, foreignFiles(dir), err)
	case strings.Contains(msg, badger.ErrTruncateNeeded.Error()):
		return fmt.Errorf("%w: %s was left by a crash or power cut, and reading it needs a recovery that writes to it: "+
			"start the node once (it recovers the directory at start), then back it up while it runs or after it stops: %v", ErrUnclean, dir, err)
	}
	return fmt.Errorf("%w: cannot open %s: %v; edged never resets data by itself: "+
		"restore the directory from a backup (edged restore) or move it away to start empty", ErrCorrupt, dir, err)
}

// foreignFiles names, for an error message, the files of dir (and dir
// itself) that belong to another user than the process's: what an edged
// command run as root leaves in the directory of a node that runs as its
// own user. It returns "" when there are none.
func foreignFiles(dir string) string {
	uid := uint32(os.Geteuid())
	var names []string
	check := func(name string, info fs.FileInfo) {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != uid && len(names) < 4 {
			names = append(names, fmt.Sprintf("%s (uid %d)", name, st.Uid))
		}
	}
	if info, err := os.Stat(dir); err == nil {
		check(dir, info)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			check(e.Name(), info)
		}
	}
	if len(names) == 0 {
		return ""
	}
	owner := strconv.Itoa(int(uid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	return fmt.Sprintf(" (this process runs as %s; owned by others: %s; was an edged command run as root on it? "+
		"give the directory back: chown -R %s: %s)", owner, strings.Join(names, ", "), owner, dir)
}

// load checks the format and reads the context and clock. It marks a new
// store with the format, unless the store is read-only.
func (db *DB) load() error {
	txn := db.bdb.NewTransaction(!db.opts.ReadOnly)
	defer txn.Discard()
	if err := db.loadIn(txn); err != nil {
		return err
	}
	if db.opts.ReadOnly {
		return nil
	}
	return txn.Commit()
}

func (db *DB) loadIn(txn *badger.Txn) error {
	item, err := txn.Get(keyFormat)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		if !isEmpty(txn) {
			return fmt.Errorf("%w: %s holds data but no edged format marker; is it an edged data directory?", ErrFormat, db.opts.Dir)
		}
		if db.opts.ReadOnly {
			return fmt.Errorf("%w: %s holds an empty Badger database, not an edged store", ErrNoStore, db.opts.Dir)
		}
		return txn.Set(keyFormat, []byte{FormatVersion})
	case err != nil:
		return fmt.Errorf("%w: read format: %v", ErrCorrupt, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil || len(v) != 1 {
		return fmt.Errorf("%w: unreadable format marker", ErrCorrupt)
	}
	if v[0] > FormatVersion {
		return fmt.Errorf("%w: %s was written by a newer edged (format %d, this build reads %d): upgrade edged, or restore a backup made by this version",
			ErrFormat, db.opts.Dir, v[0], FormatVersion)
	}
	if err := getCBOR(txn, keyContext, &db.ctx); err != nil {
		return err
	}
	if err := getCBOR(txn, keyHLC, &db.hlc); err != nil {
		return err
	}
	db.held = map[crdt.ReplicaID]crdt.Ranges{}
	if _, err := txn.Get(keyReadings); err == nil {
		if err := getCBOR(txn, keyReadings, &db.held); err != nil {
			return err
		}
	}
	if _, err := txn.Get(keyLogVV); err == nil {
		return getCBOR(txn, keyLogVV, &db.logvv)
	}
	// A directory written before the log vector was kept: derive it
	// from the log once; the next commit stores it.
	db.logvv = crdt.VersionVector{}
	return db.entriesIn(txn, []byte{prefixLog}, []byte{prefixLog}, false, func(e Entry) error {
		if e.First <= db.logvv[e.Origin]+1 && e.Last > db.logvv[e.Origin] {
			db.logvv[e.Origin] = e.Last
		}
		return nil
	})
}

// repairLogVector lowers, per origin, a log vector that claims writes the
// context never saw to the context's gap-free prefix, with a warning. The
// context holds every dot the log vector covers, by construction, but an
// earlier edged could break that: a peer relayed a group joined across a
// gap in its log, and this node took the group's whole range. The node
// then asks its peers again for what follows, and a group or a state
// transfer brings the writes it lacks; the vector is stored with the next
// commit.
func (db *DB) repairLogVector() {
	for o, last := range db.logvv {
		if db.ctx.ContainsRange(o, 1, last) {
			continue
		}
		db.opts.Logger.Warn("store: the log vector holds writes of an origin that the context lacks: lowered, so that peers send them again",
			"origin", o, "log_vector", last, "context_prefix", db.ctx.Prefix(o))
		db.logvv[o] = db.ctx.Prefix(o)
	}
}

func isEmpty(txn *badger.Txn) bool {
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

// getCBOR decodes the value of key into v; a missing key leaves v as is.
func getCBOR(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err == nil {
		err = item.Value(func(b []byte) error { return cborcheck.Unmarshal(diskMode, b, v) })
	}
	if err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
	}
	return nil
}

// Close stops background work and closes the database. It is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		close(db.stop)
		db.done.Wait()
		db.closeErr = db.bdb.Close()
	})
	return db.closeErr
}

// Context returns a copy of the committed causal context.
func (db *DB) Context() crdt.Context {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.ctx.Clone()
}

// HLC returns the last hybrid-logical-clock reading committed.
func (db *DB) HLC() crdt.Timestamp {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.hlc
}

// Get returns the state of every type stored under name (usually one),
// or nil if the name is absent.
func (db *DB) Get(name string) (map[crdt.Type]crdt.Value, error) {
	enc, err := db.GetRecord(name)
	if err != nil || enc == nil {
		return nil, err
	}
	return DecodeRecord(name, enc)
}

// GetRecord returns the encoded record of name (see EncodeRecord), or nil
// if the name is absent.
func (db *DB) GetRecord(name string) ([]byte, error) {
	var enc []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(nameKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		enc, err = item.ValueCopy(nil)
		return err
	})
	return enc, err
}

// Scan calls fn for each name that starts with prefix and sorts after
// after, in name order, with its states, at most limit of them (0: no
// limit).
func (db *DB) Scan(prefix, after string, limit int, fn func(name string, values map[crdt.Type]crdt.Value) error) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		p := nameKey(prefix)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: p})
		defer it.Close()
		start := p
		if after != "" {
			start = append(nameKey(after), 0) // the smallest key after it
			if bytes.Compare(start, p) < 0 {
				start = p // after sorts before the prefix: from its start
			}
		}
		n := 0
		for it.Seek(start); it.Valid() && (limit == 0 || n < limit); it.Next() {
			name := string(it.Item().Key()[1:])
			var vs map[crdt.Type]crdt.Value
			err := it.Item().Value(func(b []byte) (err error) {
				vs, err = DecodeRecord(name, b)
				return err
			})
			if err != nil {
				return err
			}
			if err := fn(name, vs); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

// diskMode decodes the store's other values (context, clock, log entries,
// watermarks, peers) with the library's default limits. Like every
// decoder of the store it goes through cborcheck, so a damaged value
// decodes on 32-bit ARM as it does elsewhere, or not at all.
var diskMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}()

// recordMode decodes records: a list of encoded values, one per type. The
// limits are those of the crdt decoder, which checks each value again.
var recordMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxArrayElements: 1 << 22, MaxMapPairs: 1 << 16, MaxNestedLevels: 40, IndefLength: cbor.IndefLengthForbidden}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}()

// EncodeRecord encodes the states of the types under one name (a nil
// value is skipped) for Batch.Names: a CBOR array of crdt.MarshalValue
// encodings in type order. It returns nil when no state is left, and
// ErrTooLarge for a record over MaxValueBytes.
func EncodeRecord(name string, values map[crdt.Type]crdt.Value) ([]byte, error) {
	types := make([]crdt.Type, 0, len(values))
	for t, v := range values {
		if v != nil {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	parts := make([]cbor.RawMessage, 0, len(types))
	for _, t := range types {
		enc, err := crdt.MarshalValue(values[t])
		if err != nil {
			return nil, err
		}
		parts = append(parts, enc)
	}
	if len(parts) == 0 {
		return nil, nil
	}
	enc, err := cbor.Marshal(parts)
	if err != nil {
		return nil, err
	}
	if len(enc) > MaxValueBytes {
		return nil, fmt.Errorf("%w: %q would encode to %d bytes, limit %d", ErrTooLarge, name, len(enc), MaxValueBytes)
	}
	return enc, nil
}

// DecodeRecord decodes a record made by EncodeRecord.
func DecodeRecord(name string, enc []byte) (map[crdt.Type]crdt.Value, error) {
	var parts []cbor.RawMessage
	if err := cborcheck.Unmarshal(recordMode, enc, &parts); err != nil {
		return nil, fmt.Errorf("%w: record %q: %v", ErrCorrupt, name, err)
	}
	if len(parts) > 16 {
		return nil, fmt.Errorf("%w: record %q: %d values", ErrCorrupt, name, len(parts))
	}
	vs := make(map[crdt.Type]crdt.Value, len(parts))
	for _, p := range parts {
		v, err := crdt.UnmarshalValue(p)
		if err != nil {
			return nil, fmt.Errorf("%w: record %q: %v", ErrCorrupt, name, err)
		}
		vs[v.Type()] = v
	}
	return vs, nil
}

// Entry is one delta-log entry: the delta of one operation (or of a group
// of them) of one origin, covering that origin's dots First…Last.
type Entry struct {
	Origin      crdt.ReplicaID
	First, Last crdt.Seq
	// Delta is a delta of the key space: an ORMap whose fields are the
	// top-level fields touched, with the context of the operations.
	Delta crdt.Causal
}

// logRecord is the stored form of an Entry (its key holds origin, first).
type logRecord struct {
	Version uint        `cbor:"1,keyasint"`
	Last    crdt.Seq    `cbor:"2,keyasint"`
	Delta   crdt.Causal `cbor:"3,keyasint"`
}

// EncodeEntry returns the stored form of e: the value of its log record,
// whose key holds its origin and first dot.
func EncodeEntry(e Entry) ([]byte, error) {
	return cbor.Marshal(logRecord{Version: 1, Last: e.Last, Delta: e.Delta})
}

// Batch is what one Commit writes, atomically.
type Batch struct {
	// Names are the encoded new records (EncodeRecord) of the touched
	// names; nil deletes the name.
	Names map[string][]byte
	// Entries are appended to the delta log.
	Entries []Entry
	// Facts are readings to store (see Readings).
	Facts []Fact
	// Context is the store's whole causal context after the batch.
	Context crdt.Context
	// HLC is the clock's last reading, persisted so that it never runs
	// backwards across restarts.
	HLC crdt.Timestamp
	// LogVector is, per origin, the last dot of the gap-free run of
	// entries the log received (see LogVector); nil leaves it as it is.
	LogVector crdt.VersionVector
	// ReadingsHeld is, per origin, the entries whose raw readings were
	// stored from the readings stream (see ReadingsHeld); nil leaves it
	// as it is.
	ReadingsHeld map[crdt.ReplicaID]crdt.Ranges
	// Transfer, when set, replaces the state transfer progress; with
	// TransferDone the progress is deleted.
	Transfer     *Transfer
	TransferDone bool
}

// Commit writes b in one Badger transaction and, with Fsync durability,
// flushes it to disk before returning. Either all of b is stored or none
// (after ErrFailed, which of the two is known when the store is opened
// again).
// It fails with ErrBudget when the data directory is over its budget, and
// with ErrDiskFull when the disk is; writes resume when that changes. It
// fails with ErrFailed when Badger failed the transaction after taking it,
// and from then on (see Failed).
func (db *DB) Commit(b Batch) error {
	db.mu.RLock()
	closed, failed := db.closed, db.failed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if failed != nil {
		return failed
	}
	if db.opts.ReadOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, db.opts.Dir)
	}
	if budget, used := db.opts.Budget, db.used(); budget > 0 && used > budget {
		return fmt.Errorf("%w: %s uses %d bytes of its %d-byte budget; writes resume when the next GC has collected acknowledged log entries "+
			"or evicted log entries and the oldest readings, or when the budget is raised",
			ErrBudget, db.opts.Dir, used, budget)
	}
	if err := db.checkFree(); err != nil {
		return err
	}
	// One transaction, not a WriteBatch: a WriteBatch splits large batches
	// into several commits, and a crash between them would be visible.
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	var written int64
	set := func(k, v []byte) error {
		written += int64(len(k) + len(v))
		err := txn.Set(k, v)
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("%w (%d bytes so far)", ErrTxnTooBig, written)
		}
		return err
	}
	for name, enc := range b.Names {
		if enc == nil {
			if err := txn.Delete(nameKey(name)); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) {
					return fmt.Errorf("%w (%d bytes so far)", ErrTxnTooBig, written)
				}
				return err
			}
			continue
		}
		if err := set(nameKey(name), enc); err != nil {
			return err
		}
	}
	for _, f := range b.Facts {
		for _, r := range f.Readings {
			if !validFactTime(r.Time) {
				return fmt.Errorf("store: reading of %q at %d: time out of range", f.Name, r.Time)
			}
		}
		if err := encodeFacts(f, set); err != nil {
			return err
		}
	}
	for _, e := range b.Entries {
		enc, err := EncodeEntry(e)
		if err != nil {
			return err
		}
		if err := set(logKey(e.Origin, e.First), enc); err != nil {
			return err
		}
	}
	ctx, err := b.Context.MarshalCBOR()
	if err != nil {
		return err
	}
	hlc, err := cbor.Marshal(b.HLC)
	if err != nil {
		return err
	}
	if err := set(keyContext, ctx); err != nil {
		return err
	}
	if err := set(keyHLC, hlc); err != nil {
		return err
	}
	if b.Transfer != nil || b.TransferDone {
		if err := setTransfer(txn, b.Transfer); err != nil {
			return err
		}
	}
	for _, v := range []struct {
		key []byte
		v   any
		set bool
	}{{keyLogVV, b.LogVector, b.LogVector != nil}, {keyReadings, b.ReadingsHeld, b.ReadingsHeld != nil}} {
		if !v.set {
			continue
		}
		enc, err := cbor.Marshal(v.v)
		if err != nil {
			return err
		}
		if err := set(v.key, enc); err != nil {
			return err
		}
	}
	if err := db.commit(txn); err != nil {
		return err
	}
	db.size.Add(written)
	db.written.Store(true)
	db.mu.Lock()
	db.ctx = b.Context.Clone()
	db.hlc = b.HLC
	if b.LogVector != nil {
		db.logvv = b.LogVector.Clone()
	}
	if b.ReadingsHeld != nil {
		db.held = maps.Clone(b.ReadingsHeld)
	}
	db.mu.Unlock()
	return nil
}

// commit commits txn, a write of the store's own (see wmu), and fails the
// store if Badger took the write and did not report it made (see fail).
func (db *DB) commit(txn *badger.Txn) error {
	db.wmu.RLock()
	err := txn.Commit()
	db.wmu.RUnlock()
	if err == nil && db.opts.CommitFault != nil {
		err = db.opts.CommitFault()
	}
	if err != nil {
		return db.fail(err)
	}
	return nil
}

// fail takes err, returned by Badger's commit. Badger fails a transaction
// it took after its writer may have put the writes in the memtable, where
// reads find them, or on disk: a failed sync leaves both. What the commit
// left is known only when Badger replays its log on the next open. A
// commit after it would be built on a state that is not known: an engine
// that took the failed commit's dots for unused would give them to other
// operations, and the memtable would hold both. So the store refuses every
// later commit with ErrFailed (reads go on), and the node restarts.
func (db *DB) fail(err error) error {
	// Refused before Badger's writer took it:
	switch {
	case errors.Is(err, badger.ErrConflict):
		return err
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %v", ErrTxnTooBig, err)
	case errors.Is(err, badger.ErrBlockedWrites): // Badger is closing
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	err = fmt.Errorf("%w: commit: %w; what the write left on %s is unknown until the store is opened again, so it refuses every write until then (restart edged)",
		ErrFailed, err, db.opts.Dir)
	db.mu.Lock()
	if db.failed == nil {
		db.failed = err
	}
	db.mu.Unlock()
	db.opts.Logger.Error("store failed", "err", err)
	return err
}

// Failed returns the error that made the store refuse commits (ErrFailed),
// or nil.
func (db *DB) Failed() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.failed
}

// LogVector returns, per origin, the last dot of the gap-free run of
// entries the log has received (whether or not collected since). It can
// be behind the context's vector: a delta's context may cover another
// origin's dots before their entries arrive, and those entries must still
// be applied, for their own contexts. Replication asks peers for what
// lies beyond it.
func (db *DB) LogVector() crdt.VersionVector {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.logvv.Clone()
}

// ReadingsHeld returns, per origin, the log entries whose raw readings
// were stored from entries sent apart from the log (the cloud's readings
// stream: see package cloud). The aggregator keeps it; elsewhere it stays
// empty. The ranges are shared: do not modify them.
func (db *DB) ReadingsHeld() map[crdt.ReplicaID]crdt.Ranges {
	db.mu.RLock()
	defer db.mu.RUnlock()
	held := make(map[crdt.ReplicaID]crdt.Ranges, len(db.held))
	maps.Copy(held, db.held)
	return held
}

// checkFree refuses to write when the disk is nearly full.
func (db *DB) checkFree() error {
	free, err := db.opts.FreeSpace(db.opts.Dir)
	if err != nil {
		return fmt.Errorf("store: free space of %s: %w", db.opts.Dir, err)
	}
	if free < db.opts.MinFreeBytes {
		return fmt.Errorf("%w: %d bytes free on the disk of %s, writes need %d; reads continue, and writes resume when space is freed",
			ErrDiskFull, free, db.opts.Dir, db.opts.MinFreeBytes)
	}
	return nil
}

// Entries calls fn for the log entries of origin whose dots follow after,
// in dot order, until fn returns an error (ErrStop ends it quietly).
func (db *DB) Entries(origin crdt.ReplicaID, after crdt.Seq, fn func(Entry) error) error {
	prefix := logKey(origin, 0)[:9]
	start := logKey(origin, after+1)
	// Entries are keyed by their first dot: the one holding after+1 may
	// start before it (an operation that took several dots).
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
		defer it.Close()
		if it.Seek(start); it.Valid() {
			if e, err := decodeEntry(it.Item()); err == nil && e.First <= after && e.Last > after {
				start = it.Item().KeyCopy(nil)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.entries(prefix, start, false, fn)
}

// EntriesDown calls fn for the log entries of origin that start at or
// below upto, newest first, until fn returns an error (ErrStop ends it
// quietly).
func (db *DB) EntriesDown(origin crdt.ReplicaID, upto crdt.Seq, fn func(Entry) error) error {
	return db.entries(logKey(origin, 0)[:9], logKey(origin, upto), true, fn)
}

// AllEntries calls fn for every log entry, by origin then dot (ErrStop
// ends it quietly).
func (db *DB) AllEntries(fn func(Entry) error) error {
	return db.entries([]byte{prefixLog}, nil, false, fn)
}

// entries calls fn for the log entries under prefix from seek on, in key
// order or (reverse) backwards.
func (db *DB) entries(prefix, seek []byte, reverse bool, fn func(Entry) error) error {
	err := db.bdb.View(func(txn *badger.Txn) error { return db.entriesIn(txn, prefix, seek, reverse, fn) })
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// entriesIn is entries within a transaction.
func (db *DB) entriesIn(txn *badger.Txn, prefix, seek []byte, reverse bool, fn func(Entry) error) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix, Reverse: reverse})
	defer it.Close()
	if seek == nil {
		seek = prefix
	}
	for it.Seek(seek); it.Valid(); it.Next() {
		e, err := decodeEntry(it.Item())
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// ErrStop ends an iteration early without error.
var ErrStop = errors.New("store: stop iteration")

func decodeEntry(item *badger.Item) (Entry, error) {
	origin, first, ok := parseLogKey(item.Key())
	if !ok {
		return Entry{}, fmt.Errorf("%w: malformed log key %x", ErrCorrupt, item.Key())
	}
	var r logRecord
	if err := item.Value(func(b []byte) error { return cborcheck.Unmarshal(diskMode, b, &r) }); err != nil {
		return Entry{}, fmt.Errorf("%w: log entry %s:%d: %v", ErrCorrupt, origin, first, err)
	}
	return Entry{Origin: origin, First: first, Last: r.Last, Delta: r.Delta}, nil
}

// SetWatermark records the version vector a destination (a peer or the
// cloud) has acknowledged. Log entries every destination has acknowledged
// are collected by CollectGarbage.
func (db *DB) SetWatermark(dest string, vv crdt.VersionVector) error {
	enc, err := cbor.Marshal(vv)
	if err != nil {
		return err
	}
	return db.update(func(txn *badger.Txn) error { return txn.Set(watermarkKey(dest), enc) })
}

// RemoveWatermark stops tracking a destination.
func (db *DB) RemoveWatermark(dest string) error {
	return db.update(func(txn *badger.Txn) error { return txn.Delete(watermarkKey(dest)) })
}

// Watermarks returns every tracked destination's acknowledged vector.
func (db *DB) Watermarks() (map[string]crdt.VersionVector, error) {
	out := map[string]crdt.VersionVector{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{prefixWatermark}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var vv crdt.VersionVector
			if err := it.Item().Value(func(b []byte) error { return cborcheck.Unmarshal(diskMode, b, &vv) }); err != nil {
				return fmt.Errorf("%w: watermark %q: %v", ErrCorrupt, it.Item().Key()[1:], err)
			}
			out[string(it.Item().Key()[1:])] = vv
		}
		return nil
	})
	return out, err
}

// CollectGarbage deletes the log entries that every tracked destination has
// acknowledged and returns how many. With no destination tracked nothing is
// collected: the log is what a first peer or the cloud will need.
func (db *DB) CollectGarbage() (int, error) {
	marks, err := db.Watermarks()
	if err != nil || len(marks) == 0 {
		return 0, err
	}
	n, _, err := db.dropEntries(func(e Entry) bool {
		for _, vv := range marks {
			if vv[e.Origin] < e.Last {
				return false
			}
		}
		return true
	}, 0, 1)
	return n, err
}

// dropChunk is how many log entries dropEntries reads per transaction.
var dropChunk = 4096

// dropEntries deletes log entries for which drop is true, stopping after
// maxBytes on disk (by diskBytes with ratio) when maxBytes > 0. It works in
// chunks so its memory stays small whatever the size of the log. It
// returns how many entries it deleted and their bytes on disk.
func (db *DB) dropEntries(drop func(Entry) bool, maxBytes int64, ratio float64) (int, int64, error) {
	var freed int64
	n, err := db.dropWhere([]byte{prefixLog}, true, func(item *badger.Item) (bool, bool, error) {
		if maxBytes > 0 && freed >= maxBytes {
			return false, true, nil
		}
		e, err := decodeEntry(item)
		if err != nil || !drop(e) {
			return false, false, err
		}
		freed += diskBytes(item, ratio)
		return true, false, nil
	})
	return n, freed, err
}

// dropWhere deletes the keys under prefix for which drop says so, until
// it says stop. It reads dropChunk keys per transaction (with their values
// when values is set) and deletes them in a write batch, so its memory
// stays small whatever the number of keys. It returns how many it deleted.
func (db *DB) dropWhere(prefix []byte, values bool, drop func(item *badger.Item) (del, stop bool, err error)) (int, error) {
	total := 0
	from := prefix
	for {
		var keys [][]byte
		more := false
		err := db.bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: values, PrefetchSize: 64, Prefix: prefix})
			defer it.Close()
			scanned := 0
			for it.Seek(from); it.Valid(); it.Next() {
				if scanned == dropChunk {
					more = true
					break
				}
				scanned++
				from = append(it.Item().KeyCopy(from[:0:0]), 0) // resume after this key
				del, stop, err := drop(it.Item())
				if err != nil {
					return err
				}
				if stop {
					break
				}
				if del {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if err := db.deleteKeys(keys); err != nil {
			return total, err
		}
		total += len(keys)
		if !more {
			return total, nil
		}
	}
}

// Stats describe the store for status pages and metrics.
type Stats struct {
	Bytes        int64 // size of the data directory
	Budget       int64 // 0: none
	Evicted      int64 // log entries dropped to meet the budget since start
	ReadingBytes int64 // bytes of stored readings (uncompressed), measured at the last GC
	Dropped      int64 // reading fragments deleted by retention or budget since start
	// Unreclaimed is the part of Bytes that the budget's evictions
	// deleted and Badger has not yet returned to the disk: value-log
	// files less than half garbage, and the one Badger writes to. The
	// budget counts Bytes less Unreclaimed.
	Unreclaimed int64
}

// Stats returns the current statistics.
func (db *DB) Stats() Stats {
	return Stats{Bytes: db.size.Load(), Budget: db.opts.Budget, Evicted: db.evicted.Load(),
		ReadingBytes: db.factBytes.Load(), Dropped: db.dropped.Load(), Unreclaimed: db.unreclaimed.Load()}
}

// Used returns the bytes the budget counts: the directory, less what
// evictions deleted and Badger has not returned yet.
func (s Stats) Used() int64 { return max(s.Bytes-s.Unreclaimed, 0) }

// used returns the bytes the budget counts: the directory, less what
// evictions deleted that Badger has not returned yet. Without that
// allowance, space an eviction cannot reclaim at once would be taken
// for an excess at every GC, and each would evict again.
func (db *DB) used() int64 { return max(db.size.Load()-db.unreclaimed.Load(), 0) }

// update is bdb.Update for writes from outside the maintenance goroutine
// (see wmu).
func (db *DB) update(fn func(txn *badger.Txn) error) error {
	db.wmu.RLock()
	defer db.wmu.RUnlock()
	return db.bdb.Update(fn)
}

// measure sets size to the bytes of Badger's files.
func (db *DB) measure() { db.size.Store(DiskUsage(db.opts.Dir)) }

// DiskUsage returns the bytes allocated to the files under dir, like du.
// It counts allocated blocks, not apparent sizes: Badger preallocates its
// memory-mapped files as sparse files.
func DiskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += info.Size()
				}
			}
		}
		return nil
	})
	return n
}

// idleMeasure is how often an idle store's directory is measured: Badger
// changes its files by itself too (compactions, value log GC).
const idleMeasure = 30

// maintain runs the background work: it measures the directory every
// second after commits (every idleMeasure seconds otherwise, so an idle
// node does not walk it every second), and at every GC interval (starting
// at a random offset) collects acknowledged log entries, enforces the
// budget and collects the value log.
func (db *DB) maintain() {
	defer db.done.Done()
	measure := time.NewTicker(time.Second)
	defer measure.Stop()
	gc := time.NewTimer(jitter(db.opts.GCInterval))
	defer gc.Stop()
	for since := 0; ; since++ {
		select {
		case <-db.stop:
			return
		case <-measure.C:
			if db.written.Swap(false) || since >= idleMeasure {
				db.measure()
				since = 0
			}
		case <-gc.C:
			db.collect()
			gc.Reset(jitter(db.opts.GCInterval))
		}
	}
}

// collect is the work of one GC: it collects acknowledged log entries,
// applies the readings retention, enforces the budget, then compacts
// readings (only under the budget) and collects the value log. A failed
// store (see fail) does none of it: it writes nothing until opened again.
func (db *DB) collect() {
	if db.Failed() != nil {
		return
	}
	defer db.written.Store(true)
	log := db.opts.Logger
	n, err := db.CollectGarbage()
	if err != nil {
		log.Warn("delta log collection failed", "err", err)
	} else if n > 0 {
		log.Debug("delta log collected", "entries", n)
	}
	n += db.retainReadings()
	budget := db.opts.Budget
	if budget > 0 && db.used() > budget {
		// What was just deleted, or deleted before a restart and still in
		// the value log, may be all the excess, once reclaimed.
		if n > 0 {
			db.reclaim()
		} else {
			db.valueLogGC()
		}
		if db.used() > budget {
			db.evict()
		}
	}
	// Not over the budget: a merge writes the merged fragment before
	// compactions drop the parts, so the directory first grows.
	if budget == 0 || db.used() <= budget {
		if n, err := db.CompactReadings(); err != nil {
			log.Warn("readings compaction failed", "err", err)
		} else if n > 0 {
			log.Debug("readings compacted", "fragments", n)
		}
	}
	db.valueLogGC()
}

// evict brings the store back under its budget: it deletes the oldest
// log entries (by origin and dot), then the oldest readings (by the hour),
// worth the excess plus a tenth of the budget, so that the next writes do
// not hit the budget at once, and reclaims their space (see reclaim). Peers
// that miss the entries catch up by state transfer; the readings are lost
// to this node.
//
// The budget counts bytes on disk and deletions count what Badger's items
// take on disk (diskBytes), so the excess is weighed in the same unit.
func (db *DB) evict() {
	log := db.opts.Logger
	budget := db.opts.Budget
	need := db.used() - budget + budget/10
	before := db.size.Load()
	ratio := db.tableRatio()
	n, freed, err := db.dropEntries(func(Entry) bool { return true }, need, ratio)
	db.evicted.Add(int64(n))
	if n > 0 || err != nil {
		log.Warn("data budget reached: dropped delta log entries", "entries", n, "bytes", freed,
			"directory", before, "budget", budget, "err", err)
	}
	if err == nil && freed < need {
		nr, fr, rerr := db.evictReadings(need-freed, ratio)
		db.dropped.Add(int64(nr))
		freed += fr
		err = rerr
		log.Warn("data budget reached: dropped oldest readings", "fragments", nr, "bytes", fr,
			"directory", before, "budget", budget, "err", err)
	}
	if freed == 0 {
		return
	}
	// Counted as free at once; reclaim takes off what it measures
	// returned. The rest is value-log space: Badger rewrites a value-log
	// file once half of it is garbage, and never the one it writes to.
	// Until then the next GCs do not evict again what was evicted.
	db.unreclaimed.Add(freed)
	db.reclaim()
	log.Info("data budget: evicted space reclaimed", "directory", db.size.Load(), "unreclaimed", db.unreclaimed.Load(), "budget", budget)
}

// reclaim returns to the disk what deletions freed, and measures the
// directory. Badger deletes by writing tombstones: the space is freed
// when a compaction brings them down to the level of the data they
// delete, and value-log space when the value log GC rewrites a file.
// Over the budget writes are refused, so no memtable fills and nothing
// would ever be compacted. reclaim flushes the memtables (DropPrefix of
// a marker key: Badger's one way to flush on demand; it compacts level 0
// into the next as it does), compacts every level into the last
// (Flatten) and collects the value log.
//
// It rewrites the tables of the levels above the last and those of the
// last that they overlap: evicted readings are the oldest hours of every
// name, so about every table of readings. It runs only while the store is
// over its budget: after an eviction, which frees a tenth of the budget
// more than the excess (so at most once per that much written), or after
// a GC that deleted something then.
func (db *DB) reclaim() {
	db.wmu.Lock()
	err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(keyFlush, nil) })
	if err == nil {
		err = db.bdb.DropPrefix(keyFlush)
	}
	db.wmu.Unlock()
	if err == nil {
		err = db.bdb.Flatten(1)
	}
	if err != nil {
		db.opts.Logger.Warn("store: reclaiming the space of deleted data failed", "err", err)
	}
	db.valueLogGC()
}

// valueLogGC collects the value log until no file is worth rewriting (or
// the store closes), measures the directory and takes what it shrank by
// since the last measure off unreclaimed: it may be what evictions
// deleted (or else what other deletions did: then the budget counts more
// than there is, never less).
func (db *DB) valueLogGC() {
	before := db.size.Load()
	for db.bdb.RunValueLogGC(0.5) == nil {
		select {
		case <-db.stop:
			return
		default:
		}
	}
	db.measure()
	if got := before - db.size.Load(); got > 0 {
		db.unreclaimed.Store(max(db.unreclaimed.Load()-got, 0))
	}
}

// tableRatio returns the bytes Badger's tables take on disk per byte of
// the items they hold: they are compressed (Snappy), and values in the
// value log are not. 1 when there are no tables.
func (db *DB) tableRatio() float64 {
	var disk, raw int64
	for _, t := range db.bdb.Tables() {
		disk += int64(t.OnDiskSize)
		raw += int64(t.UncompressedSize)
	}
	if disk <= 0 || raw <= 0 {
		return 1
	}
	return min(float64(disk)/float64(raw), 1)
}

// diskBytes estimates the bytes item takes on disk: a value of
// ValueThreshold or more is in the value log as is, a smaller one in the
// LSM tree, compressed by ratio (tableRatio).
func diskBytes(item *badger.Item, ratio float64) int64 {
	if item.ValueSize() >= ValueThreshold {
		return item.EstimatedSize()
	}
	return int64(float64(item.EstimatedSize()) * ratio)
}

// retainReadings applies the readings retention and byte cap, and
// returns how many fragments it deleted.
func (db *DB) retainReadings() int {
	before := int64(math.MinInt64)
	if r := db.opts.ReadingsRetention; r > 0 {
		before = db.opts.Now().Add(-r).UnixNano()
	}
	n, err := db.DropReadings(before, db.opts.ReadingsMaxBytes)
	db.dropped.Add(int64(n))
	if err != nil {
		db.opts.Logger.Warn("readings retention failed", "err", err)
	} else if n > 0 {
		db.opts.Logger.Debug("readings retention", "fragments", n)
	}
	return n
}

// Sync flushes everything written to disk.
func (db *DB) Sync() error { return db.bdb.Sync() }

// jitter returns a duration uniformly in [d/2, 3d/2), so periodic work of
// many nodes does not align.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d) }
