package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/engine/enginetest"
	"github.com/edged-dev/edged/kv"
	"github.com/edged-dev/edged/series"
	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
	"github.com/prometheus/client_golang/prometheus"
)

// testAPI returns the API of o on a fresh store and engine, and the
// store.
func testAPI(t *testing.T, o Options) (*API, *store.DB) {
	db, eng := enginetest.Start(t, 7, engine.Config{})
	o.DB, o.KV, o.Series, o.Hub = db, kv.New(db, eng), series.New(db, eng, nil, nil), kv.NewHub()
	o.Registry, o.Gatherer = prometheus.NewRegistry(), prometheus.NewRegistry()
	o.Ready = func() bool { return true }
	return New(o), db
}

// TestShedding: requests are classed by route, namespace and header, and
// refused (429 for concurrency, 503 for memory, with Retry-After),
// downsampled (bulk readings kept as summaries) or taken by the
// governor's decision; health and status are never shed.
func TestShedding(t *testing.T) {
	gov := shedding.New(shedding.Config{MinLimit: 4, MaxLimit: 4, Hold: time.Hour})
	a, db := testAPI(t, Options{Status: func() any { return gov.Status() },
		Shedding: &Shedding{Governor: gov, Default: shedding.Normal, Readings: shedding.Bulk,
			Namespaces: map[string]shedding.Class{"alarms": shedding.Critical}, RequestPriority: true, CriticalInFlight: 2}})
	do := func(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w
	}
	reading := `{"readings":[{"sensor":"temp","value":21.5}]}`
	if w := do("POST", "/v1/readings", reading); w.Code != 200 || strings.Contains(w.Body.String(), "downsampled") {
		t.Fatalf("unloaded: %d %s", w.Code, w.Body)
	}

	// Two requests in flight of four allowed: bulk work is downsampled.
	gov.Admit(shedding.Normal, time.Now())
	gov.Admit(shedding.Normal, time.Now())
	if w := do("POST", "/v1/readings", reading); w.Code != 200 || !strings.Contains(w.Body.String(), `"downsampled":true`) {
		t.Errorf("half loaded: %d %s", w.Code, w.Body)
	}
	// Bulk work other than readings cannot be downsampled: taken whole.
	before := gov.Status().Classes["bulk"]
	if w := do("POST", "/v1/kv/app/y", `{"type":"counter","op":"inc"}`, PriorityHeader, "bulk"); w.Code != 200 {
		t.Errorf("bulk key write half loaded: %d %s", w.Code, w.Body)
	}
	if cs := gov.Status().Classes["bulk"]; cs.Downsampled != before.Downsampled || cs.Admitted != before.Admitted+1 {
		t.Errorf("a bulk key write counted as %+v (before: %+v); want taken whole", cs, before)
	}
	// Four: normal work is refused with 429, critical work is taken.
	gov.Admit(shedding.Normal, time.Now())
	gov.Admit(shedding.Normal, time.Now())
	if w := do("POST", "/v1/kv/app/x", `{"type":"counter","op":"inc"}`); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Errorf("normal at the limit: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := do("POST", "/v1/kv/alarms/fire", `{"type":"flag","op":"enable"}`); w.Code != 200 {
		t.Errorf("critical namespace at the limit: %d %s", w.Code, w.Body)
	}
	if w := do("POST", "/v1/kv/app/x", `{"type":"counter","op":"inc"}`, PriorityHeader, "critical"); w.Code != 200 {
		t.Errorf("critical by header at the limit: %d %s", w.Code, w.Body)
	}
	a.o.Shedding.RequestPriority = false
	if w := do("POST", "/v1/kv/app/x", `{"type":"counter","op":"inc"}`, PriorityHeader, "critical"); w.Code != http.StatusTooManyRequests {
		t.Errorf("the header raised a request's class without request_priority: %d %s", w.Code, w.Body)
	}
	// Critical requests beyond CriticalInFlight wait for a slot: one whose
	// client leaves while it waits is not handled.
	a.critical <- struct{}{}
	a.critical <- struct{}{}
	r := httptest.NewRequest("POST", "/v1/kv/alarms/fire", strings.NewReader(`{"type":"flag","op":"disable"}`))
	r.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r.WithContext(ctx))
	if w.Body.Len() != 0 || gov.Status().Classes["critical"].Delayed != 1 {
		t.Errorf("critical request whose client left while it waited: %d %q, status %+v", w.Code, w.Body, gov.Status().Classes["critical"])
	}
	if vs, err := db.Get("alarms/fire"); err != nil || !vs[crdt.TypeEWFlag].(*crdt.EWFlag).Enabled() {
		t.Errorf("alarms/fire after the abandoned request: %v, %v; want still enabled", vs, err)
	}
	// One that waits longer than CriticalWait is refused, and counted.
	a.o.Shedding.CriticalWait = time.Millisecond
	if w := do("POST", "/v1/kv/alarms/fire", `{"type":"flag","op":"disable"}`); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Errorf("critical request that waited too long: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if cs := gov.Status().Classes["critical"]; cs.Delayed != 2 || cs.Refused[shedding.ReasonConcurrency] != 1 {
		t.Errorf("critical counters %+v, want 2 delayed and 1 refused", cs)
	}
	<-a.critical
	if w := do("POST", "/v1/kv/alarms/fire", `{"type":"flag","op":"disable"}`); w.Code != 200 || len(a.critical) != 1 {
		t.Errorf("critical with a slot free: %d %s; %d slots taken after, want 1", w.Code, w.Body, len(a.critical))
	}
	<-a.critical
	// Memory: normal work is refused with 503; health and status answer.
	for range 4 {
		gov.Done(time.Millisecond, time.Now())
	}
	gov.ObserveMemory(96, 100, time.Now())
	if w := do("GET", "/v1/kv/app/x", ""); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "memory") {
		t.Errorf("read at 96%% memory: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/v1/status"} {
		if w := do("GET", path, ""); w.Code != 200 {
			t.Errorf("GET %s while shedding: %d", path, w.Code)
		}
	}
	st := gov.Status()
	if st.Classes["normal"].Refused[shedding.ReasonConcurrency] != 2 || st.Classes["normal"].Refused[shedding.ReasonMemory] != 1 || st.Classes["bulk"].Downsampled != 1 {
		t.Errorf("counters %+v", st.Classes)
	}
}

