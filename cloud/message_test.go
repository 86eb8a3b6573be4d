package cloud

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edged-dev/edged/cborcheck"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func testBatch() Batch {
	var ctx crdt.Context
	ctx.Add(crdt.Dot{Replica: 7, Seq: 1})
	ctx.Add(crdt.Dot{Replica: 7, Seq: 2})
	return Batch{Seq: 3, Name: "pi-1", Vector: crdt.VersionVector{7: 2},
		Entries: []replication.Entry{{Origin: 7, First: 1, Last: 2, Delta: crdt.Causal{Ctx: ctx}}}}
}

func TestBatchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := seededKey(t, rng)
	for _, compress := range []bool{false, true} {
		b := testBatch()
		b.Name = strings.Repeat("n", 60) // compressible
		wire, err := EncodeBatch(key, b, compress)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(wire)
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != KindBatch || m.From != replicaOf(t, key) || m.Batch.Seq != 3 || m.Batch.Name != b.Name || len(m.Batch.Entries) != 1 || m.Batch.Vector[7] != 2 {
			t.Errorf("compress=%v: decoded %+v", compress, m)
		}
		if compress != (wire[0] == codecZstd) {
			t.Errorf("compress=%v: codec %d", compress, wire[0])
		}
	}
}

// TestForgedMessagesAreRefused: a message whose body was changed, or that
// carries another key than the one that signed it, is refused.
func TestForgedMessagesAreRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key, other := seededKey(t, rng), seededKey(t, rng)
	wire, err := EncodeBatch(key, testBatch(), false)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := cbor.Unmarshal(wire[1:], &env); err != nil {
		t.Fatal(err)
	}
	tampered := env
	tampered.Body = bytes.Clone(env.Body)
	tampered.Body[len(tampered.Body)-1] ^= 1
	otherKey := env
	if otherKey.Key, err = crypto.MarshalPublicKey(other.GetPublic()); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]envelope{"changed body": tampered, "another key": otherKey} {
		b, _ := cborcheck.Marshal(e)
		if _, err := Decode(append([]byte{codecCBOR}, b...)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "signature") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDecodeLimits: oversized messages and decompression bombs are
// refused before they cost memory.
func TestDecodeLimits(t *testing.T) {
	if _, err := Decode(make([]byte, MaxMessageBytes+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("an oversized message: %v", err)
	}
	bomb := zEncoder().EncodeAll(make([]byte, MaxBodyBytes+1), []byte{codecZstd})
	if len(bomb) > MaxMessageBytes {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	if _, err := Decode(bomb); !errors.Is(err, ErrInvalid) {
		t.Errorf("a decompression bomb: %v", err)
	}
	if _, err := Decode([]byte{9, 1, 2}); err == nil || !strings.Contains(err.Error(), "codec") {
		t.Errorf("an unknown codec: %v", err)
	}
}

func TestTopics(t *testing.T) {
	topic := Topic("", 0xab, LevelBatch)
	if topic != "edged/v1/default/00000000000000ab/batch" {
		t.Fatalf("topic %q", topic)
	}
	fleet, node, level, err := ParseTopic(topic)
	if err != nil || fleet != "default" || node != 0xab || level != LevelBatch {
		t.Errorf("ParseTopic(%q) = %q %v %q %v", topic, fleet, node, level, err)
	}
	for _, bad := range []string{"edged/v1/f/00000000000000AB/batch", "edged/v1/f/0000000000000000/batch", "edged/v1/f/ab/batch", "edged/v2/f/00000000000000ab/batch", "edged/v1/f/00000000000000ab"} {
		if _, _, _, err := ParseTopic(bad); err == nil {
			t.Errorf("ParseTopic(%q) took it", bad)
		}
	}
	if got := Filter("+", LevelStatus); got != "edged/v1/+/+/status" {
		t.Errorf("Filter = %q", got)
	}
}

func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := seededKey(f, rng)
	for _, compress := range []bool{false, true} {
		b, err := EncodeBatch(key, testBatch(), compress)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	a, _ := EncodeAck(key, Ack{Node: 1, Seq: 2, Vector: crdt.VersionVector{1: 2}})
	f.Add(a)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("an error that does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if (m.Batch == nil) == (m.Ack == nil) {
			t.Fatalf("decoded %+v", m)
		}
	})
}

// FuzzDecodeBody fuzzes what FuzzDecode cannot reach: the body of a
// message with a valid signature. Any node may sign what it likes, so the
// checks behind the signature face hostile bodies too. The first byte
// picks the kind.
func FuzzDecodeBody(f *testing.F) {
	key := seededKey(f, rand.New(rand.NewPCG(1, 2)))
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		f.Fatal(err)
	}
	batch, _ := cborcheck.Marshal(testBatch())
	ack, _ := cborcheck.Marshal(Ack{Node: 1, Seq: 2, Vector: crdt.VersionVector{1: 2}})
	f.Add(append([]byte{byte(KindBatch)}, batch...))
	f.Add(append([]byte{byte(KindAck)}, ack...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		kind, body := Kind(in[0]), in[1:]
		sig, err := key.Sign(body)
		if err != nil {
			t.Fatal(err)
		}
		env, err := cborcheck.Marshal(envelope{Version: Version, Kind: kind, Key: pub, Body: body, Sig: sig})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(append([]byte{codecCBOR}, env...))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("an error that does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// What was taken encodes again and decodes to the same.
		var again []byte
		switch {
		case m.Batch != nil && m.Ack == nil:
			again, err = EncodeBatch(key, *m.Batch, false)
		case m.Ack != nil && m.Batch == nil:
			again, err = EncodeAck(key, *m.Ack)
		default:
			t.Fatalf("decoded %+v", m)
		}
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", m, err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("accepted %+v, re-encoded, is refused: %v", m, err)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`{"state":"online","name":"pi","replica":"00000000000000ab"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseStatus(b); err == nil && s.State != "online" && s.State != "offline" {
			t.Fatalf("took state %q", s.State)
		}
	})
}

// FuzzParseTopic: the aggregator parses the topic of every message it
// gets; what ParseTopic takes is a topic Topic makes.
func FuzzParseTopic(f *testing.F) {
	f.Add(Topic("", 0xab, LevelBatch))
	f.Add("edged/v1/f/00000000000000AB/batch")
	f.Fuzz(func(t *testing.T, topic string) {
		fleet, node, level, err := ParseTopic(topic)
		if err != nil {
			return
		}
		if got := Topic(fleet, node, level); got != topic {
			t.Fatalf("ParseTopic(%q) = %q %v %q, which make %q", topic, fleet, node, level, got)
		}
	})
}
