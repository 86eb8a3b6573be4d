package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/snappy"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// countingProxy forwards TCP connections to target and counts the bytes
// that cross it both ways: what the nodes' connection costs on the wire,
// with libp2p's Noise and yamux framing and stream negotiation (IP and
// TCP headers not).
type countingProxy struct {
	ln    net.Listener
	bytes atomic.Uint64
}

func newCountingProxy(tb testing.TB, target string) *countingProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.forward(c, target) })
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return p
}

// throughProxy returns an address of tn that runs through a new counting
// proxy, and the proxy.
func throughProxy(tb testing.TB, tn *testNode) (string, *countingProxy) {
	parts := strings.Split(tn.p2p.Addrs()[0], "/") // /ip4/127.0.0.1/tcp/PORT/p2p/ID
	proxy := newCountingProxy(tb, "127.0.0.1:"+parts[4])
	_, parts[4], _ = net.SplitHostPort(proxy.ln.Addr().String())
	return strings.Join(parts, "/"), proxy
}

func (p *countingProxy) forward(c net.Conn, target string) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	var wg sync.WaitGroup
	for _, dir := range [][2]net.Conn{{t, c}, {c, t}} {
		wg.Go(func() {
			io.Copy(dir[0], countingReader{dir[1], &p.bytes})
			dir[0].Close()
		})
	}
	wg.Wait()
}

// countingReader counts what is read from it as it is read.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(uint64(n))
	return n, err
}

// idleWire starts two nodes whose connection runs through a counting
// proxy, waits until they are in step, and returns a function that waits
// for n more rounds and reports what they cost per round: in messages (as
// the simulator counts) and on the wire. With perMessage the nodes speak
// only /edged/sync/1, as earlier builds did: a stream per message.
func idleWire(tb testing.TB, perMessage bool) func(n uint64) (msg, wire float64) {
	a := startBenchNode(tb, nodeOpts{durability: store.None})
	if perMessage {
		speakOnly(a, Protocol)
	}
	addr, proxy := throughProxy(tb, a)
	c := startBenchNode(tb, nodeOpts{durability: store.None}, addr)
	if perMessage {
		speakOnly(c, Protocol)
	}
	nodes := []*testNode{a, c}
	sum := func(f func(*testNode) uint64) (n uint64) {
		for _, tn := range nodes {
			n += f(tn)
		}
		return n
	}
	rounds := func(tn *testNode) uint64 { return tn.p2p.SyncStats().Rounds }
	sent := func(tn *testNode) (n uint64) {
		for _, s := range tn.p2p.Stats() {
			n += s.BytesSent
		}
		return n
	}
	waitFor(tb, "both nodes' digests", func() bool {
		return a.p2p.SyncStats().Digests > 0 && c.p2p.SyncStats().Digests > 0
	})
	return func(n uint64) (float64, float64) {
		wire0, msg0, r0 := proxy.bytes.Load(), sum(sent), sum(rounds)
		waitFor(tb, "rounds", func() bool { return sum(rounds)-r0 >= n })
		r := float64(sum(rounds) - r0)
		if conns := a.p2p.host.Network().ConnsToPeer(c.p2p.host.ID()); len(conns) != 1 {
			tb.Fatalf("a holds %d connections to c, want the one through the proxy", len(conns))
		}
		return float64(sum(sent)-msg0) / r, float64(proxy.bytes.Load()-wire0) / r
	}
}

// TestIdleRoundsAreSmallOnTheWire: two nodes in step keep their messages
// on one stream each way, so an idle round costs its digest and a frame's
// header, not a stream's opening and closing: ≤ 100 bytes a round on the
// wire (issue 5's target, which the simulator checks for the messages).
func TestIdleRoundsAreSmallOnTheWire(t *testing.T) {
	msg, wire := idleWire(t, false)(40)
	t.Logf("an idle round: %.0f bytes of messages, %.0f on the wire", msg, wire)
	if wire > 100 {
		t.Errorf("an idle round costs %.0f bytes on the wire (%.0f of messages), want ≤ 100", wire, msg)
	}
}

