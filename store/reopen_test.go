package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTablesReadBackAfterReopen writes several memtables' worth of
// records, so that Badger flushes tables, and reads every record back
// after a reopen. On 32-bit builds (make test-arm runs it on armv7),
// ristretto's allocator overwrote the blocks of tables of 4 MiB and more as
// Badger built them, and they read back as absent (third_party/README.md).
func TestTablesReadBackAfterReopen(t *testing.T) {
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
