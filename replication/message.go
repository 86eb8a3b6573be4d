package replication

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/edged-dev/edged/cborcheck"

	"github.com/edged-dev/edged/crdt"
	"github.com/klauspost/compress/snappy"
)

// Version is the protocol version this package speaks.
const Version = 1

// Limits on what a message may hold.
const (
	// MaxReplicas bounds the entries of a vector, and so the origins a
	// node takes entries from (a larger vector would be refused by every
	// peer and stop sync).
	MaxReplicas = 16384
	// MaxSeqAccepted bounds the dots of received entries, leaving room
	// below crdt.MaxSeq so a node never runs out of dots of its own.
	MaxSeqAccepted = crdt.MaxSeq - 1<<32
	// MaxCloudDots bounds the out-of-order dots of the contexts of one
	// message (Entry.strayDots): stored contexts are rewritten on every
	// commit.
	MaxCloudDots = 4096
	// MaxEntries bounds the entries of one Entries message.
	MaxEntries = 4096
	// MaxMessageBytes bounds an encoded message.
	MaxMessageBytes = 4 << 20
	// MaxFleetBytes bounds a fleet name.
	MaxFleetBytes = 63
)

// Kind is the type of a message.
type Kind uint8

// The message kinds.
const (
	KindDigest Kind = iota + 1
	KindVector
	KindEntries
	KindAck
	KindOffer
	KindRangeReq
	KindRange
	KindStates
	// KindLeave: the sender is shutting down; the driver handles it.
	KindLeave
	// KindPeers: peer exchange, the addresses of peers the sender knows;
	// the driver handles it.
	KindPeers
)

var kindNames = map[Kind]string{KindDigest: "digest", KindVector: "vector", KindEntries: "entries", KindAck: "ack",
	KindOffer: "offer", KindRangeReq: "range-req", KindRange: "range", KindStates: "states", KindLeave: "leave", KindPeers: "peers"}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one delta-log entry: the delta of one operation of Origin, or
// of a group of them, covering its dots First…Last.
type Entry struct {
	Origin crdt.ReplicaID `cbor:"1,keyasint"`
	First  crdt.Seq       `cbor:"2,keyasint"`
	Last   crdt.Seq       `cbor:"3,keyasint"`
	Delta  crdt.Causal    `cbor:"4,keyasint"`
}

// Message is one protocol message. Fields not used by its Kind are empty.
type Message struct {
	Version uint               `cbor:"1,keyasint"`
	Kind    Kind               `cbor:"2,keyasint"`
	Hash    []byte             `cbor:"3,keyasint,omitempty"` // Digest: SHA-256 of the sender's vector; Range: of the range's states
	Vector  crdt.VersionVector `cbor:"4,keyasint,omitempty"` // Vector, Ack, Range, States: what the sender holds
	Pull    bool               `cbor:"5,keyasint,omitempty"` // Vector: the sender wants what it lacks
	Entries []Entry            `cbor:"6,keyasint,omitempty"` // Entries: in order per origin
	More    bool               `cbor:"7,keyasint,omitempty"` // Entries: more follow once acknowledged
	// State transfer (transfer.go).
	After  string        `cbor:"8,keyasint,omitempty"`  // RangeReq, Range, States: the range starts after this name
	Last   string        `cbor:"9,keyasint,omitempty"`  // and ends at this one ("": the end)
	Full   bool          `cbor:"10,keyasint,omitempty"` // RangeReq: the states, not their digest
	Done   bool          `cbor:"11,keyasint,omitempty"` // Range, States: nothing follows
	States []State       `cbor:"12,keyasint,omitempty"` // States: in name order
	Ctx    *crdt.Context `cbor:"13,keyasint,omitempty"` // Range, States: the sender's context
	// Fleet is the sender's fleet name; the driver drops messages of
	// another fleet.
	Fleet string `cbor:"14,keyasint,omitempty"`
	// Req identifies a RangeReq; its Range or States answer carries it
	// back, so a late answer to an older request is never taken for the
	// current one.
	Req uint64 `cbor:"15,keyasint,omitempty"`
	// Peers: other peers of the sender and their addresses.
	Peers []PeerAddrs `cbor:"16,keyasint,omitempty"`
	// Set is the hash of the replicas of the sender's vector (SetHash),
	// with a compact vector (EncodeDense writes both).
	Set []byte `cbor:"17,keyasint,omitempty"`
	// Seqs is a compact vector (vector.go): the sequences of the replicas
	// of Set, in ID order, in place of Vector.
	Seqs []crdt.Seq `cbor:"18,keyasint,omitempty"`
	// BaseHash, with Seqs in place of Set, makes a relative vector
	// (vector.go): the hash (BaseHash) of the vector the sender last sent
	// the receiver, and Seqs the increments over its sequences.
	BaseHash []byte `cbor:"20,keyasint,omitempty"`
	// Compact: the replicas of Vector are the receiver's, as far as the
	// sender knows, so EncodeDense may send it compact (vector.go).
	Compact bool `cbor:"-"`
	// Base: the vector the sender last sent the receiver, over which
	// EncodeIndexed may send Vector relative (vector.go).
	Base crdt.VersionVector `cbor:"-"`
	// Origins, on Entries: the sender's vector, when its replicas are the
	// receiver's as far as the sender knows, so EncodeIndexed may name
	// the entries' origins by their places among them (relative.go).
	Origins crdt.VersionVector `cbor:"-"`
	// indexed holds received entries that name origins by index, in the
	// relative form, until Sync.Step finds the replica set Set among
	// those it knows and decodes them into Entries.
	indexed []wireEntry
	// Size is the encoded size of an Entries message's deltas, as the
	// engine batched them: what a driver may bound its queues by.
	Size int `cbor:"-"`
}

