package api

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
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
