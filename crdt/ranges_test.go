package crdt_test

import (
	"testing"

	"github.com/edged-dev/edged/crdt"
	"pgregory.net/rapid"
)

// TestRanges checks Ranges against a set of numbers.
func TestRanges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const top = 40
		var rs, other crdt.Ranges
		model := map[crdt.Seq]bool{}
		for range rapid.IntRange(0, 12).Draw(t, "adds") {
			first := crdt.Seq(rapid.IntRange(1, top).Draw(t, "first"))
			last := first + crdt.Seq(rapid.IntRange(0, 6).Draw(t, "len"))
			if rapid.Bool().Draw(t, "other") {
				other = other.Add(first, last)
			} else {
				rs = rs.Add(first, last)
			}
			for s := first; s <= last; s++ {
				model[s] = true
			}
		}
		rs = rs.Union(other)
		if err := rs.Validate(); err != nil {
			t.Fatalf("%v: %v", rs, err)
		}
		var n uint64
		prefix := crdt.Seq(0)
		for s := crdt.Seq(1); s <= top+8; s++ {
			if rs.Contains(s) != model[s] {
				t.Fatalf("%v contains %d: %v", rs, s, rs.Contains(s))
			}
			if model[s] {
				n++
				if prefix == s-1 {
					prefix = s
				}
			}
		}
		if rs.Len() != n || rs.Prefix() != prefix {
			t.Fatalf("%v: Len %d Prefix %d, want %d and %d", rs, rs.Len(), rs.Prefix(), n, prefix)
		}
		upto := crdt.Seq(rapid.IntRange(1, top+8).Draw(t, "upto"))
		for _, highest := range []bool{false, true} {
			g, ok := rs.Gap(upto, highest)
			// The wanted gap: the lowest (highest) missing number, and the
			// run of missing numbers around it within 1 … upto.
			var want crdt.Range
			found := false
			for s := crdt.Seq(1); s <= upto; s++ {
				if !model[s] && (!found || highest) {
					want.Last, found = s, true
					if !highest {
						want.First = s
						break
					}
				}
			}
			if found {
				if highest {
					want.First = want.Last
					for want.First > 1 && !model[want.First-1] {
						want.First--
					}
				} else {
					for want.Last < upto && !model[want.Last+1] {
						want.Last++
					}
				}
			}
			if ok != found || (ok && (g.First != want.First || g.Last != want.Last)) {
				t.Fatalf("%v.Gap(%d, %v) = %v %v, want %v %v", rs, upto, highest, g, ok, want, found)
			}
		}
	})
	bad := []crdt.Ranges{{{First: 0, Last: 1}}, {{First: 3, Last: 2}}, {{First: 1, Last: 2}, {First: 3, Last: 4}}, {{First: 5, Last: 6}, {First: 1, Last: 2}}}
	for _, rs := range bad {
		if rs.Validate() == nil {
			t.Errorf("%v passed Validate", rs)
		}
	}
}

func TestCloseNarrowestGap(t *testing.T) {
	rs := crdt.Ranges{{First: 1, Last: 2}, {First: 10, Last: 12}, {First: 15, Last: 15}, {First: 30, Last: 31}}
	got, gap := rs.CloseNarrowestGap()
	if gap != (crdt.Range{First: 13, Last: 14}) || len(got) != 3 || got[1] != (crdt.Range{First: 10, Last: 15}) {
		t.Errorf("closed %v, left %v; want 13-14 closed", gap, got)
	}
}
