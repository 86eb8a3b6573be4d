package store

import (
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Profile names a set of Badger options sized for a class of device.
type Profile string

// The profiles. LowMemory is the default.
const (
	// LowMemory suits devices with 1 GiB of RAM or less (Raspberry Pi Zero 2
	// W, 512 MiB): small memtables and caches, and value-log files of
	// 64 MiB, which also keeps 32-bit ARM within its address space.
	LowMemory Profile = "low-memory"
	// Standard suits gateways and servers with 2 GiB or more.
	Standard Profile = "standard"
)

// Durability says when a commit reaches the disk.
type Durability string

// The durability modes. Fsync is the default.
const (
	// Fsync makes every commit (one per group of writes) durable before it
	// is acknowledged: it survives a power cut.
	Fsync Durability = "fsync"
	// None leaves flushing to the operating system: a crash of the process
	// loses nothing, a power cut may lose the last seconds of writes. For
	// tests and throwaway data only.
	None Durability = "none"
)

// Options configure a DB.
type Options struct {
	// Dir is the data directory. It is created if missing, unless
	// ReadOnly is set.
	Dir string
	// ReadOnly opens an existing store without writing to its directory:
	// Badger takes a shared lock and opens its files read-only, no
	// background work (GC, retention, budget) runs, and commits fail
	// with ErrReadOnly. Open fails with ErrNoStore when Dir holds no edged
	// store, and with ErrUnclean when the store was not closed cleanly
	// (reading it needs a recovery, which writes). For backups of a
	// stopped node.
	ReadOnly bool
	// Profile selects the Badger options; empty means LowMemory.
	Profile Profile
	// Durability selects when commits are flushed; empty means Fsync.
	Durability Durability
	// Budget caps the bytes of the data directory on disk (Badger's
	// tables and value logs, as du counts them). Over it the store refuses
	// writes with ErrBudget, and the next GC drops the oldest delta-log
	// entries (peers then catch up by state transfer), then the oldest
	// readings by the hour, worth the excess plus a tenth of the budget
	// (weighed as they are stored: compressed in tables, as is in the value
	// log), makes Badger return their space, and writes resume. Space of
	// the value log comes back only when Badger rewrites a file (at half
	// garbage, never the one it writes to): until then the budget counts
	// it as free (Stats.Unreclaimed), and the directory can stay over the
	// budget by that much. Key state is never evicted; when it alone
	// exceeds the budget, writes stay refused. Readings are not merged
	// (CompactReadings) while the store is over its budget.
	// Zero means no budget.
	Budget int64
	// MinFreeBytes is the free disk space below which writes are refused
	// with ErrDiskFull. Badger memory-maps its write-ahead log and value
	// log as sparse files, so on a full disk it would crash with SIGBUS
	// rather than fail a write: the store stops writing while enough space
	// remains for the files it may still fill. Zero means the profile's
	// default (two memtables plus one value-log file plus 16 MiB).
	MinFreeBytes int64
	// FreeSpace reports the free bytes of the file system holding dir;
	// nil means statfs. Tests inject it.
	FreeSpace func(dir string) (int64, error)
	// CommitFault, when set, is called after each commit that Badger
	// reported done; an error it returns is taken as Badger's. Tests
	// inject the failure of a write that Badger had already made.
	CommitFault func() error
	// GCInterval is how often value-log garbage collection runs; zero
	// means 5 minutes.
	GCInterval time.Duration
	// ReadingsRetention is how long readings are kept, counted from their
	// time; they are deleted by the hour at each GC. Zero keeps them
	// until the budget needs the space.
	ReadingsRetention time.Duration
	// ReadingsMaxBytes caps the bytes of stored readings; the oldest hours
	// are deleted at each GC while they take more. Zero means no cap.
	ReadingsMaxBytes int64
	// Now is the clock retention is measured against; nil means time.Now.
	Now func() time.Time
	// Logger receives the store's and Badger's messages; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("store: no data directory given")
	}
	if o.Profile == "" {
		o.Profile = LowMemory
	}
	if o.Durability == "" {
		o.Durability = Fsync
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FreeSpace == nil {
		o.FreeSpace = statfsFree
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReadingsRetention < 0 || o.ReadingsMaxBytes < 0 {
		return o, fmt.Errorf("store: negative readings retention %s or cap %d", o.ReadingsRetention, o.ReadingsMaxBytes)
	}
	switch o.Profile {
	case LowMemory, Standard:
	default:
		return o, fmt.Errorf("store: unknown profile %q (want %q or %q)", o.Profile, LowMemory, Standard)
	}
	switch o.Durability {
	case Fsync, None:
	default:
		return o, fmt.Errorf("store: unknown durability %q (want %q or %q)", o.Durability, Fsync, None)
	}
	if o.Budget < 0 {
		return o, fmt.Errorf("store: negative budget %d", o.Budget)
	}
	if o.MinFreeBytes == 0 {
		b := o.badgerOptions()
		o.MinFreeBytes = 2*b.MemTableSize + b.ValueLogFileSize + 16<<20
	}
	return o, nil
}

// statfsFree returns the bytes available to unprivileged users on the file
// system holding dir.
func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// ValueThreshold is the size from which Badger keeps a value in its value
// log, so that compactions do not rewrite it, rather than in its LSM tree.
// Records are small CBOR, and so are the log entries that the engine's
// groups share (it keeps them under this size). A commit whose values all
// stay in the LSM tree writes and syncs only Badger's WAL (with the patch
// in third_party/; unpatched, Badger also synced the value log). A larger
// threshold kept more readings in the tree: fragments of 50 readings are
// over 1 KiB, and at 4 KiB the overload run's Go heap tripled
// (docs/BENCHMARKS.md).
const ValueThreshold = 1 << 10

// badgerOptions spells out every Badger option that matters, never relying
// on the library's defaults (which assume a server: 64 MiB memtables ×5,
// a 256 MiB block cache, 1 GiB value-log files).
func (o Options) badgerOptions() badger.Options {
	b := badger.DefaultOptions(o.Dir).
		// Not WithLoggingLevel: in v4 it replaces the logger with Badger's
		// own stderr logger. The slog handler's level filters instead.
		WithLogger(badgerLogger{o.Logger}).
		WithReadOnly(o.ReadOnly).
		// One commit per group of writes, fsynced when durability asks.
		WithSyncWrites(o.Durability == Fsync).
		// Single writer (the engine), so no conflict detection needed.
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		// See ValueThreshold.
		WithValueThreshold(ValueThreshold).
		// Snappy is cheap on ARM and halves CBOR with repeated keys.
		WithCompression(options.Snappy).
		// Verify each block when it is read (also by compactions), not
		// whole tables on open: opening then touches no table, which cut
		// reopen after 1M keys from ~200 ms to ~15-45 ms.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithMetricsEnabled(false).
		WithCompactL0OnClose(true).
		WithBloomFalsePositive(0.01).
		WithBlockSize(4 << 10).
		WithMaxLevels(7).
		WithLevelSizeMultiplier(10).
		WithValueLogMaxEntries(1_000_000)
	switch o.Profile {
	case Standard:
		b = b.
			WithMemTableSize(64 << 20).
			WithNumMemtables(3).
			WithNumLevelZeroTables(5).
			WithNumLevelZeroTablesStall(15).
			WithBaseTableSize(8 << 20).
			WithBaseLevelSize(64 << 20).
			WithBlockCacheSize(64 << 20).
			WithIndexCacheSize(32 << 20).
			WithNumCompactors(2).
			WithNumGoroutines(4).
			WithValueLogFileSize(256 << 20)
	default: // LowMemory
		b = b.
			// 4 MiB memtables, two of them: 8 MiB of write buffers, and
			// a flush builds its table in buffers several times that
			// size. 15% of a memtable (614 KiB) caps one transaction;
			// values over the value threshold count only as pointers.
			// With these and the tables below, 1M keys fill a 128 MiB
			// cgroup (GOMEMLIMIT 80 MiB) at 23,000 ops/s; with 8 MiB
			// memtables and 1 MiB tables, at 10,300 (docs/BENCHMARKS.md).
			WithMemTableSize(4 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(8).
			// A compaction builds up to eight tables at once, and each
			// builder holds twice the table size or more until its
			// table is on disk: small tables keep that small.
			WithBaseTableSize(512 << 10).
			WithBaseLevelSize(10 << 20).
			// Caches bound the memory of blocks and of table indexes and
			// bloom filters, which otherwise grow with the data.
			WithBlockCacheSize(8 << 20).
			WithIndexCacheSize(8 << 20).
			WithNumCompactors(2).
			WithNumGoroutines(2).
			// ≤ 64 MiB so mmapped value logs fit 32-bit address spaces.
			WithValueLogFileSize(64 << 20)
	}
	// Same-size tables on every level: deeper levels otherwise double
	// their tables, and compaction allocates two table sizes per builder.
	// (v4 has no With method for it.)
	b.TableSizeMultiplier = 1
	return b
}

// badgerLogger routes Badger's logging to slog.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.log.Error("badger", "msg", fmt.Sprintf(f, a...)) }
func (l badgerLogger) Warningf(f string, a ...any) { l.log.Warn("badger", "msg", fmt.Sprintf(f, a...)) }
func (l badgerLogger) Infof(f string, a ...any)    { l.log.Info("badger", "msg", fmt.Sprintf(f, a...)) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.log.Debug("badger", "msg", fmt.Sprintf(f, a...)) }
