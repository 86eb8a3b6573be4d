package p2p

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/internal/poll"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
)

type testNode struct {
	db  *store.DB
	eng *engine.Engine
	p2p *Node
	// stop stops the node and closes its store; it runs at the end of
	// the test if not before.
	stop func()
}

func startTestNode(t *testing.T, fleetKey string, peers ...string) *testNode {
	return startBenchNode(t, nodeOpts{durability: store.None, fleetKey: fleetKey}, peers...)
}

// nodeOpts are the settings a test node differs in.
type nodeOpts struct {
	durability store.Durability
	fleetKey   string
	scope      func(string) replication.Scope
	dir        string   // data directory; empty: a new one
	allow      []string // peer IDs
	fleet      string
	tick       time.Duration // 0: 20 ms
	forget     time.Duration // ForgetAfter
	idle       bool          // New only: neither the node nor its engine runs
}

func startBenchNode(t testing.TB, no nodeOpts, peers ...string) *testNode {
	t.Helper()
	dir := no.dir
	if dir == "" {
		dir = t.TempDir()
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), Durability: no.durability})
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{db: db}
	tn.eng = engine.New(db, id.Replica, engine.Config{OnCommit: func([]string) {
		if tn.p2p != nil {
			tn.p2p.Notify()
		}
	}})
	if no.tick == 0 {
		no.tick = 20 * time.Millisecond
	}
	n, err := New(Config{Addr: "/ip4/127.0.0.1/tcp/0", Peers: peers, FleetKeyFile: no.fleetKey, Allow: no.allow, Fleet: no.fleet, Tick: no.tick, ForgetAfter: no.forget},
		Options{Key: id.Key, DB: db, Engine: tn.eng, Scope: no.scope})
	if err != nil {
		t.Fatal(err)
	}
	tn.p2p = n
	if no.idle {
		t.Cleanup(func() {
			n.host.Close()
			db.Close()
		})
		return tn
	}
	ctx, cancel := context.WithCancel(context.Background())
	engDone, p2pDone := make(chan error, 1), make(chan error, 1)
	go func() { engDone <- tn.eng.Run(ctx) }()
	go func() { p2pDone <- n.Run(ctx) }()
	var once sync.Once
	tn.stop = func() {
		once.Do(func() {
			cancel()
			<-p2pDone
			<-engDone
			db.Close()
		})
	}
	t.Cleanup(tn.stop)
	return tn
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, what, cond)
}

func counter(db *store.DB, name string) int64 {
	vs, _ := db.Get(name)
	if c, ok := vs[crdt.TypePNCounter].(*crdt.PNCounter); ok {
		return c.Value()
	}
	return 0
}

