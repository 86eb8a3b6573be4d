// Package engine is edged's single write path. Local operations (from the
// API, MQTT and sensors) and deltas from peers go through one owner
// goroutine that turns them into CRDT deltas, applies them to the stored
// state and commits them with group commit: every operation queued while
// the previous commit was being flushed is gathered into one Badger
// transaction, fsynced once, and only then is each caller acknowledged.
// That turns one fsync per write into one fsync per group, which is what
// lets a Raspberry Pi's SD card take tens of thousands of durable writes a
// second. The owner builds the next group while the previous one is being
// fsynced (see Run).
//
// Reads do not go through the engine: they read the committed state from
// the store, so a write is visible to reads once Do has returned
// (read-your-writes).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/store"
)

// Errors returned by the engine; test with errors.Is.
var (
	// ErrTypeMismatch: an operation of one type on a name that holds
	// another type.
	ErrTypeMismatch = errors.New("engine: type mismatch")
	// ErrStopped: the engine is not running.
	ErrStopped = errors.New("engine: stopped")
)

// Config tunes the engine.
type Config struct {
	// MaxBatchOps caps the operations in one commit.
	MaxBatchOps int
	// QueueLen bounds the operations waiting for a commit; callers block
	// (or give up with their context) when it is full.
	QueueLen int
	// MaxSkew is the largest clock skew accepted from peers' timestamps.
	MaxSkew time.Duration
	// CacheBytes bounds the cache of recently written keys' encoded
	// state, which spares hot keys a read from the store.
	CacheBytes int
	// Now is the physical clock; nil means time.Now.
	Now func() time.Time
	// OnCommit, when set, is called with the names whose records changed
	// after each commit, on the engine's goroutine: it must not block.
	OnCommit func(names []string)
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 2048 operations per commit (about
// 325 KiB of typical deltas, half the low-memory profile's 614 KiB
// transaction limit), a queue of 8192, a maximum skew of 5 minutes and a
// 4 MiB cache.
func DefaultConfig() Config {
	return Config{MaxBatchOps: 2048, QueueLen: 8192, MaxSkew: 5 * time.Minute, CacheBytes: 4 << 20}
}

// Op is one local operation on the key space.
type Op struct {
	// Name is the key.
	Name string
	// Type is the CRDT type of the field the operation writes. An
	// operation of a type other than the one the name already holds fails
	// with ErrTypeMismatch.
	Type crdt.Type
	// Remove removes the name (every type under it) instead.
	Remove bool
	// Mutate returns the delta of the operation on the field's current
	// value v (the empty value of Type if absent): a delta-mutator of v,
	// with dots from g and, for registers, the HLC time now.
	Mutate func(v crdt.Value, g *crdt.DotGen, now crdt.Timestamp) (crdt.Causal, error)
	// named bounds what the delta names besides the parts of the field's
	// values before and after it: the elements a removal names whether
	// the set holds them or not (see logLocal).
	named int
}

// Engine owns the write path of one node's store.
type Engine struct {
	db      *store.DB
	replica crdt.ReplicaID
	cfg     Config
	log     *slog.Logger
	hlc     *crdt.HLC
	ctx     crdt.Context       // committed context; owned by Run
	logvv   crdt.VersionVector // committed log vector (store.DB.LogVector); owned by Run
	cache   *cache             // committed records of recently used keys; owned by Run
	reqs    chan *request
	stopped chan struct{}
}

type request struct {
	ops     []Op          // one local operation, made of these
	entries []store.Entry // remote deltas, when ops is nil
	// readings: entries are a readings stream's (Readings), not deltas.
	readings bool
	page     *Page // a page of state transfer, when ops is nil
	// forget: delete the stored state transfer progress (ForgetTransfer).
	forget bool
	values []crdt.Value // result: each field's state after its op
	err    error
	done   chan struct{}
}

// New returns an engine writing db as replica. It does nothing until Run.
func New(db *store.DB, replica crdt.ReplicaID, cfg Config) *Engine {
	def := DefaultConfig()
	if cfg.MaxBatchOps <= 0 {
		cfg.MaxBatchOps = def.MaxBatchOps
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = def.QueueLen
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = def.MaxSkew
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = def.CacheBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hlc := crdt.NewHLC(cfg.Now, cfg.MaxSkew)
	hlc.Restore(db.HLC())
	return &Engine{
		db: db, replica: replica, cfg: cfg, log: cfg.Logger, hlc: hlc,
		ctx:     db.Context(),
		logvv:   db.LogVector(),
		cache:   newCache(cfg.CacheBytes),
		reqs:    make(chan *request, cfg.QueueLen),
		stopped: make(chan struct{}),
	}
}

// Replica returns the replica ID the engine writes as.
func (e *Engine) Replica() crdt.ReplicaID { return e.replica }

// Do performs op and returns the field's new state (nil after a removal)
// once it is durable. The returned value is shared: do not modify it. Do
// is safe for concurrent use; it blocks while the queue is full.
func (e *Engine) Do(ctx context.Context, op Op) (crdt.Value, error) {
	vs, err := e.DoAll(ctx, op)
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// DoAll performs ops as one operation: all of them or none are applied,
// in order (each sees the effects of those before it), under one range of
// dots and one log entry. It returns each field's state after its op, as
// Do does. Readings (TypeReadingSet fields) are stored as facts, not as
// field state: their values come back nil.
func (e *Engine) DoAll(ctx context.Context, ops ...Op) ([]crdt.Value, error) {
	if len(ops) == 0 {
		return nil, errors.New("engine: no operation")
	}
	for _, op := range ops {
		if err := store.ValidateName(op.Name); err != nil {
			return nil, err
		}
		if !op.Remove && op.Mutate == nil {
			return nil, fmt.Errorf("engine: operation on %q has no mutator", op.Name)
		}
	}
	r := &request{ops: ops}
	if err := e.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.values, r.err
}

// Apply merges deltas received from a peer (log entries of any origin)
// through the same write path and logs them for relay. Entries already
// applied are skipped, so redelivery is harmless. All of the entries are
// applied or, when Apply returns an error, none: not one field of them.
func (e *Engine) Apply(ctx context.Context, entries []store.Entry) error {
	r := &request{entries: entries}
	if err := e.submit(ctx, r); err != nil {
		return err
	}
	return r.err
}

// Readings stores the raw readings of entries sent apart from the log:
// the cloud's readings stream, whose node sent the same entries without
// their raw readings, as deltas, first (package cloud). The entries may
// come in any order (newest first, say); store.DB.ReadingsHeld keeps, per
// origin, the ranges of entries already taken, so no reading is stored
// twice, however the entries were grouped. Nothing else of the entries is
// applied or logged. All of the entries are stored or, when Readings
// returns an error, none.
func (e *Engine) Readings(ctx context.Context, entries []store.Entry) error {
	r := &request{entries: entries, readings: true}
	if err := e.submit(ctx, r); err != nil {
		return err
	}
	return r.err
}

func (e *Engine) submit(ctx context.Context, r *request) error {
	r.done = make(chan struct{})
	select {
	case e.reqs <- r:
	case <-e.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-e.stopped:
		// Run drained the queue when it stopped; a request sent after
		// that is never answered, nor committed.
		select {
		case <-r.done:
			return nil
		default:
			return ErrStopped
		}
	case <-ctx.Done():
		// The operation may still commit; the caller stops waiting.
		return ctx.Err()
	}
}

// Run commits operations until ctx is cancelled, or until the store fails
// (store.ErrFailed), which it returns, also when the store failed while
// Run committed what it held at cancellation: the node must then open the
// store again. Requests queued when it stops are answered with ErrStopped.
//
// Commits are pipelined: while one group is being committed (by a
// goroutine of Run's that writes and fsyncs it), Run builds the next group
// from the requests that arrive meanwhile, on top of the first group's
// state, and hands it over as soon as the first is durable. No request is
// answered before its own group is durable. If the first group fails, the
// second is built again from the committed state, so a failed group's
// effects never reach the store through the next one.
func (e *Engine) Run(ctx context.Context) error {
	flights := make(chan *flight)
	var committer sync.WaitGroup
	committer.Go(func() {
		for f := range flights {
			f.done <- e.db.Commit(f.b)
		}
	})
	defer func() {
		close(flights)
		committer.Wait()
		close(e.stopped)
		for {
			select {
			case r := <-e.reqs:
				r.err = ErrStopped
				close(r.done)
			default:
				return
			}
		}
	}()
	var (
		fl   *flight    // the group being committed, if any
		next []*request // requests received while it is
		w    *work      // next, built on fl's state; nil when next is empty
	)
	for {
		if err := e.db.Failed(); err != nil {
			// Whichever group's commit failed: the store takes no more.
			if fl != nil {
				e.land(fl, <-fl.done)
			}
			e.finish(nil, next, err)
			return err
		}
		reqs := e.reqs
		if len(next) >= e.cfg.MaxBatchOps {
			reqs = nil // the next group is full: let the queue fill
		}
		var landed chan error
		if fl != nil {
			landed = fl.done
		}
		select {
		case <-ctx.Done():
			if fl != nil {
				e.land(fl, <-fl.done)
			}
			if len(next) > 0 {
				reset(next)
				e.commit(next)
			}
			// A store that failed on the way out is still a failure.
			return e.db.Failed()
		case r := <-reqs:
			if fl == nil {
				fl = e.launch(flights, e.gather(r), nil)
				continue
			}
			if w == nil {
				w = newWork(e, fl.w)
			}
			next = append(next, r)
			w.add(r)
		case err := <-landed:
			if !e.land(fl, err) {
				w = nil // built on a group that failed
			}
			fl = nil
			if len(next) > 0 {
				fl = e.launch(flights, next, w)
				next, w = nil, nil
			}
		}
	}
}

// flight is a group handed to Run's committer: its work, what to commit
// (taken from the work on Run's goroutine), its requests, and where the
// committer reports the outcome.
type flight struct {
	w     *work
	b     store.Batch
	batch []*request
	done  chan error
}

// gather returns r and the requests queued behind it, up to MaxBatchOps.
func (e *Engine) gather(r *request) []*request {
	batch := []*request{r}
	for len(batch) < e.cfg.MaxBatchOps {
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// launch hands batch, built as w (nil: not built yet), to the committer
// and returns its flight. A batch that cannot be committed as built (one
// of its requests failed midway, or needs the committed state) is
// committed by commit instead, before launch returns nil.
func (e *Engine) launch(flights chan<- *flight, batch []*request, w *work) *flight {
	if w == nil {
		reset(batch) // of a build on a group that failed
		w = newWork(e, nil)
		for _, r := range batch {
			w.add(r)
		}
	}
	if w.redo {
		reset(batch)
		e.commit(batch)
		return nil
	}
	w.base = nil // the group it was built on is committed now
	f := &flight{w: w, b: w.batch(), batch: batch, done: make(chan error, 1)}
	flights <- f
	return f
}

// land answers the requests of f, whose commit returned err, and reports
// whether its state is now committed.
func (e *Engine) land(f *flight, err error) bool {
	if errors.Is(err, store.ErrTxnTooBig) && len(f.batch) > 1 {
		reset(f.batch)
		e.commit(f.batch)
		return false
	}
	e.finish(f.w, f.batch, err)
	return err == nil
}

// reset clears what building a group left in its requests, to build them
// again.
func reset(batch []*request) {
	for _, r := range batch {
		r.values, r.err = nil, nil
	}
}

// commit applies and commits one group, answering every request. It is
// the unpipelined path: for groups that could not be built ahead, and for
// the rest of a group after one of its requests failed midway.
func (e *Engine) commit(batch []*request) {
	for {
		w := newWork(e, nil)
		bad := -1
		for i, r := range batch {
			if r.err != nil {
				continue
			}
			if err := w.do(r); err != nil {
				if isMidway(err) {
					// Applying it changed the working state in place:
					// fail it and redo the group without it.
					r.err, bad = err, i
					break
				}
				r.err = err
			}
		}
		if bad >= 0 {
			continue
		}
		err := e.db.Commit(w.batch())
		if errors.Is(err, store.ErrTxnTooBig) && len(batch) > 1 {
			// Too many writes for one transaction: commit the group in
			// two halves, each answered when it is durable.
			for _, r := range batch {
				if !errors.Is(r.err, store.ErrTxnTooBig) {
					r.values = nil
				}
			}
			e.commit(batch[:len(batch)/2])
			e.commit(batch[len(batch)/2:])
			return
		}
		e.finish(w, batch, err)
		return
	}
}

// isMidway reports whether err failed a request after it changed the
// working state: whatever fails a request after any part of it was
// applied (an operation, a peer's entry, a field of a delta) is wrapped
// in errPartial, so that the group is built again without it and a
// refused request leaves nothing of itself in the store.
func isMidway(err error) bool {
	return errors.Is(err, store.ErrTooLarge) || errors.Is(err, errPartial)
}

// finish makes w the committed state if its commit succeeded (err nil),
// then answers every request of batch.
func (e *Engine) finish(w *work, batch []*request, err error) {
	if err == nil {
		e.ctx, e.logvv = w.ctx, w.logvv
		names := make([]string, 0, len(w.encoded))
		for name, enc := range w.encoded {
			e.cache.put(name, enc)
			names = append(names, name)
		}
		if e.cfg.OnCommit != nil {
			e.cfg.OnCommit(names)
		}
	}
	for _, r := range batch {
		if r.err == nil {
			r.err = err
		}
		if r.err != nil {
			r.values = nil
		}
		close(r.done)
	}
}

// work is the state of one group being built: the fields touched so far
// (by name), a working copy of the context and the log entries.
type work struct {
	e *Engine
	// base is the group still being committed that this one is built on;
	// nil: built on the committed state.
	base *work
	// redo: the group must be built again by commit (see add).
	redo    bool
	ctx     crdt.Context
	logvv   crdt.VersionVector
	names   map[string]map[crdt.Type]crdt.Value
	encoded map[string][]byte // new record of each touched name; nil: deleted
	loaded  map[string]int    // size of the record each name had before the group
	entries []store.Entry
	// joined counts the local requests in the last entry and bounds its
	// encoded delta (see logLocal); no requests: it is not a local entry
	// that others may join.
	joined struct{ requests, bytes int }
	fs     []store.Fact
	// held is store.DB.ReadingsHeld, read and changed by a readings
	// stream's entries.
	held map[crdt.ReplicaID]crdt.Ranges
	// transfer is the state transfer progress to store; transferDone
	// deletes it.
	transfer     *store.Transfer
	transferDone bool
}

// newWork returns a work on the committed state, or on base's when base is
// a group still being committed.
func newWork(e *Engine, base *work) *work {
	w := &work{e: e, base: base, names: map[string]map[crdt.Type]crdt.Value{}, encoded: map[string][]byte{}, loaded: map[string]int{}}
	if base != nil {
		w.ctx, w.logvv = base.ctx.Clone(), base.logvv.Clone()
	} else {
		w.ctx, w.logvv = e.ctx.Clone(), e.logvv.Clone()
	}
	return w
}

// add builds r into the group. A request that fails on its own is
// answered with its error when the group lands. One that fails midway, or
// that needs the committed state (a page of state transfer, a readings
// stream, forgetting a transfer) while w is built on a group not yet
// committed, sets redo: the group is then built again by commit.
func (w *work) add(r *request) {
	if w.redo {
		return
	}
	if w.base != nil && (r.page != nil || r.readings || r.forget) {
		w.redo = true
		return
	}
	if err := w.do(r); err != nil {
		if isMidway(err) {
			w.redo = true
			return
		}
		r.err = err
	}
}

// fields returns the working state of name, decoded afresh from the cache
// or the store: values the group mutates are never shared with callers of
// an earlier group.
func (w *work) fields(name string) (map[crdt.Type]crdt.Value, error) {
	if vs, ok := w.names[name]; ok {
		return vs, nil
	}
	if w.base != nil {
		if vs, ok := w.base.names[name]; ok {
			// Decoded by the group this one is built on, which no
			// longer changes it: a copy costs less than a decode.
			cp := make(map[crdt.Type]crdt.Value, len(vs))
			for t, v := range vs {
				cp[t] = crdt.Clone(v)
			}
			w.names[name], w.loaded[name] = cp, w.base.recordSize(name)
			return cp, nil
		}
	}
	enc, ok := w.base.record(name)
	if !ok {
		enc, ok = w.e.cache.get(name)
	}
	if !ok {
		var err error
		if enc, err = w.e.db.GetRecord(name); err != nil {
			return nil, err
		}
		w.e.cache.put(name, enc)
	}
	vs := map[crdt.Type]crdt.Value{}
	if enc != nil {
		var err error
		if vs, err = store.DecodeRecord(name, enc); err != nil {
			return nil, err
		}
	}
	w.names[name], w.loaded[name] = vs, len(enc)
	return vs, nil
}

// recordSize returns the size of the record of name in w's state: the one
// w writes, or else the one it read.
func (w *work) recordSize(name string) int {
	if enc, ok := w.encoded[name]; ok {
		return len(enc)
	}
	return w.loaded[name]
}

// record returns the record of name that w writes (nil: deleted), if it
// writes one. A nil w writes nothing.
func (w *work) record(name string) ([]byte, bool) {
	if w == nil {
		return nil, false
	}
	enc, ok := w.encoded[name]
	return enc, ok
}

// errPartial marks the failure of a request after some of its parts
// changed the working state.
var errPartial = errors.New("engine: request failed midway")

// partial marks err, which failed a request after some of its parts
// changed the working state, as midway (see isMidway).
func partial(err error) error {
	if isMidway(err) {
		return err
	}
	return fmt.Errorf("%w: %w", errPartial, err)
}

func (w *work) do(r *request) error {
	if r.page != nil {
		return w.join(r.page)
	}
	if r.forget {
		w.transfer, w.transferDone = nil, true
		return nil
	}
	if r.readings {
		for i, en := range r.entries {
			if err := w.storeReadings(en); err != nil {
				if i > 0 {
					return partial(err)
				}
				return err
			}
		}
		return nil
	}
	if r.ops == nil {
		// All of the entries or none: an entry refused after others were
		// applied fails the request midway. Entries received before
		// change nothing, and apply logs every entry it applies.
		logged := len(w.entries)
		for _, en := range r.entries {
			if err := w.applyRemote(en); err != nil {
				if len(w.entries) > logged {
					return partial(err)
				}
				return err
			}
		}
		return nil
	}
	before := w.ctx.Max(w.e.replica)
	if before > crdt.MaxSeq-1<<31 {
		return fmt.Errorf("engine: replica %s has used up its sequence numbers (%d); give the node a new identity", w.e.replica, before)
	}
	now := w.e.hlc.Now()
	var group crdt.Causal
	// bound is over the encoded delta of r (see logLocal): each field's
	// delta holds its key and parts of its value before and after.
	bound := 0
	r.values = make([]crdt.Value, len(r.ops))
	for i, op := range r.ops {
		d, err := w.delta(&op, now)
		if err == nil {
			bound += w.recordSize(op.Name) + fieldKeys(d) + op.named
			err = w.merge(d)
			bound += w.recordSize(op.Name)
		}
		if err != nil {
			if i > 0 {
				return partial(err)
			}
			return err
		}
		if !op.Remove && op.Type != crdt.TypeReadingSet {
			r.values[i] = w.names[op.Name][op.Type]
		}
		if i == 0 {
			group = d // merge retained none of it
			continue
		}
		if err := group.JoinDelta(d); err != nil {
			return partial(err)
		}
	}
	// Every operation takes at least one dot, so each request has its
	// dots in the log and each origin's log is gap-free.
	if group.Ctx.Max(w.e.replica) <= before {
		dot := crdt.Dot{Replica: w.e.replica, Seq: before + 1}
		group.Ctx.Add(dot)
		w.ctx.Add(dot)
	}
	last := group.Ctx.Max(w.e.replica)
	if err := w.logLocal(r, store.Entry{Origin: w.e.replica, First: before + 1, Last: last, Delta: group}, bound); err != nil {
		return partial(err)
	}
	w.logvv[w.e.replica] = last
	return nil
}

// fieldKeys bounds what the fields of the key-space delta d take besides
// the parts of their values: each one's name and frames (a removal names
// every type its name holds).
func fieldKeys(d crdt.Causal) int {
	m, ok := d.Value.(*crdt.ORMap)
	if !ok {
		return 0
	}
	n := 0
	for _, f := range m.Fields() {
		n += len(f.Name) + fieldOverhead
	}
	return n
}

// Bounds of a log entry that joins local requests (see logLocal).
const (
	// joinBytes bounds the encoded delta of an entry that joins requests,
	// so that its log record (the delta and a few small fields) stays
	// under store.ValueThreshold, in Badger's LSM tree: a commit whose
	// values all stay there writes and syncs one file, Badger's WAL, and
	// a group of 64 counters' increments in one entry did not
	// (docs/BENCHMARKS.md). Every request takes a dot, so it also bounds
	// the requests of an entry and the dots of their contexts, far under
	// the out-of-order dots a replication message may carry
	// (replication.MaxCloudDots).
	joinBytes = store.ValueThreshold - 32
	// maxDotBytes bounds the encoding of one dot of a context (a replica
	// ID and a sequence number, 9 bytes each in CBOR, in an array),
	// fieldOverhead what a field of an ORMap delta adds to its name and
	// the parts of its values (its key's frame and type, and its value's
	// frame, which is there even when the value is empty), and
	// deltaOverhead that of the delta's frame around its fields.
	maxDotBytes   = 20
	fieldOverhead = 16
	deltaOverhead = 64
)

// logLocal logs en, the delta of the local request r. It joins it into
// the group's last entry when that one holds the local requests just
// before r and the joined delta stays within joinBytes: concurrent
// writers then share a few log entries per group, as the operations of
// one DoAll request always share one. That halves the Badger writes of a
// group of one-operation requests (its entries and its names' records
// were one each per request) and shrinks what replication sends. A
// request over the bound alone is logged alone. Readings never join:
// their entries are the readings stream's unit.
//
// bound is over the size of r's fields in its delta: what it added is in
// the fields' records after it, what it removed in those before it. With
// its context's dots, and the frame of the delta they join, it bounds the
// encoded joined delta.
func (w *work) logLocal(r *request, en store.Entry, bound int) error {
	for _, op := range r.ops {
		if op.Type == crdt.TypeReadingSet {
			w.entries = append(w.entries, en)
			w.joined.requests = 0 // joins nothing
			return nil
		}
	}
	bytes := bound + maxDotBytes*en.Delta.Ctx.Len()
	if n := len(w.entries); n > 0 && w.joined.requests > 0 && w.joined.bytes+bytes <= joinBytes {
		prev := &w.entries[n-1]
		if prev.Last == en.First-1 {
			if err := prev.Delta.JoinDelta(en.Delta); err != nil {
				return err
			}
			prev.Last = en.Last
			w.joined.requests++
			w.joined.bytes += bytes
			return nil
		}
	}
	w.entries = append(w.entries, en)
	w.joined.requests, w.joined.bytes = 1, deltaOverhead+bytes
	if w.joined.bytes > joinBytes {
		w.joined.requests = 0 // joins nothing
	}
	return nil
}

// delta returns the key-space delta of a local operation on the working
// state.
func (w *work) delta(op *Op, now crdt.Timestamp) (crdt.Causal, error) {
	vs, err := w.fields(op.Name)
	if err != nil {
		return crdt.Causal{}, err
	}
	view := make(map[crdt.Field]crdt.Value, len(vs))
	for t, v := range vs {
		if !op.Remove && t != op.Type && op.Type != crdt.TypeReadingSet {
			return crdt.Causal{}, fmt.Errorf("%w: %q holds a %s, not a %s", ErrTypeMismatch, op.Name, t, op.Type)
		}
		view[crdt.Field{Name: op.Name, Type: t}] = v
	}
	m := crdt.NewORMap(view)
	if op.Remove {
		return m.Remove(op.Name), nil
	}
	f := crdt.Field{Name: op.Name, Type: op.Type}
	return m.Update(f, func(v crdt.Value) (crdt.Causal, error) {
		return op.Mutate(v, crdt.NewDotGen(&w.ctx, w.e.replica), now)
	})
}

func (w *work) applyRemote(en store.Entry) error {
	if en.Origin == 0 || en.First == 0 || en.Last < en.First {
		return fmt.Errorf("engine: invalid log entry %s:%d-%d", en.Origin, en.First, en.Last)
	}
	// What the log received decides, not the context: a context may
	// cover an origin's dots (another delta superseded them) before
	// their entry arrives, and the entry must still be applied for its
	// own context, or an entry it superseded could survive here.
	have := w.logvv[en.Origin]
	if en.Last <= have {
		return nil // received before
	}
	if en.First > have+1 {
		return fmt.Errorf("engine: log entry %s:%d-%d after a gap (the log holds up to %d)", en.Origin, en.First, en.Last, have)
	}
	if !en.Delta.Ctx.ContainsRange(en.Origin, have+1, en.Last) {
		return fmt.Errorf("engine: log entry %s:%d-%d lacks some of its dots after %d in its delta's context", en.Origin, en.First, en.Last, have)
	}
	// A group that overlaps what is held (joined differently by another
	// peer) is logged from its first new dot, so each origin's log keys
	// stay increasing and never nest: the entry before a dot is always
	// the one that covers it.
	en.First = have + 1
	m, ok := en.Delta.Value.(*crdt.ORMap)
	if en.Delta.Value != nil && !ok {
		return fmt.Errorf("engine: log entry %s:%d holds a %s, not a key-space delta", en.Origin, en.First, en.Delta.Value.Type())
	}
	if m != nil {
		for _, f := range m.Fields() {
			if err := store.ValidateName(f.Name); err != nil {
				return fmt.Errorf("engine: log entry %s:%d: %w", en.Origin, en.First, err)
			}
		}
	}
	return w.apply(en)
}

// storeReadings stores the raw readings of a readings stream's entry that
// are not held yet, as facts, and adds its range to what is held.
func (w *work) storeReadings(en store.Entry) error {
	if en.Origin == 0 || en.First == 0 || en.Last < en.First {
		return fmt.Errorf("engine: invalid readings entry %s:%d-%d", en.Origin, en.First, en.Last)
	}
	if w.held == nil {
		w.held = w.e.db.ReadingsHeld()
	}
	have := w.held[en.Origin]
	held := have.Add(en.First, en.Last)
	if len(held) > crdt.MaxRanges {
		// Holes no node fills (entries evicted from every log by a data
		// budget) would split what is held without end: the narrowest one
		// is given up, as if held, so that the ranges stay few.
		var closed crdt.Range
		held, closed = held.CloseNarrowestGap()
		w.e.log.Warn("engine: giving up raw readings no node has sent, to keep what is held of an origin in few ranges",
			"origin", en.Origin, "first", closed.First, "last", closed.Last)
	}
	m, ok := en.Delta.Value.(*crdt.ORMap)
	if en.Delta.Value != nil && !ok {
		return fmt.Errorf("engine: readings entry %s:%d holds a %s, not a key-space delta", en.Origin, en.First, en.Delta.Value.Type())
	}
	var facts []store.Fact
	if m != nil {
		for _, f := range m.Fields() {
			rs, ok := m.Field(f).(*crdt.ReadingSet)
			if !ok {
				continue
			}
			if err := store.ValidateName(f.Name); err != nil {
				return fmt.Errorf("engine: readings entry %s:%d: %w", en.Origin, en.First, err)
			}
			fact := store.Fact{Name: f.Name, Origin: en.Origin}
			rs.Each(func(d crdt.Dot, r crdt.Reading) {
				if d.Replica == en.Origin && d.Seq >= en.First && d.Seq <= en.Last && !have.Contains(d.Seq) {
					fact.Seqs = append(fact.Seqs, d.Seq)
					fact.Readings = append(fact.Readings, r)
				}
			})
			if len(fact.Seqs) > 0 {
				facts = append(facts, fact)
			}
		}
	}
	// The facts and what is held change together, or not at all.
	w.fs = append(w.fs, facts...)
	w.held[en.Origin] = held
	return nil
}

// apply merges a log entry's delta into the working state and logs it.
func (w *work) apply(en store.Entry) error {
	if err := w.merge(en.Delta); err != nil {
		return err
	}
	w.entries = append(w.entries, en)
	w.joined.requests = 0
	if en.First <= w.logvv[en.Origin]+1 && en.Last > w.logvv[en.Origin] {
		w.logvv[en.Origin] = en.Last
	}
	return nil
}

// merge merges a key-space delta into the working state: field states
// into their records, readings into facts, and its context into the
// working context. An error after some of it was merged (a record that
// cannot be read, after another field's) is midway (see isMidway).
func (w *work) merge(d crdt.Causal) error {
	if m, ok := d.Value.(*crdt.ORMap); ok {
		for i, f := range m.Fields() {
			if err := w.mergeField(f, m.Field(f), &d.Ctx); err != nil {
				if i > 0 {
					return partial(err)
				}
				return err
			}
		}
	}
	w.ctx.Merge(&d.Ctx)
	return nil
}

// mergeField merges field f's delta v, of context dc, into the working
// state. An error before v changed the working state (reading the
// field's record, or v of another type than the field holds) is
// returned as it is, a later one as midway.
func (w *work) mergeField(f crdt.Field, v crdt.Value, dc *crdt.Context) error {
	if f.Type == crdt.TypeReadingSet {
		w.facts(f.Name, v)
		return nil
	}
	vs, err := w.fields(f.Name)
	if err != nil {
		return err
	}
	// Each field merges with the contexts as they were before the
	// delta; merge merges the context once, after its fields.
	v, err = crdt.ApplyValue(vs[f.Type], &w.ctx, v, dc)
	if err != nil {
		return err
	}
	if v == nil {
		delete(vs, f.Type)
	} else {
		vs[f.Type] = v
	}
	enc, err := store.EncodeRecord(f.Name, vs)
	if err != nil {
		return partial(err)
	}
	w.encoded[f.Name] = enc
	return nil
}

// facts adds the readings of a reading-set delta that are new to the
// working context as facts, one per origin.
func (w *work) facts(name string, v crdt.Value) {
	rs, ok := v.(*crdt.ReadingSet)
	if !ok {
		return
	}
	byOrigin := map[crdt.ReplicaID]*store.Fact{}
	rs.Each(func(d crdt.Dot, r crdt.Reading) {
		if w.ctx.Contains(d) {
			return
		}
		f := byOrigin[d.Replica]
		if f == nil {
			f = &store.Fact{Name: name, Origin: d.Replica}
			byOrigin[d.Replica] = f
		}
		f.Seqs = append(f.Seqs, d.Seq)
		f.Readings = append(f.Readings, r)
	})
	for _, f := range byOrigin {
		w.fs = append(w.fs, *f)
	}
}

func (w *work) batch() store.Batch {
	b := store.Batch{Names: w.encoded, Entries: w.entries, Facts: w.fs, Context: w.ctx, HLC: w.e.hlc.Last(), LogVector: w.logvv,
		Transfer: w.transfer, TransferDone: w.transferDone}
	b.ReadingsHeld = w.held
	return b
}
