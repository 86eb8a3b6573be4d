package replication

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/edged-dev/edged/crdt"
)

// State transfer catches up a peer that the log cannot: one that lacks
// entries every node has collected (behind the GC horizon, or evicted by a
// data budget). The server sends its key space, range by range in name
// order, and the behind node (the client) joins each range into its own
// with the server's context, so removals travel too.
//
//	S → C  Offer{Vector}                  (S cannot serve C from its log)
//	C → S  RangeReq{After}                (the digest of the next range)
//	S → C  Range{After, Last, Hash, Ctx, Vector}
//	C → S  RangeReq{After, Last, Full}    (only when C's hash differs)
//	S → C  States{After, Last, States, Ctx, Vector}
//
// A client that holds all of the offer's vector (S offered on stale word)
// declines it with its own Vector. A range whose hash equals the client's
// own costs two small messages.
// A client that holds nothing after its cursor asks for the states at once
// (Full). The client's cursor, with the server's log vector and context
// when the transfer began (the base), is what the driver persists with
// each page: a restarted client resumes where it was (Resume).
//
// When the last range is joined the client merges the base context into
// its own and raises its log vector to the base vector: the state it holds
// now covers every entry of the server's log up to there (each range was
// read after the base). Entries after it come by the log again.
//
// While a transfer runs the client applies no entries from peers: an entry
// joined into a range already transferred could resurrect what the server
// removed, once the base vector marks the removal as received.

// MaxNameBytes bounds a key name in state transfer messages (the store's
// own limit).
const MaxNameBytes = 1024

// transferTries is how many times a client asks again before it gives up
// on a silent server. A transfer given up is over: the node applies
// entries again, so the ranges already joined no longer hold only what
// the transfer's base covers, and finishing it later would merge a base
// that claims writes they lack. The next offer starts a new transfer from
// the first name (equal ranges cost their digests), and the driver
// deletes the stored progress (see Stats.TransfersAbandoned).
const transferTries = 5

// State is the state of one key as the node's store encodes it; opaque to
// the engine, which only hashes and carries it.
type State struct {
	Name   string `cbor:"1,keyasint"`
	Record []byte `cbor:"2,keyasint"`
}

// Page is a range of a server's key space for the driver to join into the
// node's: every key named in (After, Last], or after After when Last is ""
// (the end of the key space). Names in the range that States lacks were
// removed at the server as far as Ctx says (a join with Ctx removes their
// entries that Ctx covers).
type Page struct {
	From   PeerID
	After  string
	Last   string
	States []State
	// Ctx is the server's context when it read the states.
	Ctx crdt.Context
	// Base and BaseVector are the server's context and log vector when
	// the transfer began. The driver persists From, Last, Base and
	// BaseVector with the page, for Resume.
	Base       crdt.Context
	BaseVector crdt.VersionVector
	// Done: this is the last page. With it the driver merges Base into the
	// node's context and raises its log vector to BaseVector, in the same
	// commit, and forgets the transfer.
	Done bool
}

// transfer is the client side of a state transfer.
type transfer struct {
	from   PeerID
	cursor string // names up to it are transferred
	base   *crdt.Context
	basevv crdt.VersionVector
	req    Message // the last request, asked again on silence
	waited int     // ticks since req was sent
	tries  int
	page   *Page // returned, not yet committed
}

// Transferring returns the server of the state transfer in progress, if any.
func (s *Sync) Transferring() (PeerID, bool) {
	if s.xfer == nil {
		return "", false
	}
	return s.xfer.from, true
}

// Resume continues a state transfer from p that a restart interrupted,
// after the names up to cursor, with the base the driver persisted.
func (s *Sync) Resume(p PeerID, cursor string, base crdt.Context, basevv crdt.VersionVector) {
	s.AddPeer(p)
	b := base.Clone()
	s.xfer = &transfer{from: p, cursor: cursor, base: &b, basevv: basevv.Clone()}
	s.xfer.req = s.nextRequest()
	s.xfer.waited = s.cfg.RoundTicks * 2 // ask at the next tick
}

// startTransfer begins a state transfer from p, from the first name.
func (s *Sync) startTransfer(p PeerID) []Out {
	s.stats.Transfers++
	s.xfer = &transfer{from: p}
	return s.ask(s.nextRequest())
}

