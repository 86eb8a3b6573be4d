package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowBodies: a client that sends its headers and then trickles its
// body is answered once the body timeout is over (408), or, when the
// answer does not need the body (a refusal, a wrong media type), once
// the server has waited the drain time for the rest of it; either way
// its connection is then closed. A client refused after sending its whole
// body keeps its connection, and one that sends its body in time is
// served.
func TestSlowBodies(t *testing.T) {
	const timeout = 200 * time.Millisecond // and so the drain time
	a, _ := testAPI(t, Options{BodyTimeout: timeout, Token: "secret"})
	srv := httptest.NewServer(a)
	defer srv.Close()

	const auth = "Authorization: Bearer secret\r\n"
	for _, tc := range []struct {
		name, head, body string
		code             int
	}{
		{"a trickled JSON body", auth + "Content-Type: application/json\r\nContent-Length: 100\r\n", `{"type":`, http.StatusRequestTimeout},
		{"a gzip header that never comes", auth + "Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 100\r\n", "\x1f\x8b", http.StatusRequestTimeout},
		{"no token", "Content-Type: application/json\r\nContent-Length: 100\r\n", `{"type":`, http.StatusUnauthorized},
		{"no token, a chunked body that stops", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "5\r\n{\"typ\r\n", http.StatusUnauthorized},
		{"a wrong media type", auth + "Content-Type: text/html\r\nContent-Length: 100\r\n", "<html>", http.StatusUnsupportedMediaType},
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
			if took := time.Since(start); took < timeout {
				t.Errorf("answered after %s, before the body could have come", took)
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Errorf("connection not closed after the answer: %v", err)
			}
		})
	}

	// Refused with the whole body sent: the connection serves the next
	// request, which is taken.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	op := `{"type":"counter","op":"inc"}`
	for i, want := range []int{http.StatusUnauthorized, http.StatusOK} {
		head := "Content-Type: application/json\r\n"
		if i == 1 {
			head += auth
		}
		start := time.Now()
		if _, err := io.WriteString(c, "POST /v1/kv/app/x HTTP/1.1\r\nHost: edged\r\n"+head+"Content-Length: "+itoa(int64(len(op)))+"\r\n\r\n"+op); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on a kept connection: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Close {
			t.Errorf("request %d with its whole body: %s, close %v; want %d on a kept connection", i, resp.Status, resp.Close, want)
		}
		if took := time.Since(start); took >= timeout {
			t.Errorf("request %d with its whole body answered after %s", i, took)
		}
	}
}

// gzipped returns s compressed with gzip.
func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCorruptGzipBodyIs400: a gzip body whose header is fine but whose
// data or trailer is not (a truncated upload, a flipped byte, a bad
// checksum, bytes after the stream) is the client's malformed input: 400,
// not 500.
func TestCorruptGzipBodyIs400(t *testing.T) {
	a, _ := testAPI(t, Options{})
	good := gzipped(t, "cpu,host=a usage=1\n")
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 of the trailer
	badData := bytes.Clone(good)
	badData[10] ^= 0xff // the first byte of the deflate stream
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"bad checksum", badCRC},
		{"corrupt data", badData},
		{"truncated", good[:len(good)-4]},
		{"trailing garbage", append(bytes.Clone(good), "garbage"...)},
		{"bad header", []byte("not gzip at all")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/write", bytes.NewReader(tc.body))
			r.Header.Set("Content-Encoding", "gzip")
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "gzip body") {
				t.Errorf("%d %s, want 400 about the gzip body", w.Code, w.Body)
			}
		})
	}
}

// TestContentEncodingIsCaseInsensitive: RFC 9110 §8.4.1: "All content
// codings are case-insensitive".
func TestContentEncodingIsCaseInsensitive(t *testing.T) {
	a, _ := testAPI(t, Options{})
	for _, tc := range []struct {
		enc  string
		body []byte
		code int
	}{
		{"GZIP", gzipped(t, "cpu,host=a usage=1\n"), http.StatusNoContent},
		{"Gzip", gzipped(t, "cpu,host=a usage=2\n"), http.StatusNoContent},
		{"Identity", []byte("cpu,host=a usage=3\n"), http.StatusNoContent},
		{"br", []byte("cpu,host=a usage=4\n"), http.StatusUnsupportedMediaType},
	} {
		r := httptest.NewRequest("POST", "/write", bytes.NewReader(tc.body))
		r.Header.Set("Content-Encoding", tc.enc)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("Content-Encoding: %s -> %d %s, want %d", tc.enc, w.Code, w.Body, tc.code)
		}
	}
}
