package api

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
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