// nextRequest returns the request for what follows the cursor: the states
// themselves when the node holds no name after it (nothing to compare),
// the range's digest otherwise.
func (s *Sync) nextRequest() Message {
	t := s.xfer
	mine, _, err := s.log.States(t.cursor, "", 1)
	return Message{Version: Version, Kind: KindRangeReq, After: t.cursor, Full: err == nil && len(mine) == 0}
}

// ask sends a request of the transfer. A new request gets a new Req; one
// asked again keeps it.
func (s *Sync) ask(m Message) []Out {
	if m.Req == 0 {
		m.Req = s.rng.Uint64() | 1
	}
	s.xfer.req, s.xfer.waited = m, 0
	return []Out{{To: s.xfer.from, Msg: m}}
}

// tickTransfer asks again when the server has been silent for two rounds,
// and gives up after transferTries.
func (s *Sync) tickTransfer() []Out {
	t := s.xfer
	if t == nil || t.page != nil {
		return nil
	}
	if t.waited++; t.waited < 2*s.cfg.RoundTicks {
		return nil
	}
	if t.tries++; t.tries > transferTries {
		s.stats.TransfersAbandoned++
		s.xfer = nil
		return nil
	}
	return s.ask(t.req)
}

// serveRange answers a client's RangeReq from the node's key space.
func (s *Sync) serveRange(from PeerID, m Message) ([]Out, error) {
	// The vector and context are read before the states, so the states
	// hold at least what they say (see Page.Ctx).
	vv := s.log.Vector()
	ctx := s.log.Context()
	reply := Message{Version: Version, After: m.After, Vector: vv, Ctx: &ctx, Req: m.Req}
	upto := ""
	if m.Full {
		upto = m.Last
	}
	states, complete, err := s.log.States(m.After, upto, s.cfg.MaxBatchBytes)
	if err != nil {
		return nil, fmt.Errorf("replication: states after %q: %w", m.After, err)
	}
	if len(states) > MaxEntries {
		states, complete = states[:MaxEntries], false
	}
	switch {
	case !m.Full:
		reply.Kind = KindRange
		reply.Hash = hashStates(states)
		reply.Done = complete
		if len(states) > 0 {
			reply.Last = states[len(states)-1].Name
		}
	case complete && upto == "":
		reply.Kind, reply.States, reply.Done = KindStates, states, true
	case complete:
		reply.Kind, reply.States, reply.Last = KindStates, states, upto
	default:
		reply.Kind, reply.States, reply.Last = KindStates, states, states[len(states)-1].Name
	}
	s.stats.StatesSent += uint64(len(reply.States))
	return []Out{{To: from, Msg: reply}}, nil
}

// onRange handles a server's digest of a range: the node skips the range
// when its own hash is equal, and asks for its states otherwise.
func (s *Sync) onRange(from PeerID, m Message) ([]Out, *Page, error) {
	t := s.xfer
	if !t.answers(from, m) {
		return nil, nil, nil
	}
	t.setBase(m)
	mine, _, err := s.log.States(m.After, m.Last, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: states after %q: %w", m.After, err)
	}
	if !bytes.Equal(hashStates(mine), m.Hash) {
		return s.ask(Message{Version: Version, Kind: KindRangeReq, After: m.After, Last: m.Last, Full: true}), nil, nil
	}
	s.stats.RangesSkipped++
	if m.Done && m.Last == "" {
		// Equal to the end: the transfer is over.
		return nil, t.pageOf(from, Message{After: m.After, Done: true, Ctx: m.Ctx}), nil
	}
	t.cursor = m.Last
	return s.ask(s.nextRequest()), nil, nil
}

// onStates hands a server's states to the driver as a page.
func (s *Sync) onStates(from PeerID, m Message) *Page {
	t := s.xfer
	if !t.answers(from, m) {
		return nil
	}
	t.setBase(m)
	s.stats.StatesReceived += uint64(len(m.States))
	return t.pageOf(from, m)
}

