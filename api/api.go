// Package api serves a node's local HTTP API: keys under /v1/kv, sensor
// readings (JSON on /v1/readings, InfluxDB line protocol on /write and
// /api/v2/write), time series, status, watches as server-sent events,
// health and readiness probes and Prometheus metrics. docs/openapi.yaml
// describes every route.
//
// Errors are JSON {"error": "...", "field": "..."} with a status that says
// what went wrong: 400 malformed input, 401 missing or wrong token, 404 no
// such key, 408 a body too slow, 409 type mismatch, 413 too large (a body,
// a value, or a write over a line-protocol limit), 415 wrong media type,
// 429 overloaded (shed), 503 not ready, stopping or shed for memory or
// disk, 507 out of disk or data budget. An answer given before the
// request's body was read waits 2 s at most for the rest of it.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/kv"
	"github.com/edged-dev/edged/lineproto"
	"github.com/edged-dev/edged/series"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/ui"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Body limits, before and after decompression.
const (
	maxOpBody       = kv.MaxOpBytes
	maxReadingsBody = 16 << 20
	maxWriteBody    = 32 << 20
)

// Options configure the API.
type Options struct {
	DB     *store.DB
	KV     *kv.KV
	Series *series.Series
	Hub    *kv.Hub
	// Status returns the document of GET /v1/status.
	Status func() any
	// Peers returns the document of GET /v1/peers.
	Peers func() any
	// Shedding, when set, is the admission control of every route but
	// health, metrics and status.
	Shedding *Shedding
	// Nodes returns the document of GET /v1/nodes (the aggregator's
	// nodes); nil, or a nil result, answers 404: not an aggregator.
	Nodes func() any
	// Names maps replica IDs to node names, for GET /v1/kv/…?by=node;
	// nil means none are known.
	Names func() map[string]string
	// Ready reports whether the node serves requests (GET /readyz).
	Ready func() bool
	// Pprof serves Go's profiler at /debug/pprof/, with the token if one
	// is set (see config.HTTPConfig).
	Pprof bool
	// Token, when not empty, is required as "Authorization: Bearer
	// <token>" on every route but /healthz and /readyz.
	Token string
	// Registry collects the metrics; /metrics serves Gatherer.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// BodyTimeout bounds how long a request's body may take to arrive
	// once its handler reads it, beyond a second per 128 KiB of it (its
	// Content-Length, or the route's limit): a client that trickles it
	// would otherwise hold one of the server's connections and a
	// goroutine as long as it liked. Zero means 30s.
	BodyTimeout time.Duration
	// Now is the clock for line-protocol points without a time; nil
	// means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// API is the HTTP handler of a node.
type API struct {
	o        Options
	mux      *http.ServeMux
	m        *metrics
	patterns []string // the routes, for the OpenAPI test
	// critical holds a token per critical request in flight, up to
	// Shedding.CriticalInFlight; nil without a bound.
	critical chan struct{}
	// stopping is cancelled by Shutdown.
	stopping context.Context
	stop     context.CancelFunc
}

// New returns the API for o.
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 30 * time.Second
	}
	a := &API{o: o, mux: http.NewServeMux(), m: newMetrics(o.Registry)}
	a.stopping, a.stop = context.WithCancel(context.Background())
	if s := o.Shedding; s != nil && s.CriticalInFlight > 0 {
		a.critical = make(chan struct{}, s.CriticalInFlight)
	}
	a.route("GET /healthz", a.healthz)
	a.route("GET /readyz", a.readyz)
	a.mux.Handle("GET /metrics", a.auth(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	a.patterns = append(a.patterns, "GET /metrics")
	a.route("GET /v1/status", a.status)
	a.route("GET /v1/peers", a.peers)
	a.route("GET /v1/nodes", a.nodes)
	a.route("GET /v1/kv/{ns}", a.list)
	a.route("GET /v1/kv/{ns}/{key...}", a.get)
	a.route("POST /v1/kv/{ns}/{key...}", a.post)
	a.route("DELETE /v1/kv/{ns}/{key...}", a.delete)
	a.route("POST /v1/readings", a.readings)
	a.route("POST /write", a.write)
	a.route("POST /api/v2/write", a.write)
	a.route("GET /v1/sensors", a.sensors)
	a.route("GET /v1/series/{sensor...}", a.series)
	a.route("GET /v1/watch", a.watch)
	a.route("GET /v1/backup", a.backup)
	// The dashboard's static pages need no token: they hold no data, and
	// ask for the token to call the API with.
	a.mux.Handle("GET /ui/", ui.Handler("/ui/"))
	a.mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	if o.Pprof {
		// Neither shed nor counted per route: it is for looking at a
		// node in trouble.
		a.mux.Handle("GET /debug/pprof/", a.auth(http.HandlerFunc(pprof.Index)))
		a.mux.Handle("GET /debug/pprof/cmdline", a.auth(http.HandlerFunc(pprof.Cmdline)))
		a.mux.Handle("GET /debug/pprof/profile", a.auth(a.endOnShutdown(pprof.Profile)))
		a.mux.Handle("GET /debug/pprof/symbol", a.auth(http.HandlerFunc(pprof.Symbol)))
		a.mux.Handle("POST /debug/pprof/symbol", a.auth(http.HandlerFunc(pprof.Symbol)))
		a.mux.Handle("GET /debug/pprof/trace", a.auth(a.endOnShutdown(pprof.Trace)))
	}
	return a
}

// Shutdown ends the requests that would otherwise hold the server's
// shutdown for as long as they asked to run: profiles and traces, which
// answer with what they recorded so far, and watch streams. Register it
// with http.Server.RegisterOnShutdown.
func (a *API) Shutdown() { a.stop() }

// endOnShutdown serves h with a request context that Shutdown cancels too.
func (a *API) endOnShutdown(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(a.stopping, cancel)()
		h(w, r.WithContext(ctx))
	}
}

