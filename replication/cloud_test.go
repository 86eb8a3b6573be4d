package replication

import (
	"testing"

	"github.com/edged-dev/edged/crdt"
)

// TestGroupsStayWithinTheCloudLimit: entries whose contexts hold dots of
// other origins out of order (a write that overwrote others' writes) are
// cut so that a message holds at most MaxCloudDots of them.
func TestGroupsStayWithinTheCloudLimit(t *testing.T) {
	var es []Entry
	for s := crdt.Seq(10); s < 10+MaxCloudDots; s++ {
		var ctx crdt.Context
		ctx.Add(crdt.Dot{Replica: 1, Seq: s})
		ctx.Add(crdt.Dot{Replica: 2, Seq: 2 * s}) // overwritten: stray
		ctx.Add(crdt.Dot{Replica: 3, Seq: 2 * s})
		es = append(es, Entry{Origin: 1, First: s, Last: s, Delta: crdt.Causal{Ctx: ctx}})
	}
	cloud := MaxCloudDots
	kept, n := withinCloud(es, len(es)*10, &cloud, true)
	if len(kept) != MaxCloudDots/2 || n != len(kept)*10 || cloud != 0 {
		t.Errorf("kept %d entries (%d bytes), %d dots left; want %d entries", len(kept), n, cloud, MaxCloudDots/2)
	}
	// A message with a group already in it takes no entry that does not fit.
	cloud = 1
	if kept, _ := withinCloud(es, 10, &cloud, false); len(kept) != 0 {
		t.Errorf("kept %d entries over the limit", len(kept))
	}
}
