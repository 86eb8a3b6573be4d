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
	// more wait until one ends, for CriticalWait at most, and are refused
	// (429) only then. Zero: no bound.
	CriticalInFlight int
	// CriticalWait is that wait's bound. Zero means 10s: long enough to
	// ride out a slow commit, short enough that waiting requests do not
	// hold the node's connections indefinitely.
	CriticalWait time.Duration
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
			switch a.holdCritical(r) {
			case slotTaken:
				defer func() { <-a.critical }()
			case waitedTooLong:
				a.refuse(w, c, s.Governor.Refuse(c, shedding.ReasonConcurrency, time.Now()))
				return
			case clientLeft:
				return
			}
		}
		start := time.Now()
		admit := s.Governor.Admit
		if k == kindReadings {
			admit = s.Governor.AdmitReadings
		}
		d := admit(c, start)
		if !d.Admit {
			a.refuse(w, c, d)
			return
		}
		defer func() { s.Governor.Done(time.Since(start), time.Now()) }()
		if d.Downsample {
			r = r.WithContext(context.WithValue(r.Context(), downsampleKey{}, true))
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers a request of class c that d refused: 429 when the node
// has too much in flight or takes work in faster than its CPU gets
// through, 503 when it is short of memory or disk.
func (a *API) refuse(w http.ResponseWriter, c shedding.Class, d shedding.Decision) {
	code := http.StatusTooManyRequests
	if d.Reason != shedding.ReasonConcurrency && d.Reason != shedding.ReasonCPU {
		code = http.StatusServiceUnavailable // the node itself is short of memory or disk
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
	a.writeJSON(w, code, errorBody{Error: fmt.Sprintf("overloaded: %s work is shed (%s); retry later", c, d.Reason)})
}

// What holdCritical got.
const (
	slotTaken = iota
	waitedTooLong
	clientLeft // noticed only for requests without a body: Go's server
	// watches the connection only once the body is read
)

// holdCritical takes one of the slots of critical requests in flight,
// waiting for one if all are taken (counted as a delay) for CriticalWait
// at most.
func (a *API) holdCritical(r *http.Request) int {
	select {
	case a.critical <- struct{}{}:
		return slotTaken
	default:
	}
	a.o.Shedding.Governor.Delayed(shedding.Critical)
	wait := a.o.Shedding.CriticalWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a.critical <- struct{}{}:
		return slotTaken
	case <-t.C:
		return waitedTooLong
	case <-r.Context().Done():
		return clientLeft
	}
}
