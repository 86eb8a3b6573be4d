package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
)

func openT(t testing.TB, o Options) *DB {
	t.Helper()
	db, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// commitOp commits one AWSet add of elem to name as replica 1, the way the
// engine does, and returns the log entry.
func commitOp(t testing.TB, db *DB, name, elem string) Entry {
	t.Helper()
	b := opBatch(t, db, name, elem)
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	return b.Entries[0]
}

// opBatch returns the batch of one AWSet add of elem to name as replica 1
// on db's state, as the engine builds it.
func opBatch(t testing.TB, db *DB, name, elem string) Batch {
	t.Helper()
	ctx := db.Context()
	vs, err := db.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	f := crdt.Field{Name: name, Type: crdt.TypeAWSet}
	view := map[crdt.Field]crdt.Value{}
	if v := vs[crdt.TypeAWSet]; v != nil {
		view[f] = v
	}
	first := ctx.Max(1) + 1
	d, err := crdt.NewORMap(view).Update(f, func(v crdt.Value) (crdt.Causal, error) {
		return v.(*crdt.AWSet).Add(crdt.NewDotGen(&ctx, 1), elem), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := crdt.ApplyValue(vs[crdt.TypeAWSet], &ctx, d.Value.(*crdt.ORMap).Field(f), &d.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx.Merge(&d.Ctx)
	enc, err := EncodeRecord(name, map[crdt.Type]crdt.Value{crdt.TypeAWSet: v})
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Origin: 1, First: first, Last: ctx.Max(1), Delta: d}
	return Batch{Names: map[string][]byte{name: enc}, Entries: []Entry{e}, Context: ctx}
}

func entries(t *testing.T, db *DB) []Entry {
	t.Helper()
	var es []Entry
	if err := db.AllEntries(func(e Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return es
}

func TestOpenRefusals(t *testing.T) {
	t.Run("second process", func(t *testing.T) {
		dir := t.TempDir()
		openT(t, Options{Dir: dir})
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("err = %v, want ErrLocked saying what to check", err)
		}
	})
	t.Run("newer format", func(t *testing.T) {
		dir := t.TempDir()
		db := openT(t, Options{Dir: dir})
		commitOp(t, db, "k", "x")
		if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, []byte{FormatVersion + 1}) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err := Open(Options{Dir: dir})
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "newer edged") {
			t.Fatalf("err = %v, want ErrFormat naming a newer edged", err)
		}
	})
	t.Run("foreign badger directory", func(t *testing.T) {
		dir := t.TempDir()
		// Small files: Badger's default value log (mapped at 2 GiB) does
		// not always find room in a 32-bit address space, and this suite
		// runs on armv7 too.
		bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueLogFileSize(1 << 20).WithMemTableSize(4 << 20).WithValueThreshold(1 << 10))
		if err != nil {
			t.Fatal(err)
		}
		bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x"), []byte("y")) })
		bdb.Close()
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrFormat) {
			t.Fatalf("err = %v, want ErrFormat", err)
		}
	})
	for _, damage := range []struct {
		name string
		do   func(path string) error
	}{
		{"garbled manifest", func(p string) error { return os.WriteFile(p, []byte("not a manifest at all"), 0o600) }},
		{"truncated manifest", func(p string) error { return os.Truncate(p, 3) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openT(t, Options{Dir: dir})
			commitOp(t, db, "k", "x")
			db.Close()
			if err := damage.do(filepath.Join(dir, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Options{Dir: dir})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("err = %v, want ErrCorrupt telling how to restore", err)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "MANIFEST")); statErr != nil {
				t.Fatal("the damaged directory was reset")
			}
		})
	}
}

