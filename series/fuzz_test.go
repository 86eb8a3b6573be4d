package series

import (
	"math"
	"testing"

	"github.com/edged-dev/edged/crdt"
)

// FuzzDecodeRecords feeds arbitrary bytes, as a peer could, to the
// decoders of summaries and latest readings: they fail cleanly, and what
// they accept holds finite readings (a sum may have overflowed).
func FuzzDecodeRecords(f *testing.F) {
	f.Add(summary{Count: 2, Sum: 3, Min: 1, Max: 2, LastTime: 5, Last: 2}.encode())
	f.Add(Latest{Time: 1, Value: 2, Unit: "C"}.encode())
	f.Add([]byte{0xa1, 0x02, 0xf9, 0x7e, 0x00}) // {2: NaN}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ctx crdt.Context
		reg := new(crdt.LWWRegister)
		d := reg.Set(crdt.NewDotGen(&ctx, 1), crdt.Timestamp{}, b)
		reg = d.Value.(*crdt.LWWRegister)
		if s, err := decodeSummary(reg); err == nil {
			for _, v := range []float64{s.Min, s.Max, s.Last} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("accepted %v in %+v", v, s)
				}
			}
		}
		if l, ok, err := decodeLatest(reg); err == nil && ok && (math.IsNaN(l.Value) || math.IsInf(l.Value, 0)) {
			t.Fatalf("accepted %v", l.Value)
		}
	})
}
