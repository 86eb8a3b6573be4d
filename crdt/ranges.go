package crdt

import (
	"fmt"
	"slices"
)

// Range is the sequence numbers First … Last of one replica.
type Range struct {
	_     struct{} `cbor:",toarray"`
	First Seq
	Last  Seq
}

// Ranges is a set of one replica's sequence numbers, as sorted, disjoint
// and non-adjacent ranges. The cloud's readings stream uses it for what
// the aggregator holds, which need not be a prefix: readings may go
// newest first. The zero value is empty.
type Ranges []Range

// MaxRanges bounds the ranges of a valid Ranges.
const MaxRanges = 64

// Contains reports whether s is in rs.
func (rs Ranges) Contains(s Seq) bool {
	_, found := slices.BinarySearchFunc(rs, s, func(r Range, s Seq) int {
		switch {
		case r.Last < s:
			return -1
		case r.First > s:
			return 1
		}
		return 0
	})
	return found
}

// Add returns rs with first … last added (rs is not modified).
func (rs Ranges) Add(first, last Seq) Ranges {
	out := make(Ranges, 0, len(rs)+1)
	placed := false
	for _, r := range rs {
		switch {
		case r.Last+1 < first:
			out = append(out, r)
		case last+1 < r.First:
			if !placed {
				out = append(out, Range{First: first, Last: last})
				placed = true
			}
			out = append(out, r)
		default: // overlapping or adjacent: merge into the new range
			first, last = min(first, r.First), max(last, r.Last)
		}
	}
	if !placed {
		out = append(out, Range{First: first, Last: last})
	}
	return out
}

// Union returns the ranges of rs and o together.
func (rs Ranges) Union(o Ranges) Ranges {
	out := rs
	for _, r := range o {
		out = out.Add(r.First, r.Last)
	}
	return slices.Clip(out)
}

// Prefix returns the last number of the range that starts at 1: rs holds
// 1 … Prefix() (0 when it does not hold 1).
func (rs Ranges) Prefix() Seq {
	if len(rs) > 0 && rs[0].First == 1 {
		return rs[0].Last
	}
	return 0
}

// CloseNarrowestGap returns rs with its narrowest gap between two ranges
// filled, and that gap; rs must hold at least two ranges.
func (rs Ranges) CloseNarrowestGap() (Ranges, Range) {
	best := 1
	for i := 2; i < len(rs); i++ {
		if rs[i].First-rs[i-1].Last < rs[best].First-rs[best-1].Last {
			best = i
		}
	}
	gap := Range{First: rs[best-1].Last + 1, Last: rs[best].First - 1}
	return rs.Add(gap.First, gap.Last), gap
}

// Len returns how many numbers rs holds.
func (rs Ranges) Len() uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Last - r.First + 1)
	}
	return n
}

// Gap returns the lowest (or, with highest, the highest) range of
// numbers within 1 … upto that rs lacks; ok is false when it lacks none.
func (rs Ranges) Gap(upto Seq, highest bool) (g Range, ok bool) {
	var gaps []Range
	next := Seq(1)
	for _, r := range rs {
		if r.First > upto {
			break
		}
		if r.First > next {
			gaps = append(gaps, Range{First: next, Last: r.First - 1})
		}
		next = max(next, r.Last+1)
	}
	if next <= upto {
		gaps = append(gaps, Range{First: next, Last: upto})
	}
	if len(gaps) == 0 {
		return Range{}, false
	}
	if highest {
		return gaps[len(gaps)-1], true
	}
	return gaps[0], true
}

// Validate checks that rs is a valid Ranges: at most MaxRanges, sorted,
// disjoint, non-adjacent, each within 1 … MaxSeq.
func (rs Ranges) Validate() error {
	if len(rs) > MaxRanges {
		return fmt.Errorf("%d ranges, limit %d", len(rs), MaxRanges)
	}
	for i, r := range rs {
		if r.First == 0 || r.Last < r.First || r.Last > MaxSeq {
			return fmt.Errorf("range %d is %d-%d", i, r.First, r.Last)
		}
		if i > 0 && r.First <= rs[i-1].Last+1 {
			return fmt.Errorf("range %d (%d-%d) is not after range %d (%d-%d) with a gap", i, r.First, r.Last, i-1, rs[i-1].First, rs[i-1].Last)
		}
	}
	return nil
}