func TestGarbageCollectionFollowsWatermarks(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	for i := range 6 {
		commitOp(t, db, "s", string(rune('a'+i)))
	}
	if n, _ := db.CollectGarbage(); n != 0 {
		t.Fatalf("collected %d entries with no destination tracked", n)
	}
	defer func(n int) { dropChunk = n }(dropChunk)
	dropChunk = 2 // collection works across chunks
	must(t, db.SetWatermark("peer", crdt.VersionVector{1: 5}))
	must(t, db.SetWatermark("cloud", crdt.VersionVector{1: 3}))
	if n, _ := db.CollectGarbage(); n != 3 {
		t.Fatalf("collected %d, want the 3 entries both destinations acknowledged", n)
	}
	es := entries(t, db)
	if len(es) != 3 || es[0].First != 4 {
		t.Fatalf("remaining entries %v, want 4…6", es)
	}
	var after []crdt.Seq
	must(t, db.Entries(1, 4, func(e Entry) error { after = append(after, e.First); return nil }))
	if len(after) != 2 || after[0] != 5 {
		t.Fatalf("entries after 4: %v, want [5 6]", after)
	}
	var mid []crdt.Seq // an entry spanning dots is returned from any dot in it
	batch := Batch{Entries: []Entry{{Origin: 2, First: 1, Last: 3}, {Origin: 2, First: 4, Last: 4}}, Context: db.Context()}
	must(t, db.Commit(batch))
	must(t, db.Entries(2, 1, func(e Entry) error { mid = append(mid, e.First); return nil }))
	if len(mid) != 2 || mid[0] != 1 {
		t.Fatalf("entries of origin 2 after 1: %v, want [1 4]", mid)
	}
	var down []crdt.Seq // newest first, from the entry holding the dot
	must(t, db.EntriesDown(2, 3, func(e Entry) error { down = append(down, e.First); return nil }))
	if len(down) != 1 || down[0] != 1 {
		t.Fatalf("entries of origin 2 down from 3: %v, want [1]", down)
	}
	down = nil
	must(t, db.EntriesDown(1, 9, func(e Entry) error { down = append(down, e.First); return nil }))
	if len(down) != 3 || down[0] != 6 || down[2] != 4 {
		t.Fatalf("entries of origin 1 down from 9: %v, want [6 5 4]", down)
	}
	must(t, db.RemoveWatermark("cloud"))
	if n, _ := db.CollectGarbage(); n != 2 {
		t.Fatalf("collected %d, want 2 once only the peer is tracked", n)
	}
	vs, _ := db.Get("s")
	if got := vs[crdt.TypeAWSet].(*crdt.AWSet).Len(); got != 6 {
		t.Fatalf("state lost elements with the log: %d", got)
	}
}

func TestBudget(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	for i := range 20 {
		commitOp(t, db, "s", string(rune('a'+i)))
	}
	db.opts.Budget = 1 // everything is over it
	db.measure()
	err := db.Commit(Batch{})
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v, want ErrBudget", err)
	}
	db.collect()
	if db.Stats().Evicted == 0 || len(entries(t, db)) != 0 {
		t.Fatalf("over budget: %d entries evicted, %d left; want the log dropped", db.Stats().Evicted, len(entries(t, db)))
	}
	vs, _ := db.Get("s")
	if got := vs[crdt.TypeAWSet].(*crdt.AWSet).Len(); got != 20 {
		t.Fatalf("key state evicted: %d elements left", got)
	}
	db.opts.Budget = 0
	commitOp(t, db, "s", "after")
}

func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	db := openT(t, Options{Dir: t.TempDir(), FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	commitOp(t, db, "s", "a")
	before := db.Context()

	free.Store(db.opts.MinFreeBytes - 1)
	err := db.Commit(Batch{Context: before})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("err = %v, want ErrDiskFull", err)
	}
	if vs, err := db.Get("s"); err != nil || !vs[crdt.TypeAWSet].(*crdt.AWSet).Contains("a") {
		t.Fatalf("reads fail on a full disk: %v", err)
	}
	free.Store(1 << 40)
	commitOp(t, db, "s", "b")
}

// TestFailedCommitStopsCommits checks that a commit Badger failed after
// taking it (here: made, then reported failed) fails with ErrFailed, as
// does every commit after it, while reads go on; and that the store opened
// again holds what the failed commit left (here: all of it) and takes
// writes.
func TestFailedCommitStopsCommits(t *testing.T) {
	for _, fault := range []error{syscall.EIO, syscall.ENOSPC} {
		t.Run(fault.Error(), func(t *testing.T) {
			var failing atomic.Bool
			o := Options{Dir: t.TempDir(), Durability: None, CommitFault: func() error {
				if failing.Load() {
					return fault
				}
				return nil
			}}
			db := openT(t, o)
			commitOp(t, db, "s", "a")
			failing.Store(true)
			err := db.Commit(opBatch(t, db, "s", "b"))
			if !errors.Is(err, ErrFailed) || !errors.Is(err, fault) {
				t.Fatalf("failed commit: err = %v, want ErrFailed wrapping %v", err, fault)
			}
			failing.Store(false)
			if err := db.Commit(opBatch(t, db, "s", "c")); !errors.Is(err, ErrFailed) {
				t.Fatalf("commit after the failed one: err = %v, want ErrFailed", err)
			}
			if !errors.Is(db.Failed(), ErrFailed) {
				t.Fatalf("Failed() = %v", db.Failed())
			}
			if vs, err := db.Get("s"); err != nil || !vs[crdt.TypeAWSet].(*crdt.AWSet).Contains("a") {
				t.Fatalf("read after the failure: %v %v", vs, err)
			}
			must(t, db.Close())
			db = openT(t, o)
			if db.Failed() != nil {
				t.Fatalf("reopened store: Failed() = %v", db.Failed())
			}
			vs, err := db.Get("s")
			if err != nil || !vs[crdt.TypeAWSet].(*crdt.AWSet).Contains("b") {
				t.Fatalf("reopened store lacks what the failed commit made: %v %v", vs, err)
			}
			commitOp(t, db, "s", "d")
		})
	}
}