// BenchmarkIdleRoundsOnTheWire reports what an idle round costs two nodes
// in step, in messages and on the wire: with a kept stream each way
// (/edged/sync/2), and with a stream per message (/edged/sync/1).
//
//	go test -run '^$' -bench IdleRoundsOnTheWire -benchtime 200x ./p2p
func BenchmarkIdleRoundsOnTheWire(b *testing.B) {
	for _, perMessage := range []bool{false, true} {
		name := map[bool]string{false: "sync-2", true: "sync-1"}[perMessage]
		b.Run(name, func(b *testing.B) {
			measure := idleWire(b, perMessage)
			b.ResetTimer()
			msg, wire := measure(uint64(b.N))
			b.ReportMetric(msg, "message-B/round")
			b.ReportMetric(wire, "wire-B/round")
		})
	}
}

// TestPeerOfAnEarlierBuild: a node that speaks only /edged/sync/1 (one
// message per stream) and one that prefers /edged/sync/2 sync both ways.
func TestPeerOfAnEarlierBuild(t *testing.T) {
	old := startTestNode(t, "")
	speakOnly(old, Protocol)
	nw := startTestNode(t, "", old.p2p.Addrs()[0])
	ctx := context.Background()
	old.eng.Do(ctx, engine.Add("visits", 1))
	nw.eng.Do(ctx, engine.Add("visits", 10))
	for _, tn := range []*testNode{old, nw} {
		waitFor(t, "both writes everywhere", func() bool { return counter(tn.db, "visits") == 11 })
	}
	// Later writes too: the new node's stream to the old one is one per message.
	nw.eng.Do(ctx, engine.Add("visits", 100))
	waitFor(t, "a later write at the earlier build", func() bool { return counter(old.db, "visits") == 111 })
}

// speakOnly makes tn take streams of the given protocols only, as an
// earlier build would.
func speakOnly(tn *testNode, ps ...protocol.ID) {
	for _, p := range []protocol.ID{IndexedProtocol, DenseProtocol, StreamProtocol, Protocol} {
		if !slices.Contains(ps, p) {
			tn.p2p.host.RemoveStreamHandler(p)
		}
	}
}

// TestDenseOnlyWherePeersReadIt: a node sends compact vectors and
// relative entries only on streams of /edged/sync/3 and later, and names
// entries' origins by index (key 17 with entries) and sends relative
// vectors (key 20) only on those of /edged/sync/4; to a peer of an earlier build it sends what that build
// reads: vectors and entries whole (no keys 17, 18 or 19) under
// /edged/sync/2, origins by ID under /edged/sync/3.
func TestDenseOnlyWherePeersReadIt(t *testing.T) {
	for _, c := range []struct {
		name           string
		speak          []protocol.ID
		dense, indexed bool
	}{
		{"build of sync/2", []protocol.ID{StreamProtocol, Protocol}, false, false},
		{"build of sync/3", []protocol.ID{DenseProtocol, StreamProtocol, Protocol}, true, false},
		{"this build", []protocol.ID{IndexedProtocol, DenseProtocol, StreamProtocol, Protocol}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Slow rounds: a peer that has not told its vector by its
			// second round is sent the whole log, origins by ID (see
			// Sync.missing); on a loaded machine the word below can be
			// later than two rounds of 80 ms.
			a := startBenchNode(t, nodeOpts{durability: store.None, tick: 500 * time.Millisecond})
			ctx := context.Background()
			for range 3 {
				a.eng.Do(ctx, engine.Add("visits", 1))
			}
			// Writes of eight more origins, so that a message carries
			// entries of nine: then indexed origins are always the
			// smaller encoding (112–143 bytes against 168–172, measured). With
			// five, Snappy made them the larger in about one run of
			// eight, and the node rightly sent origins by ID.
			known := crdt.VersionVector{a.eng.Replica(): 1}
			for range 8 {
				b := startTestNode(t, "")
				for range 3 {
					b.eng.Do(ctx, engine.Add("doors", 1))
				}
				var es []store.Entry
				if err := b.db.Entries(b.eng.Replica(), 0, func(e store.Entry) error { es = append(es, e); return nil }); err != nil {
					t.Fatal(err)
				}
				if err := a.eng.Apply(ctx, es); err != nil {
					t.Fatal(err)
				}
				known[b.eng.Replica()] = 1
			}
			keys := make(chan map[uint64]bool, 100)
			h := recordingPeer(t, a, c.speak, keys)
			// Its word: it holds the first write of each. a sends it the
			// rest, and its rounds start with a's vector.
			s, err := h.NewStream(ctx, a.p2p.host.ID(), StreamProtocol)
			if err != nil {
				t.Fatal(err)
			}
			word, err := replication.Encode(replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: known})
			if err != nil {
				t.Fatal(err)
			}
			var l [binary.MaxVarintLen64]byte
			s.Write(append(l[:binary.PutUvarint(l[:], uint64(len(word)))], word...))
			// Keys 6 and 4: entries and a vector, whole; 19 and 18:
			// relative entries and a compact vector; 17 with 19: entries
			// with indexed origins.
			want := map[uint64]bool{6: true, 4: true}
			if c.dense {
				want = map[uint64]bool{19: true, 18: true}
			}
			seen := map[uint64]bool{}
			indexed := false
			deadline := time.After(20 * time.Second)
			for countSeen(seen, want) < len(want) || c.indexed && !indexed {
				select {
				case k := <-keys:
					if !c.dense && (k[17] || k[18] || k[19]) {
						t.Fatalf("a message with keys %v to a build that does not read 17, 18 or 19", k)
					}
					if k[19] && k[17] {
						if !c.indexed {
							t.Fatalf("entries with indexed origins (keys %v) to a build that does not read them", k)
						}
						indexed = true
					}
					if k[20] && !c.indexed {
						t.Fatalf("a relative vector (keys %v) to a build that does not read it", k)
					}
					for key := range k {
						seen[key] = true
					}
				case <-deadline:
					t.Fatalf("within 20 s, messages with keys %v (indexed origins: %v); want %v", seen, indexed, want)
				}
			}
		})
	}
}