func TestThreeNodesConverge(t *testing.T) {
	a := startTestNode(t, "")
	b := startTestNode(t, "", a.p2p.Addrs()[0])
	c := startTestNode(t, "", b.p2p.Addrs()[0]) // c reaches a only through b
	ctx := context.Background()
	for i, n := range []*testNode{a, b, c} {
		for range 5 {
			if _, err := n.eng.Do(ctx, engine.Add("visits", int64(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := n.eng.Do(ctx, engine.AddElems("members", fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*testNode{a, b, c} {
		waitFor(t, "convergence", func() bool { return counter(n.db, "visits") == 30 })
	}
	ca, cc := a.db.Context(), c.db.Context()
	waitFor(t, "equal contexts", func() bool { ca, cc = a.db.Context(), c.db.Context(); return ca.Equal(&cc) })
	waitFor(t, "b to know its peers hold everything", func() bool {
		st := b.p2p.Stats()
		for _, s := range st {
			if s.Lag != 0 || s.InStepAt.IsZero() {
				return false
			}
		}
		return len(st) == 2
	})
}

func TestFleetKeyKeepsStrangersOut(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "fleet.key")
	os.WriteFile(key, []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), 0o600)
	other := filepath.Join(dir, "other.key")
	os.WriteFile(other, []byte("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"), 0o600)
	a := startTestNode(t, key)
	b := startTestNode(t, key, a.p2p.Addrs()[0])
	stranger := startTestNode(t, other, a.p2p.Addrs()[0])
	ctx := context.Background()
	if _, err := a.eng.Do(ctx, engine.Add("x", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fleet member to sync", func() bool { return counter(b.db, "x") == 1 })
	// The stranger had as long as the member and got nothing.
	if counter(stranger.db, "x") != 0 {
		t.Fatal("a host without the fleet key got data")
	}
}

// secretsLocal is a scope: names under secret/ are local, others fleet.
func secretsLocal(name string) replication.Scope {
	if strings.HasPrefix(name, "secret/") {
		return replication.Local
	}
	return replication.Fleet
}

func TestScopesKeepLocalDataHome(t *testing.T) {
	local := secretsLocal
	a := startBenchNode(t, nodeOpts{durability: store.None, scope: local})
	b := startBenchNode(t, nodeOpts{durability: store.None, scope: local}, a.p2p.Addrs()[0])
	ctx := context.Background()
	// One operation touching both scopes, and one of each alone.
	if _, err := a.eng.DoAll(ctx, engine.Add("secret/pin", 1), engine.Add("pub/both", 1)); err != nil {
		t.Fatal(err)
	}
	a.eng.Do(ctx, engine.Add("secret/only", 1))
	a.eng.Do(ctx, engine.Add("pub/only", 1))
	waitFor(t, "the fleet keys", func() bool { return counter(b.db, "pub/both") == 1 && counter(b.db, "pub/only") == 1 })
	ca := a.db.Context()
	waitFor(t, "b's vector to cover a's local writes too", func() bool { cb := b.db.Context(); return cb.Equal(&ca) })
	for _, name := range []string{"secret/pin", "secret/only"} {
		if vs, _ := b.db.Get(name); vs != nil {
			t.Errorf("%s reached a peer: %v", name, vs)
		}
	}
}

func TestAllowlistAdmitsOnlyListedPeers(t *testing.T) {
	bDir := t.TempDir()
	bID, err := identity.Load(bDir)
	if err != nil {
		t.Fatal(err)
	}
	a := startBenchNode(t, nodeOpts{durability: store.None, allow: []string{bID.PeerID.String()}})
	b := startBenchNode(t, nodeOpts{durability: store.None, dir: bDir}, a.p2p.Addrs()[0])
	stranger := startBenchNode(t, nodeOpts{durability: store.None}, a.p2p.Addrs()[0])
	ctx := context.Background()
	if _, err := a.eng.Do(ctx, engine.Add("x", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the listed peer to sync", func() bool { return counter(b.db, "x") == 1 })
	if counter(stranger.db, "x") != 0 {
		t.Fatal("a peer not on the allowlist got data")
	}
}

// TestUnresponsivePeerDoesNotStallOthers: a static peer that accepts TCP
// and never answers must not hold up sync with a good peer.
func TestUnresponsivePeerDoesNotStallOthers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	ghost, err := identity.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	hole := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, ghost.PeerID)

	a := startBenchNode(t, nodeOpts{durability: store.None}, hole)
	b := startBenchNode(t, nodeOpts{durability: store.None}, a.p2p.Addrs()[0])
	ctx := context.Background()
	start := time.Now()
	for i := range 20 {
		if _, err := a.eng.Do(ctx, engine.Add("x", 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprint("write ", i, " to reach the good peer"), func() bool { return counter(b.db, "x") == int64(i+1) })
	}
	// Each write reaches b within a few ticks (about 0.3 s for all 20
	// here). A driver that waited on the silent peer would take seconds.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 writes took %s to reach the good peer: the silent one held them up", d)
	}
}

func TestQUICWithoutFleetKey(t *testing.T) {
	a := startTestNode(t, "")
	var quicAddr string
	for _, addr := range a.p2p.Addrs() {
		if strings.Contains(addr, "/quic-v1/") {
			quicAddr = addr
		}
	}
	if quicAddr == "" {
		t.Fatalf("no QUIC address among %v", a.p2p.Addrs())
	}
	b := startTestNode(t, "", quicAddr)
	if _, err := b.eng.Do(context.Background(), engine.Add("visits", 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write over QUIC", func() bool { return counter(a.db, "visits") == 3 })

	key := filepath.Join(t.TempDir(), "fleet.key")
	os.WriteFile(key, []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), 0o600)
	for _, addr := range startTestNode(t, key).p2p.Addrs() {
		if !strings.Contains(addr, "/tcp/") {
			t.Errorf("a host with a fleet key listens on %s: private networks are TCP only", addr)
		}
	}
}

func TestNodesOfAnotherFleetAreIgnored(t *testing.T) {
	start := func(fleet string, peers ...string) *testNode {
		return startBenchNode(t, nodeOpts{durability: store.None, fleet: fleet}, peers...)
	}
	a := start("north")
	b := start("north", a.p2p.Addrs()[0])
	c := start("south", a.p2p.Addrs()[0])
	ctx := context.Background()
	b.eng.Do(ctx, engine.Add("visits", 1))
	c.eng.Do(ctx, engine.Add("visits", 10))
	waitFor(t, "b's write at a", func() bool { return counter(a.db, "visits") >= 1 })
	waitFor(t, "a to notice c's fleet", func() bool {
		st, ok := a.p2p.Stats()[c.p2p.host.ID().String()]
		return ok && st.OtherFleet != nil && *st.OtherFleet == "south"
	})
	if got := counter(a.db, "visits"); got != 1 {
		t.Errorf("a counts %d visits: a write of another fleet got in", got)
	}
	if got := counter(c.db, "visits"); got != 10 {
		t.Errorf("c counts %d visits: a write of another fleet got in", got)
	}
}

// TestBigBatchesReplicate: one write of 10,000 readings takes 10,000 dots,
// which its entry's context lists out of order; peers take it.
func TestBigBatchesReplicate(t *testing.T) {
	a := startTestNode(t, "")
	a.eng.Do(context.Background(), engine.Add("first", 1)) // so the batch's dots do not start at 1
	b := startTestNode(t, "", a.p2p.Addrs()[0])
	rs := make([]crdt.Reading, 10_000)
	for i := range rs {
		rs[i] = crdt.Reading{Time: int64(i+1) * 1e9, Value: float64(i)}
	}
	if _, err := a.eng.Do(context.Background(), engine.AddReadings("temp", rs...)); err != nil {
		t.Fatal(err)
	}
	last := crdt.Dot{Replica: a.eng.Replica(), Seq: 10_001}
	waitFor(t, "the batch at b", func() bool { c := b.db.Context(); return c.Contains(last) })
}
