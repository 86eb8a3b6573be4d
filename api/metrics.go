package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ops      *prometheus.CounterVec
	readings *prometheus.CounterVec
	skipped  prometheus.Counter
	watchers prometheus.Gauge
	// downsampled counts readings kept as summaries only (shedding).
	downsampled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edged_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_kv_ops_total", Help: "Key operations applied over HTTP, by key type (or delete).",
		}, []string{"type"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_readings_ingested_total", Help: "Readings stored over HTTP, by format (json, line).",
		}, []string{"format"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_readings_skipped_fields_total", Help: "Line-protocol string fields skipped (not numbers).",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_http_watchers", Help: "Open /v1/watch streams.",
		}),
		downsampled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_readings_downsampled_total", Help: "Readings kept as minute summaries only, the node shedding load.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.ops, m.readings, m.skipped, m.watchers, m.downsampled)
	}
	return m
}

// instrument counts and times the requests of one route.
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush lets watch streams through.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (the body's
// read deadline).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
