package store

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
)

// fillReadings commits readings of 100 names over 48 hours, in fragments
// of per readings.
func fillReadings(t *testing.T, db *DB, commits, per int) {
	t.Helper()
	ctx := db.Context()
	for c := range commits {
		var fs []Fact
		hour := int64(c%48) * FactBucket
		for n := range 100 {
			f := Fact{Name: fmt.Sprintf("sensor-%03d", n), Origin: 1}
			for i := range per {
				d := crdt.Dot{Replica: 1, Seq: ctx.Max(1) + 1}
				ctx.Add(d)
				f.Seqs = append(f.Seqs, d.Seq)
				tm := hour + int64(c/48)*1e9 + int64(i)
				f.Readings = append(f.Readings, crdt.Reading{Time: tm, Value: float64(tm)})
			}
			fs = append(fs, f)
		}
		if err := db.Commit(Batch{Facts: fs, Context: ctx}); err != nil {
			t.Fatal(err)
		}
	}
}

// layouts are the stores the budget tests fill: fragments in Badger's
// LSM tree, or (over ValueThreshold) in its value log, whose space comes
// back only when Badger rewrites a file at least half garbage, and never
// for the file it writes to.
var layouts = []struct {
	name         string
	per, commits int // readings per fragment; commits of 100 fragments
}{
	{"tree", 30, 48 * 7}, // 7 fragments per name and hour: CompactReadings merges none
	{"value log", 120, 48 * 2},
}

// overBudget returns a store whose directory, all readings, is a quarter
// over its budget, reopened so that they are in tables, and its budget.
func overBudget(t *testing.T, per, commits int) (*DB, int64) {
	t.Helper()
	o := Options{Dir: t.TempDir(), Durability: None, GCInterval: time.Hour}
	db, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	fillReadings(t, db, commits, per)
	must(t, db.Close())
	o.Budget = DiskUsage(o.Dir) * 8 / 10
	db = openT(t, o)
	if err := db.Commit(Batch{Context: db.Context()}); !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: err = %v, want ErrBudget", err)
	}
	return db, o.Budget
}

// namesWithReadings counts the names that have readings left.
func namesWithReadings(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	must(t, db.ReadingNames(func(string) error { n++; return nil }))
	return n
}

// TestBudgetRecoversAfterEviction: a store over its budget whose excess
// is readings. Deleting them frees nothing until Badger compacts, and
// with every commit refused nothing would: the eviction must reclaim
// what it deleted, so that writes resume, and later GCs must not evict
// again what they cannot see freed (found by a review: every GC dropped
// more of the oldest readings until none were left, and writes stayed
// refused).
func TestBudgetRecoversAfterEviction(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			db, budget := overBudget(t, l.per, l.commits)
			t.Logf("directory %d bytes, budget %d", db.Stats().Bytes, budget)
			resumed := 0
			for gc := 1; gc <= 3 && resumed == 0; gc++ {
				db.collect()
				if err := db.Commit(Batch{Context: db.Context()}); err == nil {
					resumed = gc
				} else if !errors.Is(err, ErrBudget) {
					t.Fatal(err)
				}
				st := db.Stats()
				t.Logf("GC %d: %d bytes, %d unreclaimed, %d fragments dropped", gc, st.Bytes, st.Unreclaimed, st.Dropped)
			}
			if resumed == 0 {
				t.Fatalf("after 3 GCs writes still refused: %d bytes (budget %d), %d fragments dropped, names with readings %d of 100",
					db.Stats().Bytes, budget, db.Stats().Dropped, namesWithReadings(t, db))
			}
			if n := namesWithReadings(t, db); n != 100 {
				t.Errorf("names with readings: %d of 100", n)
			}
			dropped := db.Stats().Dropped
			for range 3 {
				db.collect()
			}
			if got := db.Stats().Dropped; got != dropped {
				t.Errorf("under the budget, later GCs dropped %d more fragments", got-dropped)
			}
			if err := db.Commit(Batch{Context: db.Context()}); err != nil {
				t.Errorf("writes refused again: %v", err)
			}
		})
	}
}

// TestBudgetEvictsOnlyTheExcess: the directory is a quarter over its
// budget; one GC drops the oldest hours worth that excess and a tenth of
// the budget (about 28% of the readings, by the hour), from every name,
// and nothing newer.
func TestBudgetEvictsOnlyTheExcess(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			db, budget := overBudget(t, l.per, l.commits)
			full := db.Stats().Bytes
			perHour := l.commits / 48
			fragments := l.commits * 100
			db.collect()
			st := db.Stats()
			used := st.Bytes - st.Unreclaimed
			t.Logf("directory %d → %d bytes, %d of them unreclaimed (budget %d); %d of %d fragments dropped",
				full, st.Bytes, st.Unreclaimed, budget, st.Dropped, fragments)
			if used > budget {
				t.Errorf("%d bytes counted after eviction, over the budget %d", used, budget)
			}
			if want := full - budget + budget/10; full-used > want*13/10 {
				t.Errorf("freed %d bytes, for an excess of %d and a margin of %d", full-used, full-budget, budget/10)
			}
			// The hour is the unit: 1/48 of the readings.
			share := float64(st.Dropped) / float64(fragments)
			want := float64(full-budget+budget/10) / float64(full)
			if share < want-0.05 || share > want+1.0/48+0.05 {
				t.Errorf("dropped %.0f%% of the readings, want about %.0f%%", share*100, want*100)
			}
			// The oldest hours went, from every name; the rest is whole.
			hours := int64(math.Round(share * 48))
			for _, name := range []string{"sensor-000", "sensor-099"} {
				n := 0
				must(t, db.Readings(name, math.MinInt64+FactBucket+1, math.MaxInt64, func(_ crdt.ReplicaID, _ crdt.Seq, r crdt.Reading) error {
					if r.Time < hours*FactBucket {
						t.Fatalf("%s: reading of hour %d kept, the first %d hours dropped", name, r.Time/FactBucket, hours)
					}
					n++
					return nil
				}))
				if want := int(48-hours) * perHour * l.per; n != want {
					t.Errorf("%s: %d readings left, want %d (%d hours)", name, n, want, 48-hours)
				}
			}
		})
	}
}
