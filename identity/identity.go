// Package identity gives a node its identity: a libp2p Ed25519 key pair
// created on first start in the data directory, the libp2p peer ID derived
// from it, and the 64-bit CRDT replica ID derived from the peer ID.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFile is the name of the key file in the data directory.
const KeyFile = "identity.key"

// Identity is a node's key pair and the IDs derived from it.
type Identity struct {
	Key     crypto.PrivKey
	PeerID  peer.ID
	Replica crdt.ReplicaID
}

// Load reads the node key from dir, creating it (mode 0600) if it does not
// exist. A key file that exists but cannot be parsed is an error, never
// replaced: a new key would make the node a different replica.
func Load(dir string) (Identity, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(dir, path)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %s is damaged (%v); restore it from a backup: a new key would make this node a new replica", path, err)
	}
	return FromKey(key)
}

func create(dir, path string) (Identity, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: generate key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	// A crash leaves either no key or a whole key, never a truncated one.
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return Identity{}, fmt.Errorf("identity: write %s: %w", path, err)
	}
	return FromKey(key)
}

// FromKey derives the identity of a private key.
func FromKey(key crypto.PrivKey) (Identity, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return Identity{Key: key, PeerID: id, Replica: ReplicaOf(id)}, nil
}

// ReplicaOf derives the replica ID of a peer: the first 64 bits of the
// SHA-256 of the peer ID's bytes (never zero).
func ReplicaOf(id peer.ID) crdt.ReplicaID {
	sum := sha256.Sum256([]byte(id))
	r := crdt.ReplicaID(binary.BigEndian.Uint64(sum[:8]))
	if r == 0 {
		r = 1
	}
	return r
}
