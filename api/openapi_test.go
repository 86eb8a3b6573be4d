package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/shedding"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenAPIDocumentsEveryRoute keeps docs/openapi.yaml valid and equal
// to the routes the API serves, both ways.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI: %v", err)
	}
	a := New(Options{Gatherer: prometheus.NewRegistry()})
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			// Fill the parameters with samples; a key may hold '/'.
			sample := strings.NewReplacer("{ns}", "app", "{key}", "room/1", "{sensor}", "cpu.usage").Replace(path)
			_, pattern := a.mux.Handler(httptest.NewRequest(method, sample, nil))
			if pattern == "" || !slices.Contains(a.patterns, pattern) {
				t.Errorf("documented %s %s is not served", method, path)
			}
			documented[pattern] = true
		}
	}
	for _, p := range a.patterns {
		if !documented[p] {
			t.Errorf("route %s is not in docs/openapi.yaml", p)
		}
	}
}

// TestOpenAPIMatchesAnswers checks real requests and answers against
// docs/openapi.yaml: a request the API takes must be one the document
// allows, and every answer (status and body) one it lists.
func TestOpenAPIMatchesAnswers(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: "http://example.com"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	// check serves the request on a and checks it and its answer; it
	// returns the answer's status.
	check := func(t *testing.T, a *API, method, path, body string) int {
		t.Helper()
		newRequest := func() *http.Request {
			r := httptest.NewRequest(method, "http://example.com"+path, strings.NewReader(body))
			if body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			return r
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, newRequest())

		r := newRequest() // the validator reads the body again
		route, params, err := router.FindRoute(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && w.Code < 400 {
			t.Errorf("%s %s %s: answered %d, but the document refuses the request: %v", method, path, body, w.Code, err)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: w.Code, Header: w.Header(),
			Body: io.NopCloser(bytes.NewReader(w.Body.Bytes())), Options: opts}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s: answer %d %s not in the document: %v", method, path, w.Code, strings.TrimSpace(w.Body.String()), err)
		}
		return w.Code
	}

	t.Run("served", func(t *testing.T) {
		a, _ := testAPI(t, Options{Status: func() any { return map[string]any{} }})
		for _, tc := range []struct{ method, path, body string }{
			// docs/API.md: "or one reading {"sensor","value",…}".
			{"POST", "/v1/readings", `{"sensor":"t","value":1}`},
			{"POST", "/v1/readings", `{"readings":[{"sensor":"t","value":2,"unit":"C","tags":{"room":"a"}}]}`},
			{"POST", "/v1/readings", `{"readings":[]}`},
			{"GET", "/v1/sensors?limit=0", ""},
			{"GET", "/v1/sensors?limit=x", ""},
			// Two finite readings whose sum overflows: the bucket's value is null.
			{"POST", "/v1/readings", `{"readings":[{"sensor":"big","value":1.7e308,"ts":"2026-01-01T00:00:01Z"},{"sensor":"big","value":1.7e308,"ts":"2026-01-01T00:00:02Z"}]}`},
			{"GET", "/v1/series/big?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z&step=1m&agg=avg", ""},
			{"GET", "/v1/series/big?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z", ""},
			{"GET", "/v1/series/big?step=0", ""},
			{"GET", "/v1/sensors", ""},
			// Every documented operation, and some the API refuses.
			{"POST", "/v1/kv/app/k", `{"type":"counter","op":"inc"}`},
			{"POST", "/v1/kv/app/k", `{"type":"counter","op":"dec","by":2}`},
			{"POST", "/v1/kv/app/k", `{"type":"counter","op":"inc","by":null}`},
			{"POST", "/v1/kv/app/k", `{"type":"counter","op":"inc","value":5}`},
			{"POST", "/v1/kv/app/k", `{"type":"register","op":"set","value":1}`},
			{"POST", "/v1/kv/app/r", `{"type":"register","op":"set","value":null}`},
			{"POST", "/v1/kv/app/mv", `{"type":"mvregister","op":"set","value":{"a":1}}`},
			{"POST", "/v1/kv/app/s", `{"type":"set","op":"add","elems":["a",1]}`},
			{"POST", "/v1/kv/app/s", `{"type":"set","op":"remove","elems":["a"]}`},
			{"POST", "/v1/kv/app/m", `{"type":"map","op":"set","field":"f","value":true}`},
			{"POST", "/v1/kv/app/m", `{"type":"map","op":"inc","field":"n","by":3}`},
			{"POST", "/v1/kv/app/m", `{"type":"map","op":"dec","field":"n"}`},
			{"POST", "/v1/kv/app/m", `{"type":"map","op":"remove","field":"f"}`},
			{"POST", "/v1/kv/app/f", `{"type":"flag","op":"enable"}`},
			{"POST", "/v1/kv/app/f", `{"type":"flag","op":"disable","value":1}`},
			{"GET", "/v1/kv/app/k?by=node", ""},
			{"GET", "/v1/kv/app/m", ""},
			{"GET", "/v1/kv/app?limit=5000", ""},
			{"GET", "/v1/kv/app?limit=2", ""},
			{"DELETE", "/v1/kv/app/k", ""},
			{"GET", "/v1/kv/app/k", ""},
			{"POST", "/write?precision=s", "cpu v=1 1767225600"},
			{"GET", "/v1/status", ""},
		} {
			check(t, a, tc.method, tc.path, tc.body)
		}
	})

	t.Run("shedding", func(t *testing.T) {
		gov := shedding.New(shedding.Config{MinLimit: 4, MaxLimit: 4, Hold: time.Hour})
		a, _ := testAPI(t, Options{Shedding: &Shedding{Governor: gov, Default: shedding.Normal, Readings: shedding.Bulk}})
		// Half loaded: readings are kept as summaries ("downsampled").
		gov.Admit(shedding.Normal, time.Now())
		gov.Admit(shedding.Normal, time.Now())
		if code := check(t, a, "POST", "/v1/readings", `{"readings":[{"sensor":"t","value":1}]}`); code != http.StatusOK {
			t.Errorf("readings half loaded: %d", code)
		}
		// Short of memory: reads are refused with 503.
		gov.Done(time.Millisecond, time.Now())
		gov.Done(time.Millisecond, time.Now())
		gov.ObserveMemory(96, 100, time.Now())
		for _, path := range []string{"/v1/kv/app", "/v1/kv/app/k", "/v1/sensors", "/v1/series/t"} {
			if code := check(t, a, "GET", path, ""); code != http.StatusServiceUnavailable {
				t.Errorf("GET %s at 96%% memory: %d, want 503", path, code)
			}
		}
	})
}