// wireMessage is a Message as encoded: by EncodeDense, with Entries in the
// relative form under key 19, in place of key 6.
type wireMessage struct {
	Message
	Rel []wireEntry `cbor:"19,keyasint,omitempty"`
}

// PeerAddrs is a peer and where it listens, for peer exchange.
type PeerAddrs struct {
	ID    string   `cbor:"1,keyasint"`
	Addrs []string `cbor:"2,keyasint"`
}

// Limits of peer exchange.
const (
	MaxExchangedPeers = 64
	maxPeerAddrs      = 8
	maxAddrBytes      = 256
)

// strayDots counts the out-of-order dots of e's context that are not e's
// own. Its own dots, First…Last of its origin, are out of order in the
// message but not at a receiver, which applies e only right after the
// dot before First: there they join its version vector.
func (e *Entry) strayDots() int {
	n := 0
	for _, d := range e.Delta.Ctx.Cloud() {
		if d.Replica != e.Origin || d.Seq < e.First || d.Seq > e.Last {
			n++
		}
	}
	return n
}

// ErrInvalid: a message that breaks the protocol; it is dropped.
var ErrInvalid = errors.New("replication: invalid message")

// Digest returns the hash of a vector: SHA-256 of its sorted entries.
func Digest(vv crdt.VersionVector) []byte {
	rs := vv.Replicas()
	slices.Sort(rs)
	h := sha256.New()
	var b [16]byte
	for _, r := range rs {
		if vv[r] == 0 {
			continue
		}
		for i := range 8 {
			b[i] = byte(uint64(r) >> (56 - 8*i))
			b[8+i] = byte(uint64(vv[r]) >> (56 - 8*i))
		}
		h.Write(b[:])
	}
	return h.Sum(nil)
}

// Framing: the first byte of an encoded message names its codec.
const (
	codecCBOR   = 0 // CBOR as is: small messages
	codecSnappy = 1 // Snappy-compressed CBOR: entries, whose field names and
	// CBOR keys repeat
)

// compressAbove is the size above which a message is compressed (when
// that makes it smaller). Most Entries messages of a busy link are 100–250
// bytes, with the same keys and CRDT wrappers in every entry, and Snappy
// takes about a fifth off them; a digest does not compress, and is sent
// as is.
const compressAbove = 64

