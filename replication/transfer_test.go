package replication_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
)

// fill has node i add one element to each of n sets.
func fill(t *testing.T, sim *simtest.Sim, i, n int, prefix, elem string) {
	t.Helper()
	for k := range n {
		name := fmt.Sprintf("%s%04d", prefix, k)
		err := sim.Write(i, func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
			return m.Update(crdt.Field{Name: name, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
				return v.(*crdt.AWSet).Add(g, elem), nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// converge runs rounds until every node is equal.
func converge(t *testing.T, sim *simtest.Sim) {
	t.Helper()
	for r := 0; !sim.Converged() || sim.InFlight() > 0; r++ {
		if r == 300 {
			t.Fatal("not converged after 300 rounds")
		}
		if err := sim.Round(); err != nil {
			t.Fatal(err)
		}
	}
}

// deliverUntil delivers messages one at a time, ticking when none is in
// flight, until cond holds.
func deliverUntil(t *testing.T, sim *simtest.Sim, cond func() bool) {
	t.Helper()
	for !cond() {
		more, err := sim.Deliver()
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			if err := sim.Tick(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTransferSkipsEqualRanges: a node that missed one change among 2,000
// keys, which no log holds any more, fetches the states of that key's
// range only; the other ranges cost their digests.
func TestTransferSkipsEqualRanges(t *testing.T) {
	sim := simtest.New(2, 1, simtest.Net{}, replication.Config{RoundTicks: 2, MaxBatchBytes: 8 << 10})
	fill(t, sim, 0, 2000, "k", strings.Repeat("a", 32))
	converge(t, sim)
	full, _, err := sim.Nodes[0].States("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	stateBytes := 0
	for _, st := range full {
		stateBytes += len(st.Name) + len(st.Record)
	}
	st0 := sim.Nodes[1].Sync.Stats() // it caught up as a new node by transfer
	sim.Partition([]int{0}, []int{1})
	fill(t, sim, 0, 1, "k1234", "b") // one new key, k12340000
	sim.Nodes[0].Truncate()
	sim.Heal()
	before := sim.Bytes
	converge(t, sim)
	st := sim.Nodes[1].Sync.Stats()
	st.TransfersDone -= st0.TransfersDone
	st.RangesSkipped -= st0.RangesSkipped
	st.StatesReceived -= st0.StatesReceived
	if st.TransfersDone != 1 {
		t.Fatalf("%d transfers done, want 1", st.TransfersDone)
	}
	if st.RangesSkipped == 0 || st.StatesReceived > 200 {
		t.Errorf("%d ranges skipped, %d states received of %d", st.RangesSkipped, st.StatesReceived, len(full))
	}
	sent := sim.Bytes - before
	t.Logf("caught up with %d bytes on the wire for %d bytes of state (%.3f×), %d ranges skipped, %d states sent",
		sent, stateBytes, float64(sent)/float64(stateBytes), st.RangesSkipped, st.StatesReceived)
	if float64(sent) > 0.25*float64(stateBytes) {
		t.Errorf("sent %d bytes to repair one key of %d bytes of state", sent, stateBytes)
	}
}

// TestTransferResumesAfterCrash: a node that crashes during a transfer
// continues after a restart from the last range it joined, not from the
// start.
func TestTransferResumesAfterCrash(t *testing.T) {
	const keys = 1000
	sim := simtest.New(2, 3, simtest.Net{}, replication.Config{RoundTicks: 2, MaxBatchBytes: 4 << 10})
	sim.Partition([]int{0}, []int{1})
	fill(t, sim, 0, keys, "k", strings.Repeat("a", 32))
	sim.Nodes[0].Truncate()
	sim.Heal()
	// Deliver until node 1 has joined a few pages.
	deliverUntil(t, sim, func() bool { return sim.Nodes[1].Sync.Stats().StatesReceived >= keys/2 })
	sim.Crash(1)
	sim.Restart(1)
	if _, ok := sim.Nodes[1].Sync.Transferring(); !ok {
		t.Fatal("the restarted node did not resume its transfer")
	}
	converge(t, sim)
	sent := sim.Nodes[0].Sync.Stats().StatesSent
	if sent >= keys+keys/2 {
		t.Errorf("%d states sent for %d keys: the transfer started over", sent, keys)
	}
	if sim.Nodes[1].Sync.Stats().TransfersDone != 1 {
		t.Error("the resumed transfer did not finish")
	}
}

// TestTransferClientStartsRoundsWithDigests: a node catching up by state
// transfer takes no entries, so it does not start rounds with its vector
// (which would draw entries), even when it holds writes its peer lacks.
func TestTransferClientStartsRoundsWithDigests(t *testing.T) {
	sim := simtest.New(2, 3, simtest.Net{}, replication.Config{RoundTicks: 2, MaxBatchBytes: 4 << 10})
	sim.Partition([]int{0}, []int{1})
	fill(t, sim, 0, 1000, "k", strings.Repeat("a", 32))
	sim.Nodes[0].Truncate()
	sim.Heal()
	client := sim.Nodes[1]
	deliverUntil(t, sim, func() bool { return client.Sync.Stats().StatesReceived > 0 })
	if err := client.Write(func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
		return m.Update(crdt.Field{Name: "own", Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, 1) })
	}); err != nil {
		t.Fatal(err)
	}
	rounds := 0
	for range 8 {
		if _, busy := client.Sync.Transferring(); !busy {
			t.Fatal("the transfer ended before the test")
		}
		for _, o := range client.Sync.Tick() {
			switch o.Msg.Kind {
			case replication.KindDigest:
				rounds++
			case replication.KindVector:
				t.Fatalf("a transfer client started a round with %+v", o.Msg)
			}
		}
	}
	if rounds == 0 {
		t.Fatal("no round started in 8 ticks")
	}
}

func TestHostileTransferMessagesAreRefused(t *testing.T) {
	var ctx crdt.Context
	long := strings.Repeat("n", replication.MaxNameBytes+1)
	hash := make([]byte, 32)
	for _, c := range []struct {
		name string
		msg  replication.Message
	}{
		{"range bound too long", replication.Message{Kind: replication.KindRangeReq, After: long}},
		{"empty range", replication.Message{Kind: replication.KindRangeReq, After: "b", Last: "a"}},
		{"range without context", replication.Message{Kind: replication.KindRange, Hash: hash, Done: true}},
		{"short range digest", replication.Message{Kind: replication.KindRange, Hash: hash[:4], Done: true, Ctx: &ctx}},
		{"open range not last", replication.Message{Kind: replication.KindRange, Hash: hash, Ctx: &ctx}},
		{"states out of order", replication.Message{Kind: replication.KindStates, Last: "z", Ctx: &ctx,
			States: []replication.State{{Name: "b"}, {Name: "a"}}}},
		{"state outside its range", replication.Message{Kind: replication.KindStates, After: "m", Last: "p", Ctx: &ctx,
			States: []replication.State{{Name: "q"}}}},
		{"state without a name", replication.Message{Kind: replication.KindStates, Done: true, Ctx: &ctx,
			States: []replication.State{{}}}},
	} {
		c.msg.Version = replication.Version
		b, err := replication.Encode(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replication.Decode(b); !errors.Is(err, replication.ErrInvalid) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// States nobody asked for change nothing.
	s := replication.New(gappyLog{}, replication.Config{})
	s.AddPeer("p")
	res, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindStates, Done: true, Ctx: &ctx,
		States: []replication.State{{Name: "a", Record: []byte{1}}}})
	if err != nil || res.Page != nil {
		t.Errorf("unrequested states: %v, page %v", err, res.Page)
	}
}

// TestLateAnswersAreNotTaken: an answer to an earlier request (delayed by
// the network, or sent to the engine before a restart) may hold states
// read before the transfer's base; only the answer to the current request
// is joined.
func TestLateAnswersAreNotTaken(t *testing.T) {
	var ctx crdt.Context
	s := replication.New(gappyLog{}, replication.Config{})
	s.AddPeer("p")
	res, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindOffer})
	if err != nil || len(res.Out) != 1 || res.Out[0].Msg.Kind != replication.KindRangeReq || res.Out[0].Msg.Req == 0 {
		t.Fatalf("an offer: %v, %+v", err, res.Out)
	}
	req := res.Out[0].Msg
	answer := replication.Message{Version: replication.Version, Kind: replication.KindStates, Done: true, Ctx: &ctx,
		States: []replication.State{{Name: "a", Record: []byte{1}}}}
	answer.Req = req.Req + 2
	if res, _ := s.Step("p", answer); res.Page != nil {
		t.Fatal("an answer to another request was joined")
	}
	answer.Req = req.Req
	if res, _ := s.Step("p", answer); res.Page == nil {
		t.Fatal("the answer to the current request was not joined")
	}
}

// TestAnswersReadBeforeTheBaseAreNotTaken: an answer whose vector is below
// the transfer's base was read before it, even when it carries the number
// of the current request (numbers repeat when an engine restarts with the
// seed it had: the simulation found this).
func TestAnswersReadBeforeTheBaseAreNotTaken(t *testing.T) {
	var ctx crdt.Context
	s := replication.New(gappyLog{}, replication.Config{})
	s.AddPeer("p")
	res, _ := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindOffer})
	first := res.Out[0].Msg
	page := replication.Message{Version: replication.Version, Kind: replication.KindStates, Req: first.Req, Last: "m", Ctx: &ctx,
		Vector: crdt.VersionVector{1: 5}, States: []replication.State{{Name: "a", Record: []byte{1}}}}
	if res, _ := s.Step("p", page); res.Page == nil {
		t.Fatal("the first page was not joined")
	}
	outs := s.PageCommitted("p")
	if len(outs) != 1 || outs[0].Msg.Kind != replication.KindRangeReq {
		t.Fatalf("after the first page: %+v", outs)
	}
	next := replication.Message{Version: replication.Version, Kind: replication.KindStates, Req: outs[0].Msg.Req, After: "m", Done: true, Ctx: &ctx,
		Vector: crdt.VersionVector{1: 3}, States: []replication.State{{Name: "x", Record: []byte{1}}}}
	if res, _ := s.Step("p", next); res.Page != nil {
		t.Fatal("an answer read before the base (vector 1:3, base 1:5) was joined")
	}
	next.Vector = crdt.VersionVector{1: 6}
	if res, _ := s.Step("p", next); res.Page == nil {
		t.Fatal("an answer read after the base was not joined")
	}
}

// TestNewNodeGetsTheLogIfItIgnoresOffers: a peer that holds nothing is
// offered the state; one that does not take it (an older version drops the
// unknown kind) gets the log after two offers.
func TestNewNodeGetsTheLogIfItIgnoresOffers(t *testing.T) {
	sim := simtest.New(1, 1, simtest.Net{}, replication.Config{})
	fill(t, sim, 0, 3, "k", "x")
	s := replication.New(sim.Nodes[0], replication.Config{RoundTicks: 2})
	s.AddPeer("old")
	var kinds []replication.Kind
	for range 3 {
		res, err := s.Step("old", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: crdt.VersionVector{}, Pull: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Out {
			kinds = append(kinds, o.Msg.Kind)
		}
		for range 4 {
			s.Tick() // the next round
		}
	}
	want := []replication.Kind{replication.KindOffer, replication.KindOffer, replication.KindEntries}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", kinds, want)
	}
}

// TestRestartedNodeWaitsForItsPeersWord: after a restart the engine knows
// nothing of what a peer holds. A round begun by the peer (a Digest) does
// not tell it, so a local write pushes nothing to it, and above all offers
// it no state transfer, which would pause a peer that holds everything
// but the latest writes. Once the peer's Vector comes, pushes go again.
func TestRestartedNodeWaitsForItsPeersWord(t *testing.T) {
	sim := simtest.New(1, 1, simtest.Net{}, replication.Config{})
	fill(t, sim, 0, 3, "k", "x")
	id := sim.Nodes[0].ID
	s := replication.New(sim.Nodes[0], replication.Config{RoundTicks: 2})
	s.AddPeer("p")
	if _, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindDigest, Hash: replication.Digest(crdt.VersionVector{id: 2})}); err != nil {
		t.Fatal(err)
	}
	fill(t, sim, 0, 1, "j", "x")
	if outs, err := s.Push(); err != nil || len(outs) != 0 {
		t.Fatalf("pushed %v (%v) to a peer that has not said what it holds", outs, err)
	}
	res, err := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindVector, Vector: crdt.VersionVector{id: 3}})
	if err != nil || len(res.Out) != 1 || res.Out[0].Msg.Kind != replication.KindEntries || res.Out[0].Msg.Entries[0].First != 4 {
		t.Fatalf("answered the vector with %+v (%v), want the entries after 1:3", res.Out, err)
	}
	fill(t, sim, 0, 1, "i", "x")
	outs, err := s.Push()
	if err != nil || len(outs) != 1 || outs[0].Msg.Kind != replication.KindEntries || outs[0].Msg.Entries[0].First != 5 {
		t.Fatalf("pushed %+v (%v), want the new entry 1:5", outs, err)
	}
}

