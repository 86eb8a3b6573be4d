package engine

// cache holds the committed records (store.EncodeRecord) of recently used
// keys, so hot keys are not read back from the store for every group. It is
// bounded in bytes and evicts arbitrary entries (Go's map order) when full:
// cheap, and good enough for a working set that fits. A nil record means
// the key is known to be absent. Not safe for concurrent use: the engine's
// Run goroutine owns it.
type cache struct {
	max, size int
	recs      map[string][]byte
}

// entryOverhead approximates the bytes of a map entry beyond key and value.
const entryOverhead = 64

func newCache(maxBytes int) *cache { return &cache{max: maxBytes, recs: map[string][]byte{}} }

func (c *cache) get(name string) ([]byte, bool) {
	rec, ok := c.recs[name]
	return rec, ok
}

func (c *cache) put(name string, rec []byte) {
	if old, ok := c.recs[name]; ok {
		c.size -= len(name) + len(old) + entryOverhead
	}
	n := len(name) + len(rec) + entryOverhead
	if n > c.max/8 { // one big record must not flush the working set
		delete(c.recs, name)
		return
	}
	for k, v := range c.recs {
		if c.size+n <= c.max {
			break
		}
		delete(c.recs, k)
		c.size -= len(k) + len(v) + entryOverhead
	}
	c.recs[name] = rec
	c.size += n
}