// TestCommitRacingCloseIsNotAFailure checks that a commit that passed the
// closed check while Close runs, which Badger then refuses before taking
// it, fails with ErrClosed and does not fail the store.
func TestCommitRacingCloseIsNotAFailure(t *testing.T) {
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	db, err := Open(Options{Dir: t.TempDir(), Durability: None, FreeSpace: func(string) (int64, error) {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return 1 << 40, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	res := make(chan error, 1)
	go func() { res <- db.Commit(Batch{Context: db.Context()}) }()
	<-entered // past the closed check
	must(t, db.Close())
	close(release)
	if err := <-res; !errors.Is(err, ErrClosed) || errors.Is(err, ErrFailed) {
		t.Fatalf("commit racing Close: %v, want ErrClosed", err)
	}
	if db.Failed() != nil {
		t.Fatalf("Failed() = %v after a commit racing Close", db.Failed())
	}
}

// TestDiskFullTmpfs fills a real, small file system.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to mount a tmpfs (run as root, as CI does)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	db := openT(t, Options{Dir: filepath.Join(mnt, "data")})
	commitOp(t, db, "s", "a")

	filler := filepath.Join(mnt, "filler")
	// Runs before the store closes, even if the test fails midway: closing
	// on a full disk would write into Badger's mapped files.
	t.Cleanup(func() { os.Remove(filler) })
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // ENOSPC: the file system is full
		}
	}
	f.Close()
	if err := db.Commit(Batch{Context: db.Context()}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("commit on a full disk: err = %v, want ErrDiskFull", err)
	}
	if vs, err := db.Get("s"); err != nil || vs == nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	commitOp(t, db, "s", "b")
	vs, _ := db.Get("s")
	if !vs[crdt.TypeAWSet].(*crdt.AWSet).Contains("b") {
		t.Fatal("write after space returned is missing")
	}
}

// skipOrFail skips a test whose environment is missing, but fails it in
// CI (CI=true), where the environment is part of the contract.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestore(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	for i := range 10 {
		commitOp(t, db, "s", string(rune('a'+i)))
	}
	var buf strings.Builder
	must(t, db.Backup(&buf))

	dir := t.TempDir()
	must(t, Restore(Options{Dir: dir}, strings.NewReader(buf.String())))
	got := openT(t, Options{Dir: dir})
	vs, err := got.Get("s")
	if err != nil || vs[crdt.TypeAWSet].(*crdt.AWSet).Len() != 10 {
		t.Fatalf("restored set: %v %v", vs, err)
	}
	a, b := db.Context(), got.Context()
	if !a.Equal(&b) || len(entries(t, got)) != 10 {
		t.Fatal("restored context or log differs")
	}

	if err := Restore(Options{Dir: dir}, strings.NewReader(buf.String())); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over data: err = %v, want ErrNotEmpty", err)
	}
	if err := Restore(Options{Dir: filepath.Join(t.TempDir(), "x")}, strings.NewReader("garbage")); err == nil {
		t.Fatal("restore of garbage succeeded")
	}
	truncated := buf.String()[:len(buf.String())/2]
	if err := Restore(Options{Dir: filepath.Join(t.TempDir(), "y")}, strings.NewReader(truncated)); err == nil {
		t.Fatal("restore of a truncated backup succeeded")
	}
	// A frame whose length says 1 TiB: refused before anything allocates it.
	huge := backupMagic + "\x00\x00\x00\x00\x00\x01\x00\x00" + "x"
	err = Restore(Options{Dir: filepath.Join(t.TempDir(), "z")}, strings.NewReader(huge))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("restore of a 1 TiB frame: %v, want a frame over the limit", err)
	}
}

// FuzzRestore: whatever a backup file holds, Restore returns (an error or
// a store that opens); it never panics or allocates what a length says,
// and it restores only what CheckBackup accepts.
func FuzzRestore(f *testing.F) {
	b := backupT(f, 1)
	f.Add(b)
	f.Add(v1Of(b))
	f.Add(b[:len(b)-1])
	f.Add([]byte(backupMagic + "\x00\x00\x00\x00\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Restore(Options{Dir: filepath.Join(t.TempDir(), "r"), Durability: None}, bytes.NewReader(b))
		if _, cerr := CheckBackup(bytes.NewReader(b)); err == nil && cerr != nil {
			t.Fatalf("restored a backup that CheckBackup refuses: %v", cerr)
		}
	})
}