// countSeen counts the keys of want that were seen.
func countSeen(seen, want map[uint64]bool) int {
	n := 0
	for k := range want {
		if seen[k] {
			n++
		}
	}
	return n
}

// recordingPeer returns a bare libp2p host connected to tn that takes
// streams of the given protocols and sends the keys of each message it
// reads on keys.
func recordingPeer(t *testing.T, tn *testNode, speak []protocol.ID, keys chan<- map[uint64]bool) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, p := range speak {
		h.SetStreamHandler(p, func(s network.Stream) {
			defer s.Close()
			r := bufio.NewReader(s)
			for {
				n, err := binary.ReadUvarint(r)
				if err != nil {
					return
				}
				b := make([]byte, n)
				if _, err := io.ReadFull(r, b); err != nil {
					return
				}
				if b[0] == 1 {
					if b, err = snappy.Decode(nil, b[1:]); err != nil {
						return
					}
				} else {
					b = b[1:]
				}
				var m map[uint64]cbor.RawMessage
				if cbor.Unmarshal(b, &m) != nil {
					return
				}
				k := map[uint64]bool{}
				for key := range m {
					k[key] = true
				}
				select {
				case keys <- k:
				default:
				}
			}
		})
	}
	info, err := peer.AddrInfoFromP2pAddr(ma.StringCast(tn.p2p.Addrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	return h
}

// rawPeer returns a bare libp2p host connected to tn, which writes what a
// test likes, and a context for its calls. It takes and discards what tn
// sends it, so that tn's replies do not fail and count as errors.
func rawPeer(t *testing.T, tn *testNode) (host.Host, context.Context) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, p := range []protocol.ID{StreamProtocol, Protocol} {
		h.SetStreamHandler(p, func(s network.Stream) {
			io.Copy(io.Discard, s)
			s.Close()
		})
	}
	info, err := peer.AddrInfoFromP2pAddr(ma.StringCast(tn.p2p.Addrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	return h, ctx
}

// TestKeptStreamOutlivesABadMessage: on a kept stream a message that does
// not decode is dropped and counted, and the next one is taken; a frame
// over the size limit cannot be skipped, so the node resets the stream.
func TestKeptStreamOutlivesABadMessage(t *testing.T) {
	a := startTestNode(t, "")
	h, ctx := rawPeer(t, a)
	s, err := h.NewStream(ctx, a.p2p.host.ID(), StreamProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(s)
	frame := func(b []byte) {
		var l [binary.MaxVarintLen64]byte
		w.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))])
		w.Write(b)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	good, err := replication.Encode(replication.Message{Version: replication.Version, Kind: replication.KindDigest, Hash: replication.Digest(crdt.VersionVector{})})
	if err != nil {
		t.Fatal(err)
	}
	stats := func() PeerStats { return a.p2p.Stats()[h.ID().String()] }
	frame([]byte{0, 0xff, 0xff}) // the CBOR codec, then bytes that are no CBOR
	frame(good)
	waitFor(t, "the good message after the bad one", func() bool { return stats().BytesReceived == uint64(len(good)) })
	if got := stats().Errors; got != 1 {
		t.Errorf("%d errors counted, want 1 (the bad message)", got)
	}
	// A frame over the limit: the node resets the stream.
	var l [binary.MaxVarintLen64]byte
	w.Write(l[:binary.PutUvarint(l[:], replication.MaxMessageBytes+2)])
	w.Flush()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("after an oversized frame the stream reads %v, want it reset", err)
	}
	if got := stats().Errors; got != 2 {
		t.Errorf("%d errors counted, want 2", got)
	}
}