// TestStaleOffersAreDeclined: an offer whose server holds nothing the node
// lacks (made on word older than the node's last catch-up) is declined
// with the node's vector, not taken: a transfer would pause its sync for
// nothing. An offer from a server ahead of it, or from an older version
// that sends no vector, is taken.
func TestStaleOffersAreDeclined(t *testing.T) {
	sim := simtest.New(1, 1, simtest.Net{}, replication.Config{})
	fill(t, sim, 0, 3, "k", "x")
	id := sim.Nodes[0].ID
	offer := func(vv crdt.VersionVector) replication.Message {
		return replication.Message{Version: replication.Version, Kind: replication.KindOffer, Vector: vv}
	}
	s := replication.New(sim.Nodes[0], replication.Config{RoundTicks: 2})
	s.AddPeer("p")
	for _, vv := range []crdt.VersionVector{{id: 2}, {id: 3}} {
		res, err := s.Step("p", offer(vv))
		if _, busy := s.Transferring(); err != nil || busy || len(res.Out) != 1 || res.Out[0].Msg.Kind != replication.KindVector {
			t.Fatalf("offer from a server holding %v: answered %+v (%v), transferring %v", vv, res.Out, err, busy)
		}
	}
	if got := s.Stats().OffersDeclined; got != 2 {
		t.Fatalf("%d offers declined, want 2", got)
	}
	for _, vv := range []crdt.VersionVector{{id: 3, id + 1: 1}, nil} {
		s := replication.New(sim.Nodes[0], replication.Config{RoundTicks: 2})
		s.AddPeer("p")
		s.Step("p", offer(vv))
		if _, busy := s.Transferring(); !busy {
			t.Errorf("offer from a server holding %v was not taken", vv)
		}
	}
}

