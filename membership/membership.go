// Package membership keeps the table of a node's peers and their states
// (alive, suspect, dead, left), judged from heartbeats by a phi-accrual
// failure detector (Hayashibara et al., "The φ Accrual Failure Detector",
// SRDS 2004). Any message from a peer is a heartbeat: idle sync rounds send
// one every few seconds.
//
// It is pure: callers pass the time, so tests drive it with a fake clock.
package membership

import (
	"maps"
	"math"
	"slices"
	"time"
)

// State is what a node believes of a peer.
type State uint8

// The states. A peer is alive when it is heard from as expected; suspect
// when its silence is unusually long (phi over Config.SuspectPhi); dead
// when it is longer still (phi over Config.DeadPhi); left when it said
// goodbye. Any heartbeat makes it alive again.
const (
	Alive State = iota
	Suspect
	Dead
	Left
)

var stateNames = [...]string{"alive", "suspect", "dead", "left"}

func (s State) String() string { return stateNames[s] }

// Config tunes the detector.
type Config struct {
	// SuspectPhi and DeadPhi are the suspicion levels at which a peer is
	// suspect and dead: phi = -log10 of the probability that a heartbeat
	// is still to come, so 8 means a one-in-10⁸ chance of being wrong
	// under the learned distribution of intervals.
	SuspectPhi, DeadPhi float64
	// MinStdDev is the least standard deviation assumed of intervals, so
	// that very regular heartbeats do not make the detector jumpy.
	MinStdDev time.Duration
	// Pause is slack added to the expected interval: delays that are
	// normal (a slow round, a GC pause) and not learned.
	Pause time.Duration
	// Interval is the expected interval between heartbeats of an idle
	// peer (the sync round interval): assumed before any is measured, and
	// the least interval learned. Any message is a heartbeat, and a busy
	// peer sends many a second; learning those intervals would make its
	// first idle round look like a failure.
	Interval time.Duration
	// Window is how many intervals the detector remembers.
	Window int
}

// DefaultConfig suits sync rounds every 4 s (1 s ticks): a peer silent
// for about 8 s is suspect, and dead after about 9 s.
func DefaultConfig() Config {
	return Config{SuspectPhi: 8, DeadPhi: 12, MinStdDev: 500 * time.Millisecond, Pause: 500 * time.Millisecond,
		Interval: 4 * time.Second, Window: 100}
}

// Member is a peer as the table knows it.
type Member struct {
	ID    string
	State State
	// Since is when it entered its state; LastSeen its last heartbeat.
	Since, LastSeen time.Time
	// Phi is its suspicion level at the last Tick.
	Phi float64
}

// Change is a member's change of state.
type Change struct {
	ID       string
	From, To State
}

type member struct {
	Member
	intervals []float64 // seconds, a ring of at most Window
	next      int
}

// Table is the peer table. It is not safe for concurrent use.
type Table struct {
	cfg     Config
	members map[string]*member
}

// New returns an empty table.
func New(cfg Config) *Table {
	if cfg.Window <= 0 {
		cfg.Window = DefaultConfig().Window
	}
	return &Table{cfg: cfg, members: map[string]*member{}}
}

// Add starts watching id as if last heard at seen (a zero time: now), and
// reports whether it was new. A peer known from before a restart is added
// with its stored last sighting, so its silence counts from then.
func (t *Table) Add(id string, seen, now time.Time) bool {
	if _, ok := t.members[id]; ok {
		return false
	}
	if seen.IsZero() {
		seen = now
	}
	t.members[id] = &member{Member: Member{ID: id, State: Alive, Since: now, LastSeen: seen}}
	return true
}

// Remove stops watching id.
func (t *Table) Remove(id string) { delete(t.members, id) }

// Heartbeat records a message from id at now; it returns the change of
// state it causes (a suspect, dead or left peer is alive again), if any.
func (t *Table) Heartbeat(id string, now time.Time) (Change, bool) {
	t.Add(id, now, now)
	m := t.members[id]
	// A silence that made the peer suspect (or dead, or gone) was an
	// outage, not an interval: learning it would slow the detection of
	// the next one.
	if d := now.Sub(m.LastSeen); d > 0 && m.State == Alive {
		d := max(d, t.cfg.Interval).Seconds()
		if len(m.intervals) < t.cfg.Window {
			m.intervals = append(m.intervals, d)
		} else {
			m.intervals[m.next] = d
			m.next = (m.next + 1) % t.cfg.Window
		}
	}
	m.LastSeen = now
	m.Phi = 0
	return t.set(m, Alive, now)
}

// Leave records that id said goodbye.
func (t *Table) Leave(id string, now time.Time) (Change, bool) {
	t.Add(id, now, now)
	return t.set(t.members[id], Left, now)
}

// Tick evaluates every member at now and returns the changes of state.
func (t *Table) Tick(now time.Time) []Change {
	var out []Change
	for _, id := range t.ids() {
		m := t.members[id]
		if m.State == Left {
			continue
		}
		m.Phi = t.phi(m, now)
		to := Alive
		switch {
		case m.Phi >= t.cfg.DeadPhi:
			to = Dead
		case m.Phi >= t.cfg.SuspectPhi:
			to = Suspect
		}
		if to < m.State {
			continue // only a heartbeat makes a peer less suspected
		}
		if c, ok := t.set(m, to, now); ok {
			out = append(out, c)
		}
	}
	return out
}

func (t *Table) set(m *member, to State, now time.Time) (Change, bool) {
	if m.State == to {
		return Change{}, false
	}
	c := Change{ID: m.ID, From: m.State, To: to}
	m.State, m.Since = to, now
	return c, true
}

// phi is the suspicion level of m's silence at now, under a normal
// distribution of its intervals (mean and deviation learned, with the
// configured floor and pause).
func (t *Table) phi(m *member, now time.Time) float64 {
	mean, sd := t.cfg.Interval.Seconds(), t.cfg.MinStdDev.Seconds()
	if n := len(m.intervals); n > 0 {
		var sum, sq float64
		for _, d := range m.intervals {
			sum += d
		}
		mean = sum / float64(n)
		for _, d := range m.intervals {
			sq += (d - mean) * (d - mean)
		}
		sd = max(sd, math.Sqrt(sq/float64(n)))
	}
	mean += t.cfg.Pause.Seconds()
	y := (now.Sub(m.LastSeen).Seconds() - mean) / sd
	// P(a later heartbeat) = 1 - Φ(y); phi = -log10 of it, computed with
	// erfc so that it keeps growing far in the tail.
	p := 0.5 * math.Erfc(y/math.Sqrt2)
	if p <= 0 {
		return math.Inf(1)
	}
	return -math.Log10(p)
}

// Get returns the member id.
func (t *Table) Get(id string) (Member, bool) {
	m, ok := t.members[id]
	if !ok {
		return Member{}, false
	}
	return m.Member, true
}

// Members returns every member, by ID.
func (t *Table) Members() []Member {
	out := make([]Member, 0, len(t.members))
	for _, id := range t.ids() {
		out = append(out, t.members[id].Member)
	}
	return out
}

func (t *Table) ids() []string { return slices.Sorted(maps.Keys(t.members)) }
