// Package kv is the key-value view of a node's key space that the HTTP API
// and the local MQTT interface serve: keys grouped in namespaces,
// operations in JSON (DecodeOp), values rendered as JSON (Render), and
// watches of key changes (Hub).
//
// A key ns/key is the store name "ns/key". Namespaces are short
// lower-case names; names starting with '_' belong to edged itself (the
// sensor readings and their summaries, see package series) and are not
// reachable here.
package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/store"
)

// Limits on names.
const (
	// MaxNSBytes bounds a namespace.
	MaxNSBytes = 63
	// MaxKeyBytes bounds a key within its namespace.
	MaxKeyBytes = 512
	// MaxList bounds one page of a listing.
	MaxList = 1000
)

// ErrNotFound: no such key.
var ErrNotFound = errors.New("kv: not found")

// ValidateNS checks a namespace: 1 to 63 of a-z, 0-9, '.', '_', '-',
// starting with a letter or digit.
func ValidateNS(ns string) error {
	if ns == "" || len(ns) > MaxNSBytes {
		return invalid.Errorf("ns", "must be 1 to %d characters (got %d)", MaxNSBytes, len(ns))
	}
	for i, c := range []byte(ns) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return invalid.Errorf("ns", "%q: use a-z, 0-9, '.', '_' and '-', starting with a letter or digit", ns)
		}
	}
	return nil
}

// ValidateKey checks a key: 1 to 512 bytes of UTF-8 without control
// characters, whose '/'-separated segments are neither empty nor "." or
// ".." (URL paths would not keep them).
func ValidateKey(key string) error {
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return invalid.Errorf("key", "%q: empty, '.' and '..' segments are not allowed", key)
		}
	}
	switch {
	case key == "" || len(key) > MaxKeyBytes:
		return invalid.Errorf("key", "must be 1 to %d bytes (got %d)", MaxKeyBytes, len(key))
	case !utf8.ValidString(key):
		return invalid.Errorf("key", "not valid UTF-8")
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid.Errorf("key", "contains a control character")
	}
	return nil
}

// Name returns the store name of ns/key after checking both.
func Name(ns, key string) (string, error) {
	if err := ValidateNS(ns); err != nil {
		return "", err
	}
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return ns + "/" + key, nil
}

// Split returns the namespace and key of a store name, and false for a
// name outside the user namespaces.
func Split(name string) (ns, key string, ok bool) {
	ns, key, ok = strings.Cut(name, "/")
	return ns, key, ok && ValidateNS(ns) == nil && key != ""
}

// Doc is the JSON document of a key.
type Doc struct {
	NS    string          `json:"ns"`
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
	// Types lists every type the key holds when replicas created it
	// concurrently with different types; Type and Value are those of
	// the highest (the rule every replica applies alike).
	Types []string `json:"types,omitempty"`
}

// apiType is the API's name of a CRDT type.
func apiType(t crdt.Type) string {
	if t == crdt.TypePNCounter {
		return "counter"
	}
	if t == crdt.TypeORMap {
		return "map"
	}
	return t.String()
}

// NewDoc renders the values stored under ns/key; it returns ErrNotFound
// when there are none.
func NewDoc(ns, key string, vs map[crdt.Type]crdt.Value) (Doc, error) {
	var types []crdt.Type
	for t, v := range vs {
		if v != nil && (!v.IsBottom() || len(vs) == 1) {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return Doc{}, fmt.Errorf("%w: %s/%s", ErrNotFound, ns, key)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] > types[j] })
	val, err := Render(vs[types[0]])
	if err != nil {
		return Doc{}, err
	}
	d := Doc{NS: ns, Key: key, Type: apiType(types[0]), Value: val}
	if len(types) > 1 {
		for _, t := range types {
			d.Types = append(d.Types, apiType(t))
		}
	}
	return d, nil
}

// KV serves keys from a store, writing through an engine. It is safe for
// concurrent use.
type KV struct {
	db  *store.DB
	eng *engine.Engine
}

// New returns a KV over db and eng.
func New(db *store.DB, eng *engine.Engine) *KV { return &KV{db: db, eng: eng} }

// Get returns the document of ns/key, or an error matching ErrNotFound.
func (k *KV) Get(ns, key string) (Doc, error) {
	name, err := Name(ns, key)
	if err != nil {
		return Doc{}, err
	}
	vs, err := k.db.Get(name)
	if err != nil {
		return Doc{}, err
	}
	return NewDoc(ns, key, vs)
}

