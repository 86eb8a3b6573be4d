package uplink

import (
	"fmt"
	"strings"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/storelog"
)

// Window is a daily time window, from From to To after local midnight; a
// window with To before From runs past midnight.
type Window struct{ From, To time.Duration }

// ParseWindow parses "HH:MM-HH:MM".
func ParseWindow(s string) (Window, error) {
	from, to, ok := strings.Cut(s, "-")
	var w Window
	var err error
	if ok {
		if w.From, err = clock(from); err == nil {
			w.To, err = clock(to)
		}
	}
	if !ok || err != nil || w.From == w.To {
		return Window{}, fmt.Errorf("%q is not a window HH:MM-HH:MM (such as 22:00-06:00)", s)
	}
	return w, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// contains reports whether t (in its location) falls in w.
func (w Window) contains(t time.Time) bool {
	y, m, d := t.Date()
	since := t.Sub(time.Date(y, m, d, 0, 0, 0, 0, t.Location()))
	if w.From < w.To {
		return since >= w.From && since < w.To
	}
	return since >= w.From || since < w.To
}

// scheduled reports whether publishing is allowed at t: always without
// windows, else inside one of them.
func scheduled(ws []Window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.contains(t) {
			return true
		}
	}
	return false
}

// shedLog is the log as the outbox reads it: with the bulk names (raw
// readings) left out while shed is set. Their dots still go, in the
// entries' contexts, so the cloud's vector moves past them: they are
// shed for good, and counted. Their minute summaries, ordinary keys, go.
type shedLog struct {
	storelog.Log
	bulk func(name string) bool
	shed bool
	// readings counts the readings left out, once per entry: counted
	// holds the entries whose readings were, as the log is read again
	// for a batch sent again.
	readings uint64
	counted  map[crdt.ReplicaID]crdt.Ranges
}

func (l *shedLog) Entries(origin crdt.ReplicaID, after crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	return l.strip(l.Log.Entries(origin, after, maxBytes))
}

func (l *shedLog) EntriesDown(origin crdt.ReplicaID, upto crdt.Seq, maxBytes int) ([]replication.Entry, int, error) {
	return l.strip(l.Log.EntriesDown(origin, upto, maxBytes))
}

// strip leaves the bulk names out of es while shed is set.
func (l *shedLog) strip(es []replication.Entry, n int, err error) ([]replication.Entry, int, error) {
	if err != nil || !l.shed || l.bulk == nil {
		return es, n, err
	}
	for i, e := range es {
		m, ok := e.Delta.Value.(*crdt.ORMap)
		if !ok {
			continue
		}
		count := !l.counted[e.Origin].Contains(e.First)
		dropped := false
		for _, f := range m.Fields() {
			if l.bulk(f.Name) {
				dropped = true
				if rs, ok := m.Field(f).(*crdt.ReadingSet); ok && count {
					l.readings += uint64(rs.Len())
				}
			}
		}
		if dropped && count {
			if l.counted == nil {
				l.counted = map[crdt.ReplicaID]crdt.Ranges{}
			}
			l.counted[e.Origin] = l.counted[e.Origin].Add(e.First, e.Last)
		}
		if dropped {
			es[i] = replication.Restrict(e, func(name string) bool { return !l.bulk(name) })
		}
	}
	return es, n, nil
}
