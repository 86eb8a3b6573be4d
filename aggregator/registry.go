package aggregator

import (
	"bytes"
	"fmt"
	"time"

	"github.com/edged-dev/edged/cborcheck"
	"github.com/edged-dev/edged/crdt"
)

// saveEvery is how often the node registry is stored, when it changed.
const saveEvery = 10 * time.Second

// nodeRecord is what the aggregator stores of a node, so that its view of
// the fleets (names, counters, last batch, lag) survives a restart.
// Whether the node is online is not kept: its retained status tells.
type nodeRecord struct {
	Version uint               `cbor:"1,keyasint"`
	Info    NodeInfo           `cbor:"2,keyasint"`
	Vector  crdt.VersionVector `cbor:"3,keyasint,omitempty"`
}

const nodeRecordVersion = 1

func encodeNode(n *NodeInfo) ([]byte, error) {
	info := *n
	info.Online = false
	return cborcheck.Marshal(nodeRecord{Version: nodeRecordVersion, Info: info, Vector: n.vector})
}

// decodeNode decodes a stored record of node id.
func decodeNode(id crdt.ReplicaID, b []byte) (*NodeInfo, error) {
	var r nodeRecord
	if err := cborcheck.UnmarshalWire(b, &r); err != nil {
		return nil, fmt.Errorf("record of node %s: %w", id, err)
	}
	if r.Version != nodeRecordVersion {
		return nil, fmt.Errorf("record of node %s: version %d, this build reads %d", id, r.Version, nodeRecordVersion)
	}
	if r.Info.Replica != id.String() {
		return nil, fmt.Errorf("record of node %s: holds node %q", id, r.Info.Replica)
	}
	n := r.Info
	n.id, n.vector, n.Online = id, r.Vector, false
	n.saved = b
	return &n, nil
}

// load reads the stored registry. A record that does not decode is
// logged and skipped: the node's next status or batch records it anew.
func (a *Aggregator) load() error {
	recs, err := a.o.DB.NodeRecords()
	if err != nil {
		return fmt.Errorf("aggregator: reading the node registry: %w", err)
	}
	for id, b := range recs {
		n, err := decodeNode(id, b)
		if err != nil {
			a.o.Logger.Warn("aggregator: skipping a stored node record", "err", err)
			continue
		}
		a.nodes[id] = n
	}
	return nil
}

// forget drops node id from the registry and the store.
func (a *Aggregator) forget(id crdt.ReplicaID) error {
	a.mu.Lock()
	delete(a.nodes, id)
	a.mu.Unlock()
	if err := a.o.DB.DeleteNodeRecord(id); err != nil {
		return fmt.Errorf("forgetting node %s: %w", id, err)
	}
	return nil
}

// save stores the records of the nodes that changed since they were last
// stored.
func (a *Aggregator) save() {
	changed := map[crdt.ReplicaID][]byte{}
	a.mu.Lock()
	for id, n := range a.nodes {
		b, err := encodeNode(n)
		if err != nil {
			a.o.Logger.Error("aggregator: encoding a node record failed", "node", n.Replica, "err", err)
			continue
		}
		if !bytes.Equal(b, n.saved) {
			changed[id] = b
		}
	}
	a.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	if err := a.o.DB.SetNodeRecords(changed); err != nil {
		a.o.Logger.Warn("aggregator: storing the node registry failed", "nodes", len(changed), "err", err)
		return
	}
	a.mu.Lock()
	for id, b := range changed {
		if n := a.nodes[id]; n != nil {
			n.saved = b
		}
	}
	a.mu.Unlock()
}
