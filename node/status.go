package node

import (
	"time"

	"github.com/edged-dev/edged/buildinfo"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/p2p"
	"github.com/edged-dev/edged/series"
	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/uplink"
)

// statusDoc is the answer of GET /v1/status. Peers, uplink and shedding
// are null when those parts are off.
type statusDoc struct {
	Node struct {
		Name    string `json:"name"`
		PeerID  string `json:"peer_id"`
		Replica string `json:"replica"`
		Fleet   string `json:"fleet,omitempty"`
		// Addrs are the node's libp2p addresses as peers learn them:
		// behind a NAT with relays, its relayed (/p2p-circuit) ones.
		Addrs []string `json:"addrs,omitempty"`
	} `json:"node"`
	Version       string  `json:"version"`
	Commit        string  `json:"commit"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Context       struct {
		// Seen is, per replica, the highest contiguous sequence number
		// this node holds.
		Seen map[string]uint64 `json:"seen"`
	} `json:"context"`
	Store struct {
		Bytes        int64 `json:"bytes"`
		BudgetBytes  int64 `json:"budget_bytes"`
		ReadingBytes int64 `json:"reading_bytes"`
		Evicted      int64 `json:"evicted_log_entries"`
		Dropped      int64 `json:"dropped_reading_fragments"`
	} `json:"store"`
	Clock struct {
		Synced bool `json:"synced"`
	} `json:"clock"`
	Peers    map[string]p2p.PeerStats `json:"peers"`
	Uplink   any                      `json:"uplink"`
	Shedding any                      `json:"shedding"`
}

func (n *Node) status(id identity.Identity, db *store.DB, clock series.Clock, peers *p2p.Node, up *uplink.Uplink, gov *shedding.Governor, started time.Time) statusDoc {
	var d statusDoc
	d.Node.Name, d.Node.PeerID, d.Node.Replica, d.Node.Fleet = n.name, id.PeerID.String(), id.Replica.String(), n.cfg.Node.Fleet
	d.Version, d.Commit = buildinfo.Version, buildinfo.Commit
	d.UptimeSeconds = time.Since(started).Seconds()
	ctx := db.Context()
	vv := ctx.VersionVector()
	d.Context.Seen = make(map[string]uint64, len(vv))
	for r, s := range vv {
		d.Context.Seen[r.String()] = uint64(s)
	}
	st := db.Stats()
	d.Store.Bytes, d.Store.BudgetBytes, d.Store.ReadingBytes = st.Bytes, st.Budget, st.ReadingBytes
	d.Store.Evicted, d.Store.Dropped = st.Evicted, st.Dropped
	d.Clock.Synced = clock == nil || clock.Synced()
	if peers != nil {
		d.Peers, d.Node.Addrs = peers.Stats(), peers.Addrs()
	}
	if up != nil {
		st := up.Status()
		d.Uplink = &st
	}
	if gov != nil {
		st := gov.Status()
		d.Shedding = &st
	}
	return d
}