// TestAbandonedTransferStartsOver: a transfer given up on a silent server
// is over. Once the node applies entries again, the ranges it joined no
// longer hold only what the transfer's base covers, and finishing the
// transfer would merge a base that claims writes they lack (the
// simulation found a register keeping a value its context had superseded
// everywhere else). The same server's next offer starts from the first
// name.
func TestAbandonedTransferStartsOver(t *testing.T) {
	var ctx crdt.Context
	s := replication.New(gappyLog{}, replication.Config{RoundTicks: 2})
	s.AddPeer("p")
	offer := replication.Message{Version: replication.Version, Kind: replication.KindOffer}
	res, _ := s.Step("p", offer)
	req := res.Out[0].Msg
	res, _ = s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindStates, Req: req.Req, Last: "k", Ctx: &ctx,
		States: []replication.State{{Name: "k", Record: []byte{1}}}})
	if res.Page == nil {
		t.Fatal("the first page was not taken")
	}
	s.PageCommitted("p")
	for s.Stats().TransfersAbandoned == 0 {
		s.Tick()
	}
	if _, busy := s.Transferring(); busy {
		t.Fatal("still transferring after giving up")
	}
	if res, _ = s.Step("p", offer); len(res.Out) != 1 || res.Out[0].Msg.After != "" {
		t.Fatalf("the same server's offer: %+v, want a request from the start", res.Out)
	}
}