// answers reports whether m answers the transfer's pending request. A
// late answer to an earlier request (of this transfer or of one before
// it) must not be taken: its states may have been read before the base.
// Its number tells it, and so does its vector, which no answer read
// after the base has below the base's: that holds even when numbers
// repeat (an engine restarted with the seed it had).
func (t *transfer) answers(from PeerID, m Message) bool {
	if t == nil || t.page != nil || from != t.from || m.Req != t.req.Req || m.After != t.req.After {
		return false
	}
	if t.base != nil {
		if c := m.Vector.Compare(t.basevv); c != crdt.After && c != crdt.Equal {
			return false
		}
	}
	return (m.Kind == KindStates) == t.req.Full
}

// setBase takes the server's first answer as the transfer's base.
func (t *transfer) setBase(m Message) {
	if t.base == nil {
		c := m.Ctx.Clone()
		t.base, t.basevv = &c, m.Vector.Clone()
	}
}

func (t *transfer) pageOf(from PeerID, m Message) *Page {
	t.page = &Page{From: from, After: m.After, Last: m.Last, States: m.States, Ctx: m.Ctx.Clone(),
		Base: t.base.Clone(), BaseVector: t.basevv.Clone(), Done: m.Done}
	return t.page
}

// PageCommitted tells the engine that the page from p was joined durably;
// it returns the next request, or, after the last page, the Vector that
// resumes log sync with p.
func (s *Sync) PageCommitted(p PeerID) []Out {
	t := s.xfer
	if t == nil || t.from != p || t.page == nil {
		return nil
	}
	page := t.page
	t.page, t.tries = nil, 0
	if page.Done {
		s.xfer = nil
		s.stats.TransfersDone++
		return []Out{{To: p, Msg: wholeVector(s.peers[p], s.log.Vector(), true)}}
	}
	t.cursor = page.Last
	return s.ask(s.nextRequest())
}

// PageFailed tells the engine that the page from p could not be joined
// (the store refused it: a full disk, a budget). The transfer asks for the
// range again after two rounds, and is given up after its tries, so the
// node does not stay paused.
func (s *Sync) PageFailed(p PeerID) {
	if t := s.xfer; t != nil && t.from == p && t.page != nil {
		t.page = nil
	}
}

// hashStates returns the digest of a range of states: SHA-256 of each
// name and record, length-prefixed.
func hashStates(states []State) []byte {
	h := sha256.New()
	var b [binary.MaxVarintLen64]byte
	for _, st := range states {
		h.Write(b[:binary.PutUvarint(b[:], uint64(len(st.Name)))])
		h.Write([]byte(st.Name))
		h.Write(b[:binary.PutUvarint(b[:], uint64(len(st.Record)))])
		h.Write(st.Record)
	}
	return h.Sum(nil)
}

// validateTransfer checks the state transfer fields of m.
func (m *Message) validateTransfer() error {
	if len(m.After) > MaxNameBytes || len(m.Last) > MaxNameBytes {
		return fmt.Errorf("%w: range bound of more than %d bytes", ErrInvalid, MaxNameBytes)
	}
	if m.Last != "" && m.Last <= m.After {
		return fmt.Errorf("%w: range (%q, %q] is empty", ErrInvalid, m.After, m.Last)
	}
	switch m.Kind {
	case KindRangeReq, KindOffer:
		return nil
	case KindRange:
		if len(m.Hash) != sha256.Size {
			return fmt.Errorf("%w: range digest of %d bytes", ErrInvalid, len(m.Hash))
		}
		if m.Last == "" && !m.Done {
			return fmt.Errorf("%w: an open range that is not the last", ErrInvalid)
		}
	case KindStates:
		if m.Last == "" && !m.Done {
			return fmt.Errorf("%w: an open page that is not the last", ErrInvalid)
		}
		prev := m.After
		for i, st := range m.States {
			if st.Name == "" || len(st.Name) > MaxNameBytes || (i > 0 || m.After != "") && st.Name <= prev || m.Last != "" && st.Name > m.Last {
				return fmt.Errorf("%w: state %d (%.40q) out of its range or order", ErrInvalid, i, st.Name)
			}
			prev = st.Name
		}
	}
	if m.Ctx == nil {
		return fmt.Errorf("%w: %s without the server's context", ErrInvalid, m.Kind)
	}
	if len(m.Ctx.Cloud()) > MaxCloudDots {
		return fmt.Errorf("%w: a context with more than %d out-of-order dots", ErrInvalid, MaxCloudDots)
	}
	return CheckVector(m.Ctx.VersionVector())
}
