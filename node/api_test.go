package node

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// client talks to a running node's HTTP API.
type client struct {
	t     *testing.T
	base  string
	token string
}

func startNode(t *testing.T, edit func(*Node)) *client {
	t.Helper()
	cfg := testConfig(t)
	cfg.Readings.TrustClock = true
	n := newNode(t, cfg)
	if edit != nil {
		edit(n)
	}
	done, _ := runNode(t, n) // which stops it at the test's end
	waitReady(t, n, done)
	return &client{t: t, base: "http://" + n.Addr().String()}
}

func (c *client) do(method, path, contentType string, body []byte, hdr ...string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// expect asserts a status and, when want is not empty, that the body
// contains it.
func (c *client) expect(method, path, body string, code int, want string) []byte {
	c.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	got, b := c.do(method, path, ct, []byte(body))
	if got != code || !strings.Contains(string(b), want) {
		c.t.Fatalf("%s %s %s = %d %s, want %d containing %s", method, path, body, got, b, code, want)
	}
	return b
}

func TestHTTPKeys(t *testing.T) {
	c := startNode(t, nil)
	c.expect("POST", "/v1/kv/app/pump/1", `{"type":"counter","op":"inc","by":3}`, 200, `{"ns":"app","key":"pump/1","type":"counter","value":3}`)
	c.expect("GET", "/v1/kv/app/pump/1", "", 200, `"value":3`)
	c.expect("POST", "/v1/kv/app/cfg", `{"type":"map","op":"set","field":"mode","value":"auto"}`, 200, `"value":{"mode":"auto"}`)
	c.expect("POST", "/v1/kv/app/tags", `{"type":"set","op":"add","elems":["a","b"]}`, 200, `"value":["a","b"]`)
	c.expect("GET", "/v1/kv/app/missing", "", 404, `"error":"kv: not found`)
	c.expect("POST", "/v1/kv/app/pump/1", `{"type":"register","op":"set","value":1}`, 409, `type mismatch`)
	c.expect("POST", "/v1/kv/app/x", `{"type":"counter","op":"inc","by":-1}`, 400, `"field":"by"`)
	c.expect("POST", "/v1/kv/App/x", `{"type":"flag","op":"enable"}`, 400, `"field":"ns"`)
	if code, b := c.do("POST", "/v1/kv/app/x", "text/plain", []byte(`{"type":"flag","op":"enable"}`)); code != 415 {
		t.Errorf("text/plain op = %d %s, want 415", code, b)
	}
	big := `{"type":"register","op":"set","value":"` + strings.Repeat("x", 2<<20) + `"}`
	c.expect("POST", "/v1/kv/app/big", big, 413, "limit")
	b := c.expect("GET", "/v1/kv/app?limit=2", "", 200, `"next":"pump/1"`)
	var page struct {
		Keys []struct{ Key string }
	}
	json.Unmarshal(b, &page)
	if len(page.Keys) != 2 || page.Keys[0].Key != "cfg" {
		t.Errorf("first page %s", b)
	}
	c.expect("GET", "/v1/kv/app?limit=2&after=pump/1", "", 200, `"key":"tags"`)
	c.expect("DELETE", "/v1/kv/app/tags", "", 204, "")
	c.expect("GET", "/v1/kv/app/tags", "", 404, "")
}

func TestHTTPReadings(t *testing.T) {
	c := startNode(t, nil)
	now := time.Now().UTC().Truncate(time.Minute)
	c.expect("POST", "/v1/readings", `{"readings":[{"sensor":"temp","value":21.5,"unit":"C","ts":"`+now.Format(time.RFC3339)+`","tags":{"room":"lab"}}]}`, 200, `{"stored":1}`)
	c.expect("POST", "/v1/readings", `{"readings":[{"sensor":"temp","value":"hot"}]}`, 400, `"field":"readings[0].value"`)

	// Line protocol, v1 with seconds, and v2 gzipped with milliseconds.
	lp := "cpu,host=gw usage=10 " + itoa(now.Unix()) + "\ncpu,host=gw usage=30 " + itoa(now.Add(30*time.Second).Unix()) + "\n"
	if code, b := c.do("POST", "/write?db=x&precision=s", "text/plain; charset=utf-8", []byte(lp)); code != 204 {
		t.Fatalf("POST /write = %d %s", code, b)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	io.WriteString(zw, "cpu,host=gw usage=50 "+itoa(now.Add(90*time.Second).UnixMilli())+"\n")
	zw.Close()
	if code, b := c.do("POST", "/api/v2/write?org=o&bucket=b&precision=ms", "text/plain", z.Bytes(), "Content-Encoding", "gzip"); code != 204 {
		t.Fatalf("POST /api/v2/write = %d %s", code, b)
	}
	if code, b := c.do("POST", "/write", "text/plain", []byte("cpu usage=\n")); code != 400 || !strings.Contains(string(b), "line 1") {
		t.Errorf("bad line protocol = %d %s, want 400 naming line 1", code, b)
	}
	c.expect("GET", "/v1/sensors", "", 200, `"sensor":"cpu.usage,host=gw","latest":{"ts":"`+now.Add(90*time.Second).Format(time.RFC3339)+`","value":50}`)
	from, to := now.Format(time.RFC3339), now.Add(2*time.Minute).Format(time.RFC3339)
	b := c.expect("GET", "/v1/series/cpu.usage,host=gw?from="+from+"&to="+to+"&step=1m&agg=avg", "", 200, `"agg":"avg"`)
	var s struct {
		Points []struct {
			Value float64
			Count int
		}
	}
	json.Unmarshal(b, &s)
	if len(s.Points) != 2 || s.Points[0].Value != 20 || s.Points[0].Count != 2 || s.Points[1].Value != 50 {
		t.Errorf("series %s, want minute averages 20 (of 2) and 50", b)
	}
	c.expect("GET", "/v1/series/cpu.usage,host=gw?step=1x", "", 400, `"field":"step"`)
}

func TestHTTPOperations(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	c := startNode(t, func(n *Node) { n.cfg.HTTP.TokenFile = tokenFile })
	c.expect("GET", "/healthz", "", 200, "ok")
	c.expect("GET", "/readyz", "", 200, "ready")
	c.expect("GET", "/v1/status", "", 401, "bearer token")
	c.token = "s3cret"
	c.expect("GET", "/v1/status", "", 200, `"peers":null`)

	// A watch sees a write as a server-sent event.
	req, _ := http.NewRequest("GET", c.base+"/v1/watch?prefix=app/", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				events <- sc.Text()
			}
		}
	}()
	c.expect("POST", "/v1/kv/app/door", `{"type":"flag","op":"enable"}`, 200, "true")
	select {
	case e := <-events:
		if !strings.Contains(e, `"key":"door"`) || !strings.Contains(e, `"value":true`) {
			t.Errorf("event %s", e)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
	}
	b := c.expect("GET", "/metrics", "", 200, "edged_http_requests_total")
	for _, m := range []string{"edged_kv_ops_total", "edged_store_bytes", "go_goroutines", "edged_http_request_duration_seconds",
		"edged_mqtt_received_total", `edged_mqtt_errors_total{kind="payload"}`, "edged_sensor_polls_total"} {
		if !bytes.Contains(b, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func itoa(n int64) string { return strings.TrimSpace(string(must(json.Marshal(n)))) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
