package p2p

import (
	"testing"

	"github.com/edged-dev/edged/replication"
)

// TestHold: the bytes held for received messages never pass inboxBytes,
// and the largest frame, decoded, fits when nothing else is held.
func TestHold(t *testing.T) {
	var n Node
	frame := int64(replication.MaxMessageBytes + 1)
	if !n.hold(frame) || !n.hold(replication.MaxMessageBytes) || !n.hold(inboxBytes-n.queued.Load()) {
		t.Fatal("the largest frame and its CBOR do not fit in an empty inbox")
	}
	if n.hold(1) {
		t.Error("a byte over inboxBytes was held")
	}
	n.queued.Add(-frame)
	if !n.hold(1) || n.queued.Load() > inboxBytes {
		t.Errorf("held %d bytes of %d", n.queued.Load(), inboxBytes)
	}
}