// ServeHTTP serves a request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		b := &trackedBody{ReadCloser: r.Body}
		r.Body = b
		w = &drainWriter{ResponseWriter: w, body: b, drain: min(maxDrain, a.o.BodyTimeout)}
	}
	a.mux.ServeHTTP(w, r)
}

// handler is a route's handler: it returns an error to answer with.
type handler func(w http.ResponseWriter, r *http.Request) error

// route registers h under pattern with authentication, metrics and error
// answers.
func (a *API) route(pattern string, h handler) {
	open := pattern == "GET /healthz" || pattern == "GET /readyz"
	hh := a.admit(kindOf(pattern), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	}))
	if !open {
		hh = a.auth(hh) // before admission: a request without the token takes no slot
	}
	a.mux.Handle(pattern, a.m.instrument(pattern, hh))
	a.patterns = append(a.patterns, pattern)
}

// auth requires the bearer token, when there is one.
func (a *API) auth(next http.Handler) http.Handler {
	if a.o.Token == "" {
		return next
	}
	want := []byte(a.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// "Bearer" is the API's scheme; "Token" is what InfluxDB
		// clients (Telegraf's influxdb_v2 output) send. Schemes are
		// case-insensitive (RFC 9110 §11.1).
		h := r.Header.Get("Authorization")
		scheme, got, _ := strings.Cut(h, " ")
		got = strings.TrimLeft(got, " ") // 1*SP
		if (!strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "Token")) || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edged"`)
			a.writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token (Authorization: Bearer <token from http.token_file>)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, lineproto.ErrLimit):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, new(*invalid.Error)), errors.Is(err, store.ErrInvalidName), errors.Is(err, crdt.ErrInvalidReading):
		return http.StatusBadRequest
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, kv.ErrNotFound), errors.Is(err, errNotAggregator):
		return http.StatusNotFound
	case errors.Is(err, engine.ErrTypeMismatch), errors.Is(err, crdt.ErrOverflow):
		return http.StatusConflict
	case errors.As(err, &mbe), errors.Is(err, store.ErrTooLarge), errors.Is(err, store.ErrTxnTooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrDiskFull), errors.Is(err, store.ErrBudget):
		return http.StatusInsufficientStorage
	case errors.Is(err, engine.ErrStopped), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrFailed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers with err.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	body := errorBody{Error: err.Error()}
	body.Field, _ = invalid.FieldOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		body.Error = "request body over the limit of " + itoa(mbe.Limit) + " bytes"
	}
	switch code {
	case http.StatusInternalServerError:
		a.o.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		body.Error = "internal error: " + err.Error()
	case http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		w.Header().Set("Retry-After", "10")
	}
	a.writeJSON(w, code, body)
}

