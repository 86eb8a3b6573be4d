package api

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyTimesOut: a client that sends its headers and then
// trickles its body is answered 408 once the body timeout is over, and
// its connection is freed; a client that sends its body in time is
// served on the same server.
func TestSlowBodyTimesOut(t *testing.T) {
	a, _ := testAPI(t, Options{BodyTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(a)
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("POST /v1/kv/app/x HTTP/1.1\r\nHost: edged\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("trickled body: %s, want 408", resp.Status)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("answered after %s, before the body timeout", took)
	}

	r, err := http.Post(srv.URL+"/v1/kv/app/x", "application/json", strings.NewReader(`{"type":"counter","op":"inc"}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("a body sent in time: %s", r.Status)
	}
}
