package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowBodies: a client that sends its headers and then trickles its
// body is answered once the body timeout is over (408) or at once when
// the answer does not need the body (a refusal, a wrong media type), and
// its connection is closed rather than read to the body's end; a client
// that sends its body in time is served on the same server.
func TestSlowBodies(t *testing.T) {
	const timeout = 200 * time.Millisecond
	a, _ := testAPI(t, Options{BodyTimeout: timeout, Token: "secret"})
	srv := httptest.NewServer(a)
	defer srv.Close()

	const auth = "Authorization: Bearer secret\r\n"
	for _, tc := range []struct {
		name, head, body string
		code             int
		slow             bool // answered only once the timeout is over
	}{
		{"a trickled JSON body", auth + "Content-Type: application/json\r\nContent-Length: 100\r\n", `{"type":`, http.StatusRequestTimeout, true},
		{"a gzip header that never comes", auth + "Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 100\r\n", "\x1f\x8b", http.StatusRequestTimeout, true},
		{"no token", "Content-Type: application/json\r\nContent-Length: 100\r\n", `{"type":`, http.StatusUnauthorized, false},
		{"no token, a chunked body that stops", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "5\r\n{\"typ\r\n", http.StatusUnauthorized, false},
		{"a wrong media type", auth + "Content-Type: text/html\r\nContent-Length: 100\r\n", "<html>", http.StatusUnsupportedMediaType, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if _, err := io.WriteString(c, "POST /v1/kv/app/x HTTP/1.1\r\nHost: edged\r\n"+tc.head+"\r\n"+tc.body); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("answered %s, want %d", resp.Status, tc.code)
			}
			if took := time.Since(start); tc.slow != (took >= timeout) {
				t.Errorf("answered after %s (the body timeout is %s)", took, timeout)
			}
			// The server closes the connection; it does not wait for
			// the rest of the body.
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Errorf("connection not closed after the answer: %v", err)
			}
		})
	}

	r, err := http.NewRequest("POST", srv.URL+"/v1/kv/app/x", strings.NewReader(`{"type":"counter","op":"inc"}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Errorf("a body sent in time: %s, close %v", resp.Status, resp.Close)
	}
}