func TestLogVectorIsKeptAndDerived(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, Durability: None})
	commitOp(t, db, "a", "x") // batches without a log vector, as before it existed
	commitOp(t, db, "a", "y")
	db.Close()
	db = openT(t, Options{Dir: dir, Durability: None})
	if got := db.LogVector(); got[1] != 2 {
		t.Fatalf("log vector derived from the log = %v, want 1:2", got)
	}
	ctx := db.Context()
	ctx.AddRange(7, 1, 5) // as by a state transfer
	if err := db.Commit(Batch{Context: ctx, LogVector: crdt.VersionVector{1: 2, 7: 5}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, Options{Dir: dir, Durability: None})
	if got := db.LogVector(); got[7] != 5 || got[1] != 2 {
		t.Fatalf("log vector after reopen = %v, want the one committed", got)
	}
}

// TestLogVectorAheadOfTheContextIsRepaired: a log vector that claims writes
// the context lacks (left by a peer's group joined across a gap in its log)
// is lowered at open to the context's gap-free prefix, so that peers send
// the missing writes again.
func TestLogVectorAheadOfTheContextIsRepaired(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, Durability: None})
	var ctx crdt.Context
	ctx.AddRange(7, 1, 15)
	ctx.AddRange(7, 47, 50) // 16 … 46 never seen
	ctx.AddRange(8, 1, 3)
	if err := db.Commit(Batch{Context: ctx, LogVector: crdt.VersionVector{7: 50, 8: 3}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, Options{Dir: dir, Durability: None})
	if got := db.LogVector(); got[7] != 15 || got[8] != 3 {
		t.Fatalf("log vector after reopen = %v, want 7:15 (the context's prefix) and 8:3", got)
	}
}

// FuzzDecodeRecord: a record is what state transfer takes from peers.
// Whatever the bytes, DecodeRecord returns an error or values that encode
// again (to nothing when there are none) and decode to the same encoding.
func FuzzDecodeRecord(f *testing.F) {
	db := openT(f, Options{Dir: f.TempDir(), Durability: None})
	commitOp(f, db, "s", "a")
	vs, err := db.Get("s")
	must(f, err)
	enc, err := EncodeRecord("s", vs)
	must(f, err)
	f.Add(enc)
	f.Add([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0}) // an array of 2^32 items
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := DecodeRecord("k", b)
		if err != nil {
			return
		}
		enc, err := EncodeRecord("k", vs)
		if err != nil {
			t.Fatalf("accepted values do not encode: %v", err)
		}
		if enc == nil {
			return // no state: the name is deleted
		}
		again, err := DecodeRecord("k", enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if enc2, _ := EncodeRecord("k", again); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the record: %x, then %x", enc, enc2)
		}
	})
}

// FuzzFrameLimit: whatever the stream, frameLimit passes it through
// unchanged while every frame is within the limit, and stops with an error
// at the first that is not, or at a truncated one.
func FuzzFrameLimit(f *testing.F) {
	f.Add([]byte("\x03\x00\x00\x00\x00\x00\x00\x00abc\x00\x00\x00\x00\x00\x00\x00\x00"), uint8(4))
	f.Add([]byte("\x09\x00\x00\x00\x00\x00\x00\x00abc"), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, max uint8) {
		got, err := io.ReadAll(&frameLimit{r: bytes.NewReader(in), max: uint64(max)})
		// What the limit lets through: whole frames up to the first over it.
		var want []byte
		rest, over := in, false
		for len(rest) >= 8 {
			size := binary.LittleEndian.Uint64(rest)
			if size > uint64(max) {
				over = true
				break
			}
			end := min(uint64(len(rest)), 8+size)
			want, rest = append(want, rest[:end]...), rest[end:]
		}
		// A truncated header is not passed on: an error.
		if !bytes.Equal(got, want) {
			t.Fatalf("passed on %x, want %x", got, want)
		}
		truncated := len(rest) > 0 || (len(want) > 0 && !complete(want))
		if (over || truncated) && err == nil {
			t.Fatal("a frame over the limit, or a truncated one, passed without an error")
		}
	})
}

// complete reports whether b is whole frames.
func complete(b []byte) bool {
	for len(b) >= 8 {
		size := binary.LittleEndian.Uint64(b)
		if uint64(len(b)-8) < size {
			return false
		}
		b = b[8+size:]
	}
	return len(b) == 0
}

// TestDamagedValuesAreCorrupt: a stored value whose CBOR declares a length
// over 2^31 (which fxamacker/cbor would truncate on 32-bit ARM and decode
// as something else) is reported as corrupt, at open and when read.
func TestDamagedValuesAreCorrupt(t *testing.T) {
	huge := []byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 1} // an array of 2^32+1 items
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	commitOp(t, db, "k", "x")
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(watermarkKey("peer"), huge) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Watermarks(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "2^31") {
		t.Errorf("Watermarks = %v, want ErrCorrupt for the length", err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(keyContext, huge) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "2^31") {
		t.Errorf("Open with a damaged context = %v, want ErrCorrupt for the length", err)
	}
}
