package node

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkHTTPOp measures one counter increment over HTTP, closed loop,
// with durability none: the cost of the HTTP path without the disk.
func BenchmarkHTTPOp(b *testing.B) {
	cfg := testConfig(b)
	cfg.Store.Durability = "none"
	n := newNode(b, cfg)
	done, cancel := runNode(b, n)
	defer func() { cancel(); <-done }()
	select {
	case <-n.Ready():
	case <-time.After(waitTimeout):
		b.Fatal("node not ready")
	}
	url := "http://" + n.Addr().String() + "/v1/kv/bench/k"
	body := []byte(`{"type":"counter","op":"inc"}`)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
