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

// trackedBody remembers whether a request's body was read to its end.
type trackedBody struct {
	io.ReadCloser
	done bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

// closingWriter closes an HTTP/1 connection after an answer given before
// the request's body was read to its end (a refusal, an error, a body too
// slow): Go's server would otherwise read the rest of it, at the client's
// pace, before answering and again once the handler is done. So the
// answer says Connection: close, and the connection's read deadline is
// now: what is left of the body is not waited for.
type closingWriter struct {
	http.ResponseWriter
	body        *trackedBody
	wroteHeader bool
}

func (w *closingWriter) WriteHeader(code int) {
	if !w.wroteHeader && !w.body.done {
		w.Header().Set("Connection", "close")
		http.NewResponseController(w.ResponseWriter).SetReadDeadline(time.Now())
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets watch streams through.
func (w *closingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
