package crdt

import (
	"fmt"
	"math"
	"time"
)

// Timestamp is a hybrid logical clock reading: a wall-clock time in Unix
// nanoseconds plus a logical counter that orders events within one
// nanosecond or while the wall clock stands still or runs backwards.
type Timestamp struct {
	Wall    int64
	Logical uint32
}

// Compare orders timestamps: -1, 0 or +1.
func (t Timestamp) Compare(o Timestamp) int {
	switch {
	case t.Wall < o.Wall:
		return -1
	case t.Wall > o.Wall:
		return 1
	case t.Logical < o.Logical:
		return -1
	case t.Logical > o.Logical:
		return 1
	}
	return 0
}

// Time returns the wall-clock part as a time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(0, t.Wall).UTC() }

// String formats the timestamp as RFC 3339 time plus the logical counter.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.Time().Format(time.RFC3339Nano), t.Logical)
}

// HLC is a hybrid logical clock (Kulkarni et al., 2014). Its readings never
// go backwards, stay close to the physical clock, and exceed every timestamp
// observed from other replicas, so a write made after seeing another write
// always carries a larger timestamp.
//
// The physical clock is injected. An HLC is not safe for concurrent use: its
// owner (the engine) serialises calls.
type HLC struct {
	now     func() time.Time
	maxSkew time.Duration
	last    Timestamp
}

// NewHLC returns a clock that reads physical time from now and refuses to
// follow remote timestamps more than maxSkew ahead of it.
func NewHLC(now func() time.Time, maxSkew time.Duration) *HLC {
	return &HLC{now: now, maxSkew: maxSkew}
}

// Restore advances the clock to at least t, unconditionally. Call it at start
// with the last timestamp persisted, so a device that boots with its clock
// reset (no RTC, time 1970) continues after what it already issued.
func (h *HLC) Restore(t Timestamp) {
	if t.Compare(h.last) > 0 {
		h.last = t
	}
}

// Last returns the latest timestamp issued or observed.
func (h *HLC) Last() Timestamp { return h.last }

// Now returns a timestamp for a local event, larger than every earlier one.
func (h *HLC) Now() Timestamp {
	pt := h.now().UnixNano()
	if pt > h.last.Wall {
		h.last = Timestamp{Wall: pt}
	} else {
		h.tick()
	}
	return h.last
}

// Observe merges a timestamp received from another replica, so later local
// timestamps exceed it. A timestamp more than the maximum skew ahead of the
// physical clock is refused with ErrClockSkew and leaves the clock unchanged:
// one replica's runaway clock must not drag the fleet's clocks along.
func (h *HLC) Observe(t Timestamp) error {
	pt := h.now().UnixNano()
	if ahead := time.Duration(t.Wall - pt); t.Wall > pt && ahead > h.maxSkew {
		return fmt.Errorf("%w: remote timestamp %s is %s ahead of the local clock (limit %s)",
			ErrClockSkew, t, ahead, h.maxSkew)
	}
	if t.Compare(h.last) > 0 {
		h.last = t
	}
	if pt > h.last.Wall {
		h.last = Timestamp{Wall: pt}
	}
	return nil
}

// tick advances the logical counter, carrying into the wall time if the
// counter is exhausted.
func (h *HLC) tick() {
	if h.last.Logical == math.MaxUint32 {
		h.last = Timestamp{Wall: h.last.Wall + 1}
		return
	}
	h.last.Logical++
}
