package ingest

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkJSON decodes batches of readings as POST /v1/readings and MQTT
// receive them.
func BenchmarkJSON(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		var sb strings.Builder
		sb.WriteString(`{"readings":[`)
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"sensor":"temp%d","value":%d.5,"unit":"C","ts":1700000000,"tags":{"room":"r%d"}}`, i%50, i, i%7)
		}
		sb.WriteString(`]}`)
		body := []byte(sb.String())
		b.Run(fmt.Sprintf("readings=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := JSON(body, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPayload decodes MQTT's commonest payloads.
func BenchmarkPayload(b *testing.B) {
	for _, c := range []struct{ name, payload string }{
		{"number", "21.5"},
		{"json", `{"value":21.5,"unit":"C"}`},
		{"line", "temp,room=kitchen value=21.5 1763892000000000000"},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := []byte(c.payload)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Payload("s", p, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
