package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/edged-dev/edged/cborcheck"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/replication"
	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Version is the protocol version this package speaks.
const Version = 1

// Limits on what a message may hold.
const (
	// MaxMessageBytes bounds a message on the wire.
	MaxMessageBytes = 4 << 20
	// MaxBodyBytes bounds a message once decompressed.
	MaxBodyBytes = 16 << 20
	// MaxStatusBytes bounds a status document.
	MaxStatusBytes = 4 << 10
	maxKeyBytes    = 128
	maxSigBytes    = 128
	maxNameBytes   = 63
)

// Kind is the type of a message.
type Kind uint8

// The message kinds.
const (
	KindBatch Kind = iota + 1
	KindAck
)

// Batch is what a node uploads: log entries the cloud lacks.
type Batch struct {
	// Seq numbers the node's batches since it started (for logs and
	// metrics; the entries' dots, not Seq, make merging idempotent).
	Seq uint64 `cbor:"1,keyasint"`
	// Name is the node's human-readable name.
	Name string `cbor:"2,keyasint,omitempty"`
	// Vector is the node's log vector when it sent the batch: the
	// aggregator reports how far behind it the cloud is.
	Vector crdt.VersionVector `cbor:"3,keyasint,omitempty"`
	// Entries hold one group per origin, in order, each right after what
	// the cloud acknowledged or was sent before.
	Entries []replication.Entry `cbor:"4,keyasint,omitempty"`
	// Shed counts the raw readings the node has left out of its batches
	// so far (a short budget or disk): the shed record.
	Shed uint64 `cbor:"5,keyasint,omitempty"`
}

// Ack is the aggregator's word to one node, published after a durable
// merge.
type Ack struct {
	// Node is the node it is for, so that an ack cannot be replayed on
	// another node's topic.
	Node crdt.ReplicaID `cbor:"1,keyasint"`
	// Seq is the last batch of the node merged.
	Seq uint64 `cbor:"2,keyasint"`
	// Vector is the aggregator's log vector: what the cloud holds.
	Vector crdt.VersionVector `cbor:"3,keyasint,omitempty"`
	// Readings says, per origin, the entries whose raw readings the
	// aggregator holds (the readings stream). It is never absent (empty,
	// not null, when nothing is held) from an aggregator that takes the
	// readings stream; an older one leaves it out, and nodes then keep
	// their raw readings until it is upgraded.
	Readings map[crdt.ReplicaID]crdt.Ranges `cbor:"4,keyasint"`
}

func (a *Ack) validate() error {
	if err := replication.CheckVector(a.Vector); err != nil {
		return err
	}
	if len(a.Readings) > replication.MaxReplicas {
		return fmt.Errorf("readings of %d origins, limit %d", len(a.Readings), replication.MaxReplicas)
	}
	for r, rs := range a.Readings {
		if err := rs.Validate(); err != nil {
			return fmt.Errorf("readings of %s: %v", r, err)
		}
	}
	return nil
}

// envelope is a signed message: Sig is Key's signature of Body, the CBOR
// of a Batch or an Ack.
type envelope struct {
	Version uint   `cbor:"1,keyasint"`
	Kind    Kind   `cbor:"2,keyasint"`
	Key     []byte `cbor:"3,keyasint"`
	Body    []byte `cbor:"4,keyasint"`
	Sig     []byte `cbor:"5,keyasint"`
}

// Message is a decoded and verified message.
type Message struct {
	Kind Kind
	// From is the signer's replica ID, derived from its key; Peer is its
	// peer ID.
	From  crdt.ReplicaID
	Peer  peer.ID
	Batch *Batch
	Ack   *Ack
	// Wire is the size of the message as received.
	Wire int
}

// ErrInvalid wraps every decoding and verification error.
var ErrInvalid = errors.New("cloud: invalid message")

// Framing: the first byte of a message names its codec.
const (
	codecCBOR = 0
	codecZstd = 1
)

var (
	// The zstd coders are made on first use: a node that never
	// compresses does not pay for their buffers. A 1 MiB window keeps
	// them small on a Pi.
	zEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			panic(err) // the options are constants
		}
		return e
	})
	zDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBodyBytes), zstd.WithDecoderMaxWindow(MaxBodyBytes))
		if err != nil {
			panic(err) // the options are constants
		}
		return d
	})
)

// EncodeBatch signs b with key and encodes it, zstd-compressed when
// compress is set and that is smaller.
func EncodeBatch(key crypto.PrivKey, b Batch, compress bool) ([]byte, error) {
	return encode(key, KindBatch, b, compress)
}

// EncodeAck signs a with key and encodes it.
func EncodeAck(key crypto.PrivKey, a Ack) ([]byte, error) { return encode(key, KindAck, a, false) }