// TestRefusalCodes: the client is told to slow down (429) when the node
// takes work faster than it gets through it, and that the node itself is
// short (503) of memory or disk.
func TestRefusalCodes(t *testing.T) {
	a := New(Options{Registry: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	for reason, code := range map[shedding.Reason]int{
		shedding.ReasonConcurrency: http.StatusTooManyRequests,
		shedding.ReasonCPU:         http.StatusTooManyRequests,
		shedding.ReasonMemory:      http.StatusServiceUnavailable,
		shedding.ReasonDisk:        http.StatusServiceUnavailable,
	} {
		w := httptest.NewRecorder()
		a.refuse(w, shedding.Normal, shedding.Decision{Reason: reason, RetryAfter: 2 * time.Second})
		if w.Code != code || w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), string(reason)) {
			t.Errorf("refused for %s: %d, Retry-After %q, %s; want %d", reason, w.Code, w.Header().Get("Retry-After"), w.Body, code)
		}
	}
}

// TestAdmissionRateRefuses: a request over the governor's admission rate
// is refused with 429 and the reason cpu, and is counted.
func TestAdmissionRateRefuses(t *testing.T) {
	gov := shedding.New(shedding.Config{MinLimit: 1, QueueTarget: 2 * time.Millisecond, Interval: 100 * time.Millisecond})
	a, _ := testAPI(t, Options{Shedding: &Shedding{Governor: gov, Default: shedding.Normal, Readings: shedding.Bulk}})
	// A standing CPU queue an hour from now: the governor takes the
	// requests below as arriving then, with the bucket just emptied.
	at := time.Now().Add(time.Hour)
	gov.ObserveQueue(20*time.Millisecond, at)
	for range 10 {
		gov.Admit(shedding.Normal, at)
		gov.Done(time.Millisecond, at)
	}
	gov.ObserveQueue(20*time.Millisecond, at.Add(100*time.Millisecond))
	if r := gov.Status().Rate; r != 50 {
		t.Fatalf("rate %v, want 50 (100/s taken, the wait ten times the target)", r)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/v1/kv/app/x", nil))
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "(cpu)") {
		t.Errorf("read over the admission rate: %d %s", w.Code, w.Body)
	}
	if n := gov.Status().Classes["normal"].Refused[shedding.ReasonCPU]; n != 1 {
		t.Errorf("%d normal requests refused for cpu, want 1", n)
	}
}