// Encode returns the encoding of m for any peer: a codec byte, then its
// CBOR, Snappy-compressed when that is smaller. Vectors go whole, and
// entries with their deltas whole.
func Encode(m Message) ([]byte, error) { return encode(wireMessage{Message: m}) }

// EncodeDense returns the encoding of m for a peer that reads compact
// vectors and relative entries (one whose stream speaks them,
// /edged/sync/3): its vector compact where m is Compact, its entries
// relative (relative.go).
func EncodeDense(m Message) ([]byte, error) { return encodeDense(m, false) }

// EncodeIndexed returns the encoding of m for a peer that also reads
// indexed origins and relative vectors (/edged/sync/4): EncodeDense's,
// with the entries naming their origins by their places among the
// replicas of m.Origins, when it is set, and the vector relative to
// m.Base, when it can be.
func EncodeIndexed(m Message) ([]byte, error) { return encodeDense(m, true) }

// indexFor returns the index of m's entries' origins (originIndex) when
// they are to be indexed, nil otherwise.
func indexFor(indexOrigins bool, m Message) map[crdt.ReplicaID]uint64 {
	if !indexOrigins {
		return nil
	}
	return originIndex(m.Entries, m.Origins)
}

func encodeDense(m Message, indexOrigins bool) ([]byte, error) {
	w := wireMessage{Message: m}
	switch {
	case m.Kind != KindVector && m.Kind != KindAck || len(setOf(m.Vector)) == 0:
	case indexOrigins && relativeTo(m.Vector, m.Base):
		w.BaseHash, w.Seqs, w.Vector = baseHash(m.Base), increments(m.Vector, m.Base), nil
	case m.Compact:
		w.Set, w.Seqs, w.Vector = SetHash(m.Vector), seqsOf(m.Vector), nil
	}
	if len(m.Entries) > 0 {
		rel, err := toRelative(m.Entries)
		if err != nil {
			return nil, err
		}
		w.Rel, w.Entries = rel, nil
		if index := indexFor(indexOrigins, m); index != nil {
			// Indices save bytes of CBOR, but Snappy may shrink an ID
			// that comes again in the message (in a context) and not
			// the set's hash: the smaller encoding goes.
			byID, err := encode(w)
			if err != nil {
				return nil, err
			}
			for i, e := range m.Entries {
				if n, ok := index[e.Origin]; ok {
					rel[i].Origin, rel[i].Index = 0, n
				}
			}
			w.Set = SetHash(m.Origins)
			byIndex, err := encode(w)
			if err != nil || len(byIndex) >= len(byID) {
				return byID, nil
			}
			return byIndex, nil
		}
	}
	return encode(w)
}

func encode(w wireMessage) ([]byte, error) {
	b, err := cborcheck.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("replication: message of %d bytes, limit %d", len(b), MaxMessageBytes)
	}
	if len(b) > compressAbove {
		z := snappy.Encode(nil, b)
		if len(z) < len(b) {
			return append([]byte{codecSnappy}, z...), nil
		}
	}
	return append([]byte{codecCBOR}, b...), nil
}

// DecodedLen returns the size of the CBOR of the encoded message b: what
// Decode decompresses it to, read from its header without decoding it. A
// driver may bound its queues by it (see Decode). Errors wrap ErrInvalid.
func DecodedLen(b []byte) (int, error) {
	if len(b) == 0 || len(b) > MaxMessageBytes+1 {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalid, len(b), MaxMessageBytes)
	}
	switch codec, body := b[0], b[1:]; codec {
	case codecCBOR:
		return len(body), nil
	case codecSnappy:
		n, err := snappy.DecodedLen(body)
		if err != nil || n > MaxMessageBytes {
			return 0, fmt.Errorf("%w: compressed message of %d bytes (limit %d): %v", ErrInvalid, n, MaxMessageBytes, err)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%w: unknown codec %d", ErrInvalid, codec)
	}
}

