package series

import (
	"errors"
	"fmt"
	"math"

	"github.com/edged-dev/edged/cborcheck"
	"github.com/edged-dev/edged/crdt"
	"github.com/fxamacker/cbor/v2"
)

// summary aggregates the readings of one window (or bucket).
type summary struct {
	Count    uint64  `cbor:"1,keyasint"`
	Sum      float64 `cbor:"2,keyasint"`
	Min      float64 `cbor:"3,keyasint"`
	Max      float64 `cbor:"4,keyasint"`
	LastTime int64   `cbor:"5,keyasint"`
	Last     float64 `cbor:"6,keyasint"`
}

func (s *summary) add(r crdt.Reading) {
	s.merge(summary{Count: 1, Sum: r.Value, Min: r.Value, Max: r.Value, LastTime: r.Time, Last: r.Value})
}

// merge adds the readings summarised by o.
func (s *summary) merge(o summary) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 {
		*s = o
		return
	}
	s.Count += o.Count
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
	if o.LastTime > s.LastTime || (o.LastTime == s.LastTime && o.Last > s.Last) {
		s.LastTime, s.Last = o.LastTime, o.Last
	}
}

func (s *summary) value(a Agg) float64 {
	switch a {
	case Min:
		return s.Min
	case Max:
		return s.Max
	case Sum:
		return s.Sum
	case Count:
		return float64(s.Count)
	case Last:
		return s.Last
	}
	return s.Sum / float64(s.Count)
}

func (s summary) encode() []byte {
	b, err := cbor.Marshal(s)
	if err != nil {
		panic(err) // a struct of numbers always encodes
	}
	return b
}

// valueMode decodes the small records of this package; their bytes may
// come from peers.
var valueMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxArrayElements: 16, MaxMapPairs: 16, MaxNestedLevels: 4, IndefLength: cbor.IndefLengthForbidden}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}()

var errBadNumber = errors.New("not a finite number")

// decodeSummary returns the summary a register holds (zero when empty).
func decodeSummary(reg *crdt.LWWRegister) (summary, error) {
	var s summary
	b, _, ok := reg.Get()
	if !ok {
		return s, nil
	}
	if err := cborcheck.Unmarshal(valueMode, b, &s); err != nil {
		return summary{}, fmt.Errorf("decode: %w", err)
	}
	// Sum may overflow to an infinity (or NaN, from both) with finite
	// readings; the others are readings' values.
	for _, f := range []float64{s.Min, s.Max, s.Last} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return summary{}, errBadNumber
		}
	}
	return s, nil
}

// Latest is a sensor's most recent reading.
type Latest struct {
	Time  int64             `cbor:"1,keyasint"` // Unix nanoseconds
	Value float64           `cbor:"2,keyasint"`
	Flags crdt.ReadingFlags `cbor:"3,keyasint,omitempty"`
	Unit  string            `cbor:"4,keyasint,omitempty"`
}

func (l Latest) encode() []byte {
	b, err := cbor.Marshal(l)
	if err != nil {
		panic(err) // a struct of numbers and a string always encodes
	}
	return b
}

// decodeLatest returns the reading a register holds, and whether it holds
// one.
func decodeLatest(reg *crdt.LWWRegister) (Latest, bool, error) {
	var l Latest
	b, _, ok := reg.Get()
	if !ok {
		return l, false, nil
	}
	if err := cborcheck.Unmarshal(valueMode, b, &l); err != nil {
		return Latest{}, false, fmt.Errorf("latest reading: decode: %w", err)
	}
	if math.IsNaN(l.Value) || math.IsInf(l.Value, 0) {
		return Latest{}, false, fmt.Errorf("latest reading: %w", errBadNumber)
	}
	return l, true, nil
}
