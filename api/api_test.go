package api

import (
	"net/http/httptest"
	"testing"
)

// TestAuthScheme: the scheme is case-insensitive (RFC 9110 §11.1: "It
// uses a case-insensitive token to identify the authentication scheme"),
// as curl scripts and some HTTP libraries send "bearer"; a wrong token or
// scheme is refused whatever its case.
func TestAuthScheme(t *testing.T) {
	a, _ := testAPI(t, Options{Token: "secret", Status: func() any { return map[string]any{} }})
	for _, tc := range []struct {
		header string
		code   int
	}{
		{"Bearer secret", 200},
		{"bearer secret", 200},
		{"BEARER secret", 200},
		{"Token secret", 200},
		{"token secret", 200},
		{"Bearer  secret", 200},
		{"bearer Secret", 401},
		{"Basic secret", 401},
		{"Bearersecret", 401},
		{"", 401},
	} {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Header.Set("Authorization", tc.header)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("Authorization: %q -> %d %s, want %d", tc.header, w.Code, w.Body, tc.code)
		}
	}
}