// Decode parses and validates a message. Errors wrap ErrInvalid.
//
// Memory: Decode allocates the message's CBOR (when b is compressed),
// and for all but its deltas at most as much again plus 4 MiB: it refuses
// arrays and maps longer than the protocol allows (messageLimits) before
// decoding any. Deltas (crdt.Causal) decode at crdt's cost, up to about
// 15 times their CBOR for the deltas nodes send and about 105 times for
// hostile ones (docs/PROTOCOL.md, Decoding limits).
func Decode(b []byte) (Message, error) {
	var m Message
	if _, err := DecodedLen(b); err != nil {
		return m, err
	}
	if b[0] == codecSnappy {
		var err error
		if b, err = snappy.Decode(nil, b[1:]); err != nil {
			return m, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	} else {
		b = b[1:]
	}
	if err := checkCounts(b); err != nil {
		return Message{}, err
	}
	var w wireMessage
	if err := cborcheck.UnmarshalWire(b, &w); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m = w.Message
	if w.Rel != nil {
		if m.Kind != KindEntries || m.Entries != nil {
			return Message{}, fmt.Errorf("%w: relative entries in a %s message, or with whole ones", ErrInvalid, m.Kind)
		}
		if indexed(w.Rel) {
			// Decoded by Step, which knows the replica sets.
			if len(w.Rel) > MaxEntries {
				return Message{}, fmt.Errorf("%w: %d entries, limit %d", ErrInvalid, len(w.Rel), MaxEntries)
			}
			m.indexed = w.Rel
		} else {
			es, err := fromRelative(w.Rel, nil)
			if err != nil {
				return Message{}, err
			}
			m.Entries = es
		}
	}
	if err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// limits bounds the arrays and maps under the integer keys of a CBOR map,
// for checkCounts.
type limits map[uint64]limit

// limit bounds one array or map: its items or pairs (n; 0: not bounded
// here), and, when not nil, the keys of the map (keys) or of each map it
// holds (each).
type limit struct {
	n          uint64
	keys, each limits
}

// messageLimits are what validate and Step allow in a message's arrays
// and maps. Decoded, a hostile message of one-byte items (empty maps,
// each decoded into a struct of 40 to 64 bytes) would otherwise allocate
// about 45 times its CBOR before they refuse it. Deltas are not bounded
// here: the protocol bounds their bytes only.
var messageLimits = limits{
	4:  {n: MaxReplicas},                                          // vector
	6:  {n: MaxEntries},                                           // entries
	12: {n: MaxEntries},                                           // states: serveRange sends at most MaxEntries
	13: {keys: limits{1: {n: MaxReplicas}, 2: {n: MaxCloudDots}}}, // context: its vector and out-of-order dots
	16: {n: MaxExchangedPeers, each: limits{2: {n: maxPeerAddrs}}},
	18: {n: MaxReplicas}, // compact or relative vector
	19: {n: MaxEntries},  // relative entries
}

// checkCounts walks the CBOR map b, without decoding it or allocating, and
// refuses it when one of its arrays or maps holds more than
// messageLimits allow. Data it cannot walk is left for the decoder to
// refuse. Errors wrap ErrInvalid.
func checkCounts(b []byte) error { return messageLimits.check(b, 0) }

// check checks the map at b[off] (anything else is left for the decoder).
func (ls limits) check(b []byte, off int) error {
	major, pairs, off, err := cborcheck.Head(b, off)
	if err != nil || major != 5 {
		return nil
	}
	for range pairs {
		major, key, val, err := cborcheck.Head(b, off)
		if err != nil {
			return nil
		}
		if l, ok := ls[key]; ok && major == 0 {
			if err := l.check(b, val, key); err != nil {
				return err
			}
		}
		if off, err = cborcheck.Skip(b, off); err != nil { // the key
			return nil
		}
		if off, err = cborcheck.Skip(b, off); err != nil { // its value
			return nil
		}
	}
	return nil
}

// check checks the value of key at b[off], when it is an array or a map.
func (l limit) check(b []byte, off int, key uint64) error {
	major, n, items, err := cborcheck.Head(b, off)
	if err != nil || major != 4 && major != 5 {
		return nil
	}
	if l.n != 0 && n > l.n {
		return fmt.Errorf("%w: key %d holds %d items, limit %d", ErrInvalid, key, n, l.n)
	}
	if l.keys != nil {
		return l.keys.check(b, off)
	}
	if l.each != nil && major == 4 {
		for range n {
			if err := l.each.check(b, items); err != nil {
				return err
			}
			if items, err = cborcheck.Skip(b, items); err != nil {
				return nil
			}
		}
	}
	return nil
}

// validate checks what a message can be checked for alone.
func (m *Message) validate() error {
	if m.Version != Version {
		return fmt.Errorf("%w: version %d, this node speaks %d", ErrInvalid, m.Version, Version)
	}
	if err := CheckVector(m.Vector); err != nil {
		return err
	}
	if len(m.Fleet) > MaxFleetBytes {
		return fmt.Errorf("%w: fleet name of %d bytes, limit %d", ErrInvalid, len(m.Fleet), MaxFleetBytes)
	}
	if len(m.Entries) > MaxEntries {
		return fmt.Errorf("%w: %d entries, limit %d", ErrInvalid, len(m.Entries), MaxEntries)
	}
	if err := m.validateSet(); err != nil {
		return err
	}
	switch m.Kind {
	case KindDigest:
		if len(m.Hash) != sha256.Size {
			return fmt.Errorf("%w: digest of %d bytes", ErrInvalid, len(m.Hash))
		}
	case KindVector, KindAck, KindLeave:
	case KindPeers:
		if len(m.Peers) > MaxExchangedPeers {
			return fmt.Errorf("%w: %d peers, limit %d", ErrInvalid, len(m.Peers), MaxExchangedPeers)
		}
		for i, p := range m.Peers {
			if p.ID == "" || len(p.ID) > maxAddrBytes || len(p.Addrs) > maxPeerAddrs {
				return fmt.Errorf("%w: peer %d: an ID of %d bytes with %d addresses", ErrInvalid, i, len(p.ID), len(p.Addrs))
			}
			for _, a := range p.Addrs {
				if len(a) > maxAddrBytes {
					return fmt.Errorf("%w: peer %d: an address of %d bytes", ErrInvalid, i, len(a))
				}
			}
		}
	case KindEntries:
		return CheckEntries(m.Entries)
	case KindOffer, KindRangeReq, KindRange, KindStates:
		return m.validateTransfer()
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalid, m.Kind)
	}
	return nil
}

// CheckVector checks a received vector's size and entries. Errors wrap
// ErrInvalid.
func CheckVector(vv crdt.VersionVector) error {
	if len(vv) > MaxReplicas {
		return fmt.Errorf("%w: vector of %d replicas, limit %d", ErrInvalid, len(vv), MaxReplicas)
	}
	for r, s := range vv {
		if r == 0 || s > MaxSeqAccepted {
			return fmt.Errorf("%w: vector entry %s:%d", ErrInvalid, r, s)
		}
	}
	return nil
}

// CheckEntries checks received entries: their number, each one's origin,
// range and dots, and the out-of-order dots of their contexts. Errors wrap
// ErrInvalid.
func CheckEntries(es []Entry) error {
	if len(es) > MaxEntries {
		return fmt.Errorf("%w: %d entries, limit %d", ErrInvalid, len(es), MaxEntries)
	}
	cloud := 0
	for i, e := range es {
		if e.Origin == 0 || e.First == 0 || e.Last < e.First || e.Last > MaxSeqAccepted {
			return fmt.Errorf("%w: entry %d covers %s:%d-%d", ErrInvalid, i, e.Origin, e.First, e.Last)
		}
		if cloud += e.strayDots(); cloud > MaxCloudDots {
			return fmt.Errorf("%w: contexts with more than %d out-of-order dots", ErrInvalid, MaxCloudDots)
		}
		if !e.Delta.Ctx.Contains(crdt.Dot{Replica: e.Origin, Seq: e.First}) || !e.Delta.Ctx.Contains(crdt.Dot{Replica: e.Origin, Seq: e.Last}) {
			return fmt.Errorf("%w: entry %d: its delta does not hold its dots %s:%d-%d", ErrInvalid, i, e.Origin, e.First, e.Last)
		}
	}
	return nil
}
