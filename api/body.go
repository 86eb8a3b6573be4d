package api

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"time"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func newGzip(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }

// limitReader fails with *http.MaxBytesError once more than left bytes
// were read: the limit of a decompressed body.
type limitReader struct {
	r    io.Reader
	left int64
	lim  int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.lim == 0 {
		l.lim = l.left
	}
	if l.left <= 0 {
		return 0, &http.MaxBytesError{Limit: l.lim}
	}
	if int64(len(p)) > l.left {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, &http.MaxBytesError{Limit: l.lim}
	}
	return n, err
}

// trackedBody remembers whether a request's body was read to its end, or
// failed (a read past its deadline).
type trackedBody struct {
	io.ReadCloser
	done, failed bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
	case err != nil:
		b.failed = true
	}
	return n, err
}

// drainWriter bounds what an HTTP/1 answer given before the request's
// body was read to its end (a refusal, an error) waits for: Go's server
// reads the rest of the body (up to 256 KiB) before it answers, so that
// the connection can serve the next request, at the client's pace. A
// client that has sent its body loses nothing; one that trickles it has
// drain to send it, and then the connection is closed. After a failed
// read (the body too slow) nothing more is waited for.
type drainWriter struct {
	http.ResponseWriter
	body        *trackedBody
	drain       time.Duration
	wroteHeader bool
}

func (w *drainWriter) WriteHeader(code int) {
	if !w.wroteHeader && !w.body.done {
		deadline := time.Now().Add(w.drain)
		if w.body.failed {
			w.Header().Set("Connection", "close")
			deadline = time.Now()
		}
		http.NewResponseController(w.ResponseWriter).SetReadDeadline(deadline)
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *drainWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets watch streams through.
func (w *drainWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