// TestFailedPageIsAskedAgain: a page the store could not join is asked
// for again, and a transfer whose pages keep failing is given up, so the
// node does not stay paused.
func TestFailedPageIsAskedAgain(t *testing.T) {
	var ctx crdt.Context
	s := replication.New(gappyLog{}, replication.Config{RoundTicks: 2})
	s.AddPeer("p")
	res, _ := s.Step("p", replication.Message{Version: replication.Version, Kind: replication.KindOffer})
	req := res.Out[0].Msg
	page := replication.Message{Version: replication.Version, Kind: replication.KindStates, Req: req.Req, Done: true, Ctx: &ctx,
		States: []replication.State{{Name: "k", Record: []byte{1}}}}
	if res, _ = s.Step("p", page); res.Page == nil {
		t.Fatal("the page was not taken")
	}
	s.PageFailed("p")
	var again []replication.Message
	for range 8 {
		for _, o := range s.Tick() {
			if o.Msg.Kind == replication.KindRangeReq {
				again = append(again, o.Msg)
			}
		}
	}
	if len(again) == 0 || again[0].After != req.After || again[0].Req != req.Req {
		t.Fatalf("asked again: %+v", again)
	}
	for range 100 {
		s.Tick()
	}
	if _, ok := s.Transferring(); ok {
		t.Error("still transferring: the node would stay paused")
	}
}