func (a *API) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The status is sent; a value that does not encode is a bug to see.
	if err := json.NewEncoder(w).Encode(v); err != nil {
		a.o.Logger.Error("http answer not encoded", "err", err)
	}
}

var (
	errMediaType   = errors.New("unsupported media type")
	errBodyTimeout = errors.New("request body too slow")
)

// body reads a request body of at most limit bytes (after gzip
// decompression when the client sent Content-Encoding: gzip) whose media
// type is one of types, or absent, within the body timeout.
func (a *API) body(w http.ResponseWriter, r *http.Request, limit int64, types ...string) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ok := false
		for _, t := range types {
			ok = ok || (err == nil && mt == t)
		}
		if !ok {
			return nil, fmt.Errorf("%w: Content-Type %q, want %s", errMediaType, ct, strings.Join(types, " or "))
		}
	}
	// The deadline is the connection's, set before the first byte is
	// read (a gzip header included), and lifted once the body is in, so
	// that a handler waiting for a commit is not cut short. A recorder,
	// in tests, has no connection and no deadline.
	size := limit
	if r.ContentLength > 0 {
		size = min(r.ContentLength, limit)
	}
	within := a.o.BodyTimeout + time.Duration(size/bodyRate)*time.Second
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(within)) == nil
	b, err := readBody(w, r, limit)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return nil, fmt.Errorf("%w: the body did not arrive within %s", errBodyTimeout, within)
	}
	if err == nil && deadline {
		rc.SetReadDeadline(time.Time{})
	}
	return b, err
}

// maxDrain bounds how long the server waits for the rest of a body it
// answered without reading (see drainWriter): 256 KiB, the most it reads,
// at bodyRate.
const maxDrain = 2 * time.Second

// bodyRate is the slowest a body may arrive at, in bytes a second, once
// the body timeout is spent.
const bodyRate = 128 << 10

// readBody reads r's body of at most limit bytes, after gzip
// decompression when the client sent Content-Encoding: gzip.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	// Content codings are case-insensitive (RFC 9110 §8.4.1).
	switch enc := r.Header.Get("Content-Encoding"); {
	case enc == "", strings.EqualFold(enc, "identity"):
	case strings.EqualFold(enc, "gzip"):
		zr, err := newGzip(rd)
		if err != nil {
			return nil, gzipError(err)
		}
		b, err := io.ReadAll(&limitReader{r: zr, left: limit})
		return b, gzipError(err)
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q, want gzip or none", errMediaType, enc)
	}
	return io.ReadAll(rd)
}

// gzipError returns err, from reading a gzip body, as the client's
// malformed input (400): a bad header, corrupt data, a wrong checksum, a
// truncated stream or bytes after it. Errors of the connection (a
// timeout) and of the body's limit are returned as they are.
func gzipError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return err
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return err
	}
	return &invalid.Error{Msg: "gzip body: " + err.Error(), Err: err}
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) error {
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (a *API) readyz(w http.ResponseWriter, _ *http.Request) error {
	if a.o.Ready != nil && !a.o.Ready() {
		a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return nil
	}
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (a *API) status(w http.ResponseWriter, _ *http.Request) error {
	a.writeJSON(w, http.StatusOK, a.o.Status())
	return nil
}

func (a *API) peers(w http.ResponseWriter, _ *http.Request) error {
	a.writeJSON(w, http.StatusOK, map[string]any{"peers": a.o.Peers()})
	return nil
}

// errNotAggregator answers GET /v1/nodes on a node.
var errNotAggregator = errors.New("not an aggregator: GET /v1/nodes is served by edged aggregate")

// nodes answers with the aggregator's nodes.
func (a *API) nodes(w http.ResponseWriter, _ *http.Request) error {
	var doc any
	if a.o.Nodes != nil {
		doc = a.o.Nodes()
	}
	if doc == nil {
		return errNotAggregator
	}
	a.writeJSON(w, http.StatusOK, doc)
	return nil
}

// backup streams a consistent snapshot of the store (edged backup uses it
// while the node runs). A failure midway cuts the stream before its end
// trailer (store.Backup), so the client sees a truncated backup, which
// edged backup and restore refuse.
func (a *API) backup(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := a.o.DB.Backup(w); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}
