package store

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// skipOn32Bit skips a test that reopens a store holding flushed tables on
// a 32-bit build: there, under qemu-arm with Badger v4.9.6, keys of such
// tables read back as absent once the store is reopened (a known defect,
// docs/OPERATIONS.md, "32-bit ARM"; root cause not found yet). The test
// cannot pass there until it is fixed.
func skipOn32Bit(t *testing.T) {
	t.Helper()
	if strconv.IntSize == 32 {
		t.Skip("KNOWN DEFECT: on 32-bit builds Badger's flushed tables read back as absent after a reopen (docs/OPERATIONS.md, 32-bit ARM)")
	}
}

// TestTablesReadBackAfterReopen writes several memtables' worth of
// records, so that Badger flushes tables, and reads every record back
// after a reopen.
func TestTablesReadBackAfterReopen(t *testing.T) {
	skipOn32Bit(t)
	for _, p := range []Profile{LowMemory, Standard} {
		t.Run(string(p), func(t *testing.T) {
			o := Options{Dir: t.TempDir(), Profile: p, Durability: None, GCInterval: time.Hour}
			db := openT(t, o)
			const commits, per = 100, 100 // 7 MB of values
			value := []byte(strings.Repeat("x", 700))
			for c := range commits {
				names := map[string][]byte{}
				for n := range per {
					names[fmt.Sprintf("k%03d-%03d", c, n)] = value
				}
				must(t, db.Commit(Batch{Names: names, Context: db.Context()}))
			}
			must(t, db.Close())
			db = openT(t, o)
			missing := 0
			for c := range commits {
				for n := range per {
					rec, err := db.GetRecord(fmt.Sprintf("k%03d-%03d", c, n))
					must(t, err)
					if len(rec) != len(value) {
						missing++
					}
				}
			}
			if missing > 0 {
				t.Errorf("%d of %d records not read back after a reopen", missing, commits*per)
			}
		})
	}
}
