package replication

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/klauspost/compress/snappy"
)

// cborHead writes a CBOR head of major type major with argument n.
func cborHead(b *bytes.Buffer, major byte, n uint64) {
	switch {
	case n < 24:
		b.WriteByte(major<<5 | byte(n))
	case n < 1<<8:
		b.WriteByte(major<<5 | 24)
		b.WriteByte(byte(n))
	case n < 1<<16:
		b.WriteByte(major<<5 | 25)
		b.Write([]byte{byte(n >> 8), byte(n)})
	default:
		b.WriteByte(major<<5 | 26)
		b.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
}

// amplificationFrame returns an entries message of 4 MiB of CBOR, 263 KB
// compressed, whose arrays of keys 6, 12 and 19 hold 2^20 one-byte empty
// maps each, and whose one peer has 2^20-64 empty addresses: decoded,
// each would be a struct of 16 to 64 bytes (180 MiB in all, before
// validate refused the message).
func amplificationFrame() []byte {
	const n = 1 << 20 // the wire decoder's limit on an array
	var b bytes.Buffer
	cborHead(&b, 5, 6)
	b.Write([]byte{0x01, 0x01}) // 1: version 1
	b.Write([]byte{0x02, 0x03}) // 2: kind entries
	b.WriteByte(0x06)           // 6: entries
	cborHead(&b, 4, n)
	b.Write(bytes.Repeat([]byte{0xa0}, n))
	b.WriteByte(0x0c) // 12: states
	cborHead(&b, 4, n)
	b.Write(bytes.Repeat([]byte{0xa0}, n))
	b.WriteByte(0x10) // 16: peers
	cborHead(&b, 4, 1)
	cborHead(&b, 5, 1)
	b.WriteByte(0x02)
	cborHead(&b, 4, n-64)
	b.Write(bytes.Repeat([]byte{0x60}, n-64))
	b.WriteByte(0x13) // 19: relative entries
	cborHead(&b, 4, n)
	b.Write(bytes.Repeat([]byte{0xa0}, n))
	return append([]byte{codecSnappy}, snappy.Encode(nil, b.Bytes())...)
}

// limitsFrame returns a message whose arrays and maps all hold as many
// one-byte items as messageLimits allow, and nothing else: the most
// Decode allocates for a message's structure.
func limitsFrame() []byte {
	var b bytes.Buffer
	cborHead(&b, 5, 9)
	b.Write([]byte{0x01, 0x01, 0x02, 0x08}) // version 1, kind states
	b.WriteByte(0x04)                       // 4: vector
	cborHead(&b, 5, MaxReplicas)
	for i := range MaxReplicas {
		cborHead(&b, 0, uint64(i+1))
		b.WriteByte(0x01)
	}
	for _, key := range []byte{0x06, 0x0c, 0x13} { // entries, states, relative entries
		b.WriteByte(key)
		cborHead(&b, 4, MaxEntries)
		b.Write(bytes.Repeat([]byte{0xa0}, MaxEntries))
	}
	b.WriteByte(0x0d) // 13: context, its vector
	cborHead(&b, 5, 1)
	b.WriteByte(0x01)
	cborHead(&b, 4, MaxReplicas)
	for i := range MaxReplicas {
		b.WriteByte(0x82)
		cborHead(&b, 0, uint64(i+1))
		b.WriteByte(0x01)
	}
	b.WriteByte(0x10) // 16: peers
	cborHead(&b, 4, MaxExchangedPeers)
	for range MaxExchangedPeers {
		b.Write([]byte{0xa1, 0x02})
		cborHead(&b, 4, maxPeerAddrs)
		b.Write(bytes.Repeat([]byte{0x60}, maxPeerAddrs))
	}
	b.WriteByte(0x12) // 18: compact vector
	cborHead(&b, 4, MaxReplicas)
	b.Write(bytes.Repeat([]byte{0x01}, MaxReplicas))
	return append([]byte{codecSnappy}, snappy.Encode(nil, b.Bytes())...)
}

// TestDecodeAmplification: decoding a message allocates, besides its
// decompressed CBOR, at most as much again plus 4 MiB for
// everything but its deltas (the bound docs/PROTOCOL.md states): arrays
// and maps longer than the protocol allows are refused before they are
// decoded.
func TestDecodeAmplification(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"arrays of 2^20 empty maps", amplificationFrame()},
		{"every array at its limit", limitsFrame()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := DecodedLen(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err = Decode(tc.frame)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode: %v, want ErrInvalid", err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("wire frame %d bytes (CBOR %d bytes): Decode allocated %d KiB (%.1fx the CBOR)", len(tc.frame), l, alloc>>10, float64(alloc)/float64(l))
			if limit := 2*uint64(l) + 4<<20; alloc > limit {
				t.Errorf("decoding a %d-byte frame (%d bytes of CBOR) allocated %d KiB, over twice the CBOR and 4 MiB (%d KiB)", len(tc.frame), l, alloc>>10, limit>>10)
			}
		})
	}
}

// TestDecodeAtLimits: messages whose arrays hold as many items as the
// protocol allows decode; one more is refused before decoding.
func TestDecodeAtLimits(t *testing.T) {
	peers := make([]PeerAddrs, MaxExchangedPeers)
	for i := range peers {
		peers[i] = PeerAddrs{ID: "12D3KooW", Addrs: make([]string, maxPeerAddrs)}
	}
	seqs := make([]crdt.Seq, MaxReplicas)
	for i := range seqs {
		seqs[i] = 1
	}
	for _, tc := range []struct {
		name string
		m    Message
		bad  func(*Message)
	}{
		{"peers", Message{Version: Version, Kind: KindPeers, Peers: peers}, func(m *Message) { m.Peers[0].Addrs = append(m.Peers[0].Addrs, "") }},
		{"compact vector", Message{Version: Version, Kind: KindAck, Set: make([]byte, setHashBytes), Seqs: seqs}, func(m *Message) { m.Seqs = append(m.Seqs, 1) }},
	} {
		if err := checkCounts(cborOf(t, tc.m)); err != nil {
			t.Errorf("%s at its limits: %v", tc.name, err)
		}
		tc.bad(&tc.m)
		if err := checkCounts(cborOf(t, tc.m)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s over its limits: %v, want ErrInvalid", tc.name, err)
		}
	}
}

// cborOf returns m's CBOR, as Decode reads it.
func cborOf(t testing.TB, m Message) []byte {
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] == codecSnappy {
		if b, err = snappy.Decode(nil, b[1:]); err != nil {
			t.Fatal(err)
		}
		return b
	}
	return b[1:]
}
