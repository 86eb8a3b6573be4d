package store

import (
	"math"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/edged-dev/edged/crdt"
)

// commitFacts stores readings of name at the given times (value = time),
// with consecutive dots of replica 1.
func commitFacts(t *testing.T, db *DB, name string, times ...int64) {
	t.Helper()
	ctx := db.Context()
	f := Fact{Name: name, Origin: 1}
	for _, tm := range times {
		d := crdt.Dot{Replica: 1, Seq: ctx.Max(1) + 1}
		ctx.Add(d)
		f.Seqs = append(f.Seqs, d.Seq)
		f.Readings = append(f.Readings, crdt.Reading{Time: tm, Value: float64(tm)})
	}
	if err := db.Commit(Batch{Facts: []Fact{f}, Context: ctx}); err != nil {
		t.Fatal(err)
	}
}

func readingTimes(t *testing.T, db *DB, name string, from, to int64) []int64 {
	t.Helper()
	var got []int64
	err := db.Readings(name, from, to, func(_ crdt.ReplicaID, _ crdt.Seq, r crdt.Reading) error {
		if r.Value != float64(r.Time) {
			t.Errorf("reading at %d has value %v", r.Time, r.Value)
		}
		got = append(got, r.Time)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func TestReadingsRangeAcrossBuckets(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	h := FactBucket
	commitFacts(t, db, "a", -h-1, -1, 0, 5, h-1, h, 3*h+7)
	commitFacts(t, db, "ab", 1, 2) // a name that extends "a" stays apart
	commitFacts(t, db, "a", 6)
	for _, c := range []struct {
		from, to int64
		want     []int64
	}{
		{math.MinInt64 / 2, math.MaxInt64, []int64{-h - 1, -1, 0, 5, 6, h - 1, h, 3*h + 7}},
		{0, h, []int64{0, 5, 6, h - 1}},
		{-1, 1, []int64{-1, 0}},
		{h, 3 * h, []int64{h}},
		{h + 1, 3 * h, nil},
		{5, 5, nil},
	} {
		if got := readingTimes(t, db, "a", c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("readings of a in [%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	var names []string
	db.ReadingNames(func(n string) error { names = append(names, n); return nil })
	if !slices.Equal(names, []string{"a", "ab"}) {
		t.Errorf("names %v, want [a ab]", names)
	}
}

func TestDropReadings(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	h := FactBucket
	for i := range int64(10) {
		commitFacts(t, db, "s", i*h, i*h+1)
	}
	// Retention: buckets that end at or before the cutoff go, the one
	// holding it stays whole.
	if _, err := db.DropReadings(3*h+h/2, 0); err != nil {
		t.Fatal(err)
	}
	if got := readingTimes(t, db, "s", 0, 10*h); got[0] != 3*h || len(got) != 14 {
		t.Fatalf("after retention: %v, want from hour 3 on", got)
	}
	// Byte cap: the oldest hours go until the rest fits.
	all := db.Stats().ReadingBytes
	if _, err := db.DropReadings(math.MinInt64, all/2); err != nil {
		t.Fatal(err)
	}
	got := readingTimes(t, db, "s", 0, 10*h)
	if len(got) == 0 || got[len(got)-1] != 9*h+1 || got[0] <= 3*h {
		t.Fatalf("after byte cap: %v, want the newest hours only", got)
	}
	if s := db.Stats(); s.Dropped != 0 {
		// DropReadings is the mechanism; counting belongs to its callers.
		t.Errorf("Dropped = %d", s.Dropped)
	}
}

func FuzzDecodeFragment(f *testing.F) {
	f.Add([]byte{0xa1, 0x01, 0x01})
	var seeds []byte
	encodeFacts(Fact{Name: "x", Origin: 1, Seqs: []crdt.Seq{1, 2}, Readings: []crdt.Reading{{Time: 1, Value: 2}, {Time: 3, Flags: 1}}},
		func(_, v []byte) error { seeds = v; return nil })
	f.Add(seeds)
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr fragment
		if decodeFragment(b, &fr) != nil {
			return
		}
		n := len(fr.Times)
		if len(fr.Seqs) != n || len(fr.Values) != n || (len(fr.Flags) != 0 && len(fr.Flags) != n) {
			t.Fatalf("accepted a fragment with ragged columns: %+v", fr)
		}
	})
}

func TestCompactReadingsKeepsEveryReading(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	h := FactBucket
	for i := range int64(30) {
		commitFacts(t, db, "s", i*h/30) // 30 fragments in hour 0
	}
	commitFacts(t, db, "s", h+1, h+2) // one fragment in hour 1
	for i := range int64(10) {
		commitFacts(t, db, "t", i)
	}
	// A flagged reading among unflagged ones keeps its flag.
	ctx := db.Context()
	d := crdt.Dot{Replica: 1, Seq: ctx.Max(1) + 1}
	ctx.Add(d)
	if err := db.Commit(Batch{Context: ctx, Facts: []Fact{{Name: "t", Origin: 1, Seqs: []crdt.Seq{d.Seq},
		Readings: []crdt.Reading{{Time: 20, Value: 20, Flags: crdt.FlagClockUnsynced}}}}}); err != nil {
		t.Fatal(err)
	}
	before := map[string][]int64{"s": readingTimes(t, db, "s", 0, 2*h), "t": readingTimes(t, db, "t", 0, h)}
	n, err := db.CompactReadings()
	if err != nil {
		t.Fatal(err)
	}
	if n != 29+10 {
		t.Errorf("merged away %d fragments, want 39", n)
	}
	for name, want := range before {
		if got := readingTimes(t, db, name, 0, 2*h); !slices.Equal(got, want) {
			t.Errorf("%s after compaction: %v, want %v", name, got, want)
		}
	}
	flagged := 0
	db.Readings("t", 0, h, func(_ crdt.ReplicaID, s crdt.Seq, r crdt.Reading) error {
		if r.Flags != 0 {
			flagged++
			if s != d.Seq || r.Time != 20 {
				t.Errorf("flag on the wrong reading: %d %+v", s, r)
			}
		}
		return nil
	})
	if flagged != 1 {
		t.Errorf("%d flagged readings, want 1", flagged)
	}
	if n, _ := db.CompactReadings(); n != 0 {
		t.Errorf("a second compaction merged %d", n)
	}
}

func TestCompactionKeepsFragmentsBounded(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	const commits, per = 100, 2000
	for c := range int64(commits) {
		times := make([]int64, per)
		for i := range times {
			times[i] = c*per + int64(i)
		}
		commitFacts(t, db, "busy", times...)
	}
	for range 3 { // repeated GCs must not grow a fragment past the cap
		if _, err := db.CompactReadings(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readingTimes(t, db, "busy", 0, FactBucket); len(got) != commits*per {
		t.Fatalf("%d readings after compaction, want %d", len(got), commits*per)
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixFact}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if sz := it.Item().ValueSize(); sz > compactMaxBytes+64<<10 {
				t.Errorf("fragment of %d bytes, cap %d", sz, compactMaxBytes)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