// TestBurstsShareEagerPushes: the writes of a burst go out in a few pushes
// (at most one each pushEvery), each carrying many of them joined, not one
// message a write. Without the shared pushes, 300 writes one after another
// go out as about 160 entries (the driver takes some together while it is
// busy); with them, as 4 (22 with -race). The test fails at 100, which
// writes slower than 1.6 ms each could reach.
func TestBurstsShareEagerPushes(t *testing.T) {
	a := startTestNode(t, "")
	b := startTestNode(t, "", a.p2p.Addrs()[0])
	ctx := context.Background()
	a.eng.Do(ctx, engine.Add("warm-up", 1))
	waitFor(t, "the first write at b", func() bool { return counter(b.db, "warm-up") == 1 })
	sent := a.p2p.SyncStats().EntriesSent
	const writes = 300
	for i := range writes {
		if _, err := a.eng.Do(ctx, engine.Add(fmt.Sprint("k", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the burst at b", func() bool { return counter(b.db, fmt.Sprint("k", writes-1)) == 1 })
	if n := a.p2p.SyncStats().EntriesSent - sent; n >= 100 {
		t.Errorf("%d writes went out as %d entries: pushes are not shared", writes, n)
	} else {
		t.Logf("%d writes went out as %d entries", writes, n)
	}
}

// TestOneKeptStreamAPeer: a peer's sender keeps one stream, so a second
// kept stream from the same peer resets the first: a peer cannot hold
// idle streams open by the dozen.
func TestOneKeptStreamAPeer(t *testing.T) {
	a := startTestNode(t, "")
	h, ctx := rawPeer(t, a)
	open := func() network.Stream {
		s, err := h.NewStream(ctx, a.p2p.host.ID(), StreamProtocol)
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte{0}) // an empty frame, so the stream reaches the node
		return s
	}
	first := open()
	waitFor(t, "the first stream at the node", func() bool { return a.p2p.Stats()[h.ID().String()].Errors == 1 })
	open()
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := first.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("the first kept stream reads %v after a second opened, want it reset", err)
	}
}

// TestOutboxBoundsBytes: a peer's queue takes messages up to outboxLen
// and, past the first, up to outboxBytes of deltas; taking one frees its
// bytes.
func TestOutboxBoundsBytes(t *testing.T) {
	b := &outbox{ch: make(chan replication.Message, outboxLen)}
	big := replication.Message{Kind: replication.KindEntries, Size: outboxBytes * 3 / 4}
	if !b.put(big) {
		t.Fatal("a big message alone was refused")
	}
	if b.put(big) {
		t.Fatal("a second big message went over the byte bound")
	}
	small := replication.Message{Kind: replication.KindDigest}
	for i := 1; i < outboxLen; i++ {
		if !b.put(small) {
			t.Fatalf("message %d of %d refused", i+1, outboxLen)
		}
	}
	if b.put(small) {
		t.Fatal("a message over outboxLen was taken")
	}
	if m, ok := b.take(context.Background()); !ok || m.Size != big.Size || b.bytes.Load() != 0 {
		t.Fatalf("took %+v (%v), %d bytes left queued", m, ok, b.bytes.Load())
	}
	if !b.put(big) {
		t.Fatal("a big message refused once the bytes were free")
	}
}
