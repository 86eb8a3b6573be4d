package lineproto

import (
	"strconv"
	"testing"
	"unsafe"
)

// BenchmarkFloat compares the parser's float conversion with the ways of
// calling strconv.ParseFloat on a byte slice that the package doc weighs:
// a string conversion (which the compiler does not always avoid copying)
// and an unsafe alias.
func BenchmarkFloat(b *testing.B) {
	for _, tok := range []string{"90.5", "0.000123", "1700000000.123456789"} {
		buf := []byte(tok)
		b.Run(tok+"/scanNumber", func(b *testing.B) {
			var f Field
			for b.Loop() {
				if _, e := scanNumber(buf, 0, &f); e != numOK {
					b.Fatal(e)
				}
			}
		})
		b.Run(tok+"/strconv-string", func(b *testing.B) {
			for b.Loop() {
				if _, err := strconv.ParseFloat(string(buf), 64); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tok+"/strconv-unsafe", func(b *testing.B) {
			for b.Loop() {
				if _, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(buf), len(buf)), 64); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
