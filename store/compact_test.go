package store

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
)

// TestCompactionOfLongNames: a sensor with a long ID (its escaped name may
// take up to ~990 bytes) polled often enough to write 2,048 fragments in
// an hour. Merging them all in one transaction would delete 2,047 keys of
// ~430 bytes, over the low-memory profile's transaction limit (~614 KiB):
// a group is capped by what its transaction holds, so they merge in a few
// transactions, and a name sorting after it is compacted too.
func TestCompactionOfLongNames(t *testing.T) {
	for _, size := range []int{400, MaxNameBytes} {
		t.Run(fmt.Sprintf("bytes=%d", size), func(t *testing.T) {
			db := openT(t, Options{Dir: t.TempDir(), Durability: None})
			long := "_r/" + strings.Repeat("x", size-3)
			later := "_r/zz"
			ctx := db.Context()
			fact := func(name string) Fact {
				d := crdt.Dot{Replica: 1, Seq: ctx.Max(1) + 1}
				ctx.Add(d)
				return Fact{Name: name, Origin: 1, Seqs: []crdt.Seq{d.Seq}, Readings: []crdt.Reading{{Time: int64(d.Seq), Value: float64(d.Seq)}}}
			}
			for range 16 { // 16 commits of 128 fragments: 2,048 of one name, hour and origin
				var fs []Fact
				for range 128 {
					fs = append(fs, fact(long))
				}
				must(t, db.Commit(Batch{Facts: fs, Context: ctx}))
			}
			var fs []Fact
			for range 10 {
				fs = append(fs, fact(later))
			}
			must(t, db.Commit(Batch{Facts: fs, Context: ctx}))

			n, err := db.CompactReadings()
			if err != nil {
				t.Errorf("CompactReadings: %v (merged %d)", err, n)
			}
			if got := countFragments(t, db, later); got != 1 {
				t.Errorf("%s: %d fragments after compaction, want 1", later, got)
			}
			got := countFragments(t, db, long)
			if got >= compactMin {
				t.Errorf("long name: %d fragments after compaction", got)
			}
			if n != 2048-got+9 {
				t.Errorf("merged away %d fragments, want %d", n, 2048-got+9)
			}
			if times := readingTimes(t, db, long, 0, FactBucket); len(times) != 2048 {
				t.Errorf("long name: %d readings after compaction, want 2048", len(times))
			}
		})
	}
}

// TestCompactionSkipsAFailedGroup: a damaged fragment, and a key too short
// to be a fragment's, fail their groups, and compaction goes on with the
// names after them.
func TestCompactionSkipsAFailedGroup(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	for _, name := range []string{"b", "c"} {
		for i := range int64(10) {
			commitFacts(t, db, name, i)
		}
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return errors.Join(
			txn.Set([]byte{prefixFact, 'a'}, []byte{1}),
			txn.Set(factKey("b", 0, 1, 5), []byte{0xff}))
	})
	must(t, err)

	n, err := db.CompactReadings()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "2 groups") {
		t.Errorf("CompactReadings: %v, want ErrCorrupt for 2 groups", err)
	}
	if n != 9 {
		t.Errorf("merged away %d fragments, want 9", n)
	}
	if got := countFragments(t, db, "b"); got != 10 {
		t.Errorf("b: %d fragments, want its 10 untouched", got)
	}
	if got := countFragments(t, db, "c"); got != 1 {
		t.Errorf("c: %d fragments after compaction, want 1", got)
	}
}

// countFragments returns the number of fragments of name.
func countFragments(t testing.TB, db *DB, name string) int {
	t.Helper()
	n := 0
	_, err := db.dropWhere(factNamePrefix(name), false, func(*badger.Item) (bool, bool, error) { n++; return false, false, nil })
	must(t, err)
	return n
}

// TestFailedMergeFailsTheStore: a merge's commit that Badger took and
// failed fails the store as any commit does (see fail): compaction stops,
// commits are refused, and a GC of the failed store writes nothing.
func TestFailedMergeFailsTheStore(t *testing.T) {
	var failing atomic.Bool
	db := openT(t, Options{Dir: t.TempDir(), Durability: None, CommitFault: func() error {
		if failing.Load() {
			return syscall.EIO
		}
		return nil
	}})
	for _, name := range []string{"b", "c"} {
		for i := range int64(10) {
			commitFacts(t, db, name, i)
		}
	}
	failing.Store(true)
	n, err := db.CompactReadings()
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) || n != 0 {
		t.Fatalf("CompactReadings: %d merged, %v; want 0 and ErrFailed wrapping EIO", n, err)
	}
	if got := countFragments(t, db, "c"); got != 10 {
		t.Errorf("c: %d fragments, want its 10: compaction stops at a failed merge", got)
	}
	failing.Store(false)
	if !errors.Is(db.Failed(), ErrFailed) {
		t.Fatalf("Failed() = %v after a failed merge", db.Failed())
	}
	if err := db.Commit(opBatch(t, db, "s", "a")); !errors.Is(err, ErrFailed) {
		t.Fatalf("commit after the failed merge: %v, want ErrFailed", err)
	}
	db.collect()
	if got := countFragments(t, db, "c"); got != 10 {
		t.Errorf("c: %d fragments after a GC of the failed store, want its 10", got)
	}
}
