package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/edged-dev/edged/shedding"
)

// Shedding is the API's admission control: each request is classed, and
// admitted, degraded or refused by the governor.
type Shedding struct {
	Governor *shedding.Governor
	// Default classes requests not classed otherwise; Readings the
	// readings writes; Namespaces the key writes, by namespace.
	Default, Readings shedding.Class
	Namespaces        map[string]shedding.Class
	// RequestPriority lets the header X-Edged-Priority raise a request's
	// class; it may always lower it.
	RequestPriority bool
	// CriticalInFlight bounds the critical requests handled at once:
	// more wait until one ends, and are never refused. Zero: no bound.
	CriticalInFlight int
}

// PriorityHeader is the request header that sets a request's class.
const PriorityHeader = "X-Edged-Priority"

// routeKind says how a route's requests are classed.
type routeKind uint8

const (
	kindExempt   routeKind = iota // health, metrics, status: never shed
	kindDefault                   // reads
	kindReadings                  // readings writes
	kindKeys                      // key writes, by namespace
)

func kindOf(pattern string) routeKind {
	switch pattern {
	case "GET /healthz", "GET /readyz", "GET /v1/status", "GET /v1/peers", "GET /v1/nodes", "GET /v1/backup", "GET /v1/watch":
		return kindExempt
	case "POST /v1/readings", "POST /write", "POST /api/v2/write":
		return kindReadings
	case "POST /v1/kv/{ns}/{key...}", "DELETE /v1/kv/{ns}/{key...}":
		return kindKeys
	}
	return kindDefault
}

// downsampleKey marks, in a request's context, a readings write to be
// kept as summaries only.
type downsampleKey struct{}

func downsampled(ctx context.Context) bool { b, _ := ctx.Value(downsampleKey{}).(bool); return b }

// class returns the class of a request to a route of kind k.
func (s *Shedding) class(k routeKind, r *http.Request) shedding.Class {
	c := s.Default
	switch k {
	case kindReadings:
		c = s.Readings
	case kindKeys:
		if nc, ok := s.Namespaces[r.PathValue("ns")]; ok {
			c = nc
		}
	}
	if h := r.Header.Get(PriorityHeader); h != "" {
		if hc, ok := shedding.ParseClass(h); ok && (s.RequestPriority || hc > c) {
			c = hc
		}
	}
	return c
}

// admit wraps a route's handler in admission control.
func (a *API) admit(k routeKind, next http.Handler) http.Handler {
	s := a.o.Shedding
	if s == nil || k == kindExempt {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.class(k, r)
		if c == shedding.Critical && a.critical != nil {
			if !a.holdCritical(r) {
				return // the client left while its request waited
			}
			defer func() { <-a.critical }()
		}
		start := time.Now()
		d := s.Governor.Admit(c, start)
		if !d.Admit {
			code := http.StatusTooManyRequests
			if d.Reason != shedding.ReasonConcurrency {
				code = http.StatusServiceUnavailable // the node itself is short of memory or disk
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
			a.writeJSON(w, code, errorBody{Error: fmt.Sprintf("overloaded: %s work is shed (%s); retry later", c, d.Reason)})
			return
		}
		defer func() { s.Governor.Done(time.Since(start), time.Now()) }()
		if d.Downsample {
			if k != kindReadings {
				d.Downsample = false
			} else {
				r = r.WithContext(context.WithValue(r.Context(), downsampleKey{}, true))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// holdCritical takes one of the slots of critical requests in flight,
// waiting for one if all are taken (counted as a delay), and reports
// false if the client left first.
func (a *API) holdCritical(r *http.Request) bool {
	select {
	case a.critical <- struct{}{}:
		return true
	default:
	}
	a.o.Shedding.Governor.Delayed(shedding.Critical)
	select {
	case a.critical <- struct{}{}:
		return true
	case <-r.Context().Done():
		return false
	}
}