func encode(key crypto.PrivKey, kind Kind, v any, compress bool) ([]byte, error) {
	body, err := cborcheck.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("cloud: sign: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	b, err := cborcheck.Marshal(envelope{Version: Version, Kind: kind, Key: pub, Body: body, Sig: sig})
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBodyBytes {
		return nil, fmt.Errorf("cloud: message of %d bytes, limit %d", len(b), MaxBodyBytes)
	}
	out := append([]byte{codecCBOR}, b...)
	if compress {
		if z := zEncoder().EncodeAll(b, []byte{codecZstd}); len(z) < len(out) {
			out = z
		}
	}
	if len(out) > MaxMessageBytes {
		return nil, fmt.Errorf("cloud: message of %d bytes, limit %d", len(out), MaxMessageBytes)
	}
	return out, nil
}

// Decode parses a message, checks its limits, its signature and its
// content. Errors wrap ErrInvalid and say what is wrong.
func Decode(wire []byte) (Message, error) {
	m := Message{Wire: len(wire)}
	if len(wire) < 2 || len(wire) > MaxMessageBytes {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalid, len(wire), MaxMessageBytes)
	}
	b := wire[1:]
	switch wire[0] {
	case codecCBOR:
	case codecZstd:
		var err error
		if b, err = zDecoder().DecodeAll(b, nil); err != nil {
			return m, fmt.Errorf("%w: zstd: %v", ErrInvalid, err)
		}
		if len(b) > MaxBodyBytes {
			return m, fmt.Errorf("%w: %d bytes decompressed, limit %d", ErrInvalid, len(b), MaxBodyBytes)
		}
	default:
		return m, fmt.Errorf("%w: unknown codec %d", ErrInvalid, wire[0])
	}
	var env envelope
	if err := cborcheck.UnmarshalWire(b, &env); err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if env.Version != Version {
		return m, fmt.Errorf("%w: version %d, this node speaks %d", ErrInvalid, env.Version, Version)
	}
	if len(env.Key) > maxKeyBytes || len(env.Sig) > maxSigBytes {
		return m, fmt.Errorf("%w: a key of %d bytes and a signature of %d", ErrInvalid, len(env.Key), len(env.Sig))
	}
	pub, err := crypto.UnmarshalPublicKey(env.Key)
	if err != nil {
		return m, fmt.Errorf("%w: key: %v", ErrInvalid, err)
	}
	if ok, err := pub.Verify(env.Body, env.Sig); err != nil || !ok {
		return m, fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	if m.Peer, err = peer.IDFromPublicKey(pub); err != nil {
		return m, fmt.Errorf("%w: key: %v", ErrInvalid, err)
	}
	m.From, m.Kind = identity.ReplicaOf(m.Peer), env.Kind
	switch env.Kind {
	case KindBatch:
		m.Batch = new(Batch)
		if err := cborcheck.UnmarshalWire(env.Body, m.Batch); err != nil {
			return m, fmt.Errorf("%w: batch: %v", ErrInvalid, err)
		}
		err = m.Batch.validate()
	case KindAck:
		m.Ack = new(Ack)
		if err := cborcheck.UnmarshalWire(env.Body, m.Ack); err != nil {
			return m, fmt.Errorf("%w: ack: %v", ErrInvalid, err)
		}
		err = m.Ack.validate()
	default:
		err = fmt.Errorf("unknown kind %d", env.Kind)
	}
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return m, nil
}

func (b *Batch) validate() error {
	if len(b.Name) > maxNameBytes {
		return fmt.Errorf("a name of %d bytes, limit %d", len(b.Name), maxNameBytes)
	}
	if err := replication.CheckVector(b.Vector); err != nil {
		return err
	}
	return replication.CheckEntries(b.Entries)
}

// Status is a node's retained status document (JSON): its birth message
// when it connects, its last will when it vanishes.
type Status struct {
	// State is "online" or "offline".
	State   string `json:"state"`
	Name    string `json:"name,omitempty"`
	Replica string `json:"replica"`
	PeerID  string `json:"peer_id,omitempty"`
	Version string `json:"version,omitempty"`
}

// ParseStatus parses a status document.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	if len(b) > MaxStatusBytes {
		return s, fmt.Errorf("%w: status of %d bytes, limit %d", ErrInvalid, len(b), MaxStatusBytes)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: status: %v", ErrInvalid, err)
	}
	if s.State != "online" && s.State != "offline" {
		return s, fmt.Errorf("%w: status state %q, want online or offline", ErrInvalid, s.State)
	}
	if len(s.Name) > maxNameBytes {
		return s, fmt.Errorf("%w: status name of %d bytes", ErrInvalid, len(s.Name))
	}
	return s, nil
}
