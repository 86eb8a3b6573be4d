package replication

import "github.com/edged-dev/edged/crdt"

// Scope says where a key's data goes.
type Scope uint8

// The scopes, from widest.
const (
	// Fleet: to peers and the cloud.
	Fleet Scope = iota
	// Cloud: to the cloud only, never to peers.
	Cloud
	// Local: never leaves the node.
	Local
)

// ParseScope parses "fleet", "cloud" or "local".
func ParseScope(s string) (Scope, bool) {
	switch s {
	case "fleet":
		return Fleet, true
	case "cloud":
		return Cloud, true
	case "local":
		return Local, true
	}
	return 0, false
}

// Restrict returns e with only the fields of its key-space delta that keep
// allows. The context stays whole, so the receiver's vector still
// advances over the interval and the entry's place in its origin's log is
// kept: a peer learns that the dots happened, never what a withheld field
// held.
func Restrict(e Entry, keep func(name string) bool) Entry {
	m, ok := e.Delta.Value.(*crdt.ORMap)
	if !ok {
		return e
	}
	fields := map[crdt.Field]crdt.Value{}
	dropped := false
	for _, f := range m.Fields() {
		if keep(f.Name) {
			fields[f] = m.Field(f)
		} else {
			dropped = true
		}
	}
	if !dropped {
		return e
	}
	e.Delta = crdt.Causal{Ctx: e.Delta.Ctx}
	if len(fields) > 0 {
		e.Delta.Value = crdt.NewORMap(fields)
	}
	return e
}