// Share is what one replica (a node) wrote to a key that the key's value
// still holds: see ByNode.
type Share struct {
	Replica string          `json:"replica"`
	Name    string          `json:"name,omitempty"`
	Type    string          `json:"type"`
	Value   json.RawMessage `json:"value"`
}

// ByNode returns the shares of ns/key by replica, in replica order: for
// each replica with a dot in the key, the part of the value it wrote that
// still stands (crdt.Project). That is a counter's count per node, the
// node whose write a register holds, the elements each node added to a
// set, field by field in a map. It returns ErrNotFound as Get does.
func (k *KV) ByNode(ns, key string) ([]Share, error) {
	name, err := Name(ns, key)
	if err != nil {
		return nil, err
	}
	vs, err := k.db.Get(name)
	if err != nil {
		return nil, err
	}
	if _, err := NewDoc(ns, key, vs); err != nil {
		return nil, err
	}
	replicas := map[crdt.ReplicaID]bool{}
	for _, v := range vs {
		dots := crdt.Dots(v)
		for r := range dots.VersionVector() {
			replicas[r] = true
		}
		for _, d := range dots.Cloud() {
			replicas[d.Replica] = true
		}
	}
	out := make([]Share, 0, len(replicas))
	for _, r := range slices.Sorted(maps.Keys(replicas)) {
		part := make(map[crdt.Type]crdt.Value, len(vs))
		for t, v := range vs {
			if p := crdt.Project(v, func(d crdt.Dot) bool { return d.Replica == r }); !p.IsBottom() {
				part[t] = p
			}
		}
		d, err := NewDoc(ns, key, part)
		if err != nil {
			return nil, err
		}
		out = append(out, Share{Replica: r.String(), Type: d.Type, Value: d.Value})
	}
	return out, nil
}

// Do applies a JSON operation to ns/key and returns the key's new
// document, durable when it returns. An operation of a type other than
// the key's fails with an error matching engine.ErrTypeMismatch.
func (k *KV) Do(ctx context.Context, ns, key string, opJSON []byte) (Doc, error) {
	name, err := Name(ns, key)
	if err != nil {
		return Doc{}, err
	}
	op, err := DecodeOp(name, opJSON)
	if err != nil {
		return Doc{}, err
	}
	if _, err := k.eng.Do(ctx, op); err != nil {
		return Doc{}, err
	}
	// Read back the whole record: another type may be there too.
	d, err := k.Get(ns, key)
	if errors.Is(err, ErrNotFound) {
		// The operation left the empty value (a disabled flag, a set
		// without elements), which is not stored: show it.
		empty, err := crdt.New(op.Type)
		if err != nil {
			return Doc{}, err
		}
		return NewDoc(ns, key, map[crdt.Type]crdt.Value{op.Type: empty})
	}
	return d, err
}

// Delete removes ns/key, of whatever type. Removing an absent key is not
// an error.
func (k *KV) Delete(ctx context.Context, ns, key string) error {
	name, err := Name(ns, key)
	if err != nil {
		return err
	}
	_, err = k.eng.Do(ctx, engine.Remove(name))
	return err
}

// List calls fn with the documents of the keys of ns that start with
// prefix and sort after after, in key order, at most limit of them (1 to
// MaxList). It returns whether more keys follow.
func (k *KV) List(ns, prefix, after string, limit int, fn func(Doc) error) (more bool, err error) {
	if err := ValidateNS(ns); err != nil {
		return false, err
	}
	if limit < 1 || limit > MaxList {
		return false, invalid.Errorf("limit", "must be 1 to %d (got %d)", MaxList, limit)
	}
	start := ""
	if after != "" {
		start = ns + "/" + after
	}
	n := 0
	err = k.db.Scan(ns+"/"+prefix, start, limit+1, func(name string, vs map[crdt.Type]crdt.Value) error {
		if n++; n > limit {
			more = true
			return nil
		}
		d, err := NewDoc(ns, strings.TrimPrefix(name, ns+"/"), vs)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(d)
	})
	return more, err
}

// Each calls fn with the document of every key of every namespace, in
// order. The key space is read in one snapshot.
func (k *KV) Each(fn func(Doc) error) error {
	return k.db.Scan("", "", 0, func(name string, vs map[crdt.Type]crdt.Value) error {
		ns, key, ok := Split(name)
		if !ok {
			return nil
		}
		d, err := NewDoc(ns, key, vs)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(d)
	})
}
