package uplink

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/edged-dev/edged/cloud"
	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/storelog"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// An aggregator may write to a node it knows from its birth message before
// the node's first batch, so the node's first downlink can come before
// the first ack tells it who the aggregator is. It is held, not lost, and
// merged once an ack from its signer comes; one from another signer is
// refused then.
func TestDownlinkBeforeFirstAck(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	node := newIdentity(t)
	agg, stranger := newIdentity(t), newIdentity(t)

	var merged []store.Entry
	u, err := New(Config{}, Options{Key: node.Key, Replica: node.Replica, PeerID: node.PeerID, DB: db,
		Apply: func(_ context.Context, es []store.Entry) error {
			merged = append(merged, es...)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{u: u, ctx: context.Background(), st: cloud.NewStreams(storelog.Log{DB: db}, nil, crdt.VersionVector{}, nil, cloud.OutboxConfig{}, false)}

	d.downlink(downBatch(t, agg, 1))
	d.downlink(downBatch(t, stranger, 1))
	if len(merged) != 0 {
		t.Fatalf("merged %v before any ack", merged)
	}
	ack, err := cloud.EncodeAck(agg.Key, cloud.Ack{Node: node.Replica, Seq: 1, Vector: crdt.VersionVector{}})
	if err != nil {
		t.Fatal(err)
	}
	d.ack(ack)
	if len(merged) != 1 || merged[0].Origin != agg.Replica || merged[0].Last != 1 {
		t.Fatalf("after the ack, merged %+v; want the aggregator's entry only", merged)
	}
	if d.counts.DownRefused != 1 || d.counts.DownEntries != 1 {
		t.Errorf("counts %+v; want 1 downlink entry taken and the stranger's refused", d.counts)
	}
	d.downlink(downBatch(t, agg, 2))
	if len(merged) != 2 {
		t.Errorf("a downlink after the ack: merged %+v", merged)
	}
}

func newIdentity(t *testing.T) identity.Identity {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// downBatch is a downlink of the signer's own write number seq.
func downBatch(t *testing.T, from identity.Identity, seq crdt.Seq) []byte {
	var ctx crdt.Context
	ctx.Add(crdt.Dot{Replica: from.Replica, Seq: seq})
	b, err := cloud.EncodeBatch(from.Key, cloud.Batch{Vector: crdt.VersionVector{from.Replica: seq},
		Entries: []replication.Entry{{Origin: from.Replica, First: seq, Last: seq, Delta: crdt.Causal{Ctx: ctx}}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
