package cborcheck

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestLengths(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		bad  bool
	}{
		{"array 2^32", []byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0}, true},
		{"array 2^32+1 with its item", []byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 1, 0x01}, true},
		{"map 2^31", []byte{0xba, 0x80, 0, 0, 0}, true},
		{"bytes 2^32", []byte{0x5b, 0, 0, 0, 1, 0, 0, 0, 0}, true},
		{"nested: context prefix 2^32", []byte{0xa1, 0x01, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0}, true},
		{"in a tag", []byte{0xc2, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0}, true},
		{"after a string that holds the pattern", []byte{0x82, 0x49, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 0x01}, false},
		{"array 2^31-1, truncated", []byte{0x9a, 0x7f, 0xff, 0xff, 0xff}, false},
		{"empty", nil, false},
		{"truncated head", []byte{0x9b, 0, 0}, false},
	} {
		err := Lengths(tc.b)
		if tc.bad != errors.Is(err, ErrLength) || (!tc.bad && err != nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	ok, _ := cbor.Marshal(map[int]any{1: []any{"x", []byte("yz"), map[string]int{"a": 1}}, 2: uint64(1) << 40})
	if err := Lengths(ok); err != nil {
		t.Errorf("a valid encoding: %v", err)
	}
}

func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		end  int // -1: ErrMalformed
	}{
		{"uint", []byte{0x18, 0x20, 0xff}, 2},
		{"nested", []byte{0xa1, 0x01, 0x82, 0x41, 0x00, 0x60, 0x01}, 6},
		{"tag", []byte{0xc2, 0x41, 0x00}, 3},
		{"deep", append(bytes.Repeat([]byte{0x81}, 1<<16), 0x00), 1<<16 + 1},
		{"truncated string", []byte{0x42, 0x00}, -1},
		{"truncated array", []byte{0x82, 0x00}, -1},
		{"count over what is left", []byte{0x9a, 0xff, 0xff, 0xff, 0xff, 0x00}, -1},
		{"indefinite", []byte{0x9f, 0xff}, -1},
		{"empty", nil, -1},
	} {
		end, err := Skip(tc.b, 0)
		switch {
		case tc.end < 0 && !errors.Is(err, ErrMalformed):
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		case tc.end >= 0 && (err != nil || end != tc.end):
			t.Errorf("%s: %d, %v; want %d", tc.name, end, err, tc.end)
		}
	}
	major, arg, next, err := Head([]byte{0x00, 0x9a, 0, 1, 0, 0}, 1)
	if major != 4 || arg != 1<<16 || next != 6 || err != nil {
		t.Errorf("Head: %d %d %d %v", major, arg, next, err)
	}
}

func FuzzLengths(f *testing.F) {
	f.Add([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0xa1, 0x01, 0x82, 0x41, 0x00, 0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := Lengths(b); err != nil && !errors.Is(err, ErrLength) {
			t.Fatalf("an error that is not ErrLength: %v", err)
		}
		// What Skip walks whole, the decoder finds well-formed (or
		// refuses for its own limits, never for being truncated).
		end, err := Skip(b, 0)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Skip: an error that is not ErrMalformed: %v", err)
			}
			return
		}
		if end <= 0 || end > len(b) {
			t.Fatalf("Skip: end %d of %d bytes", end, len(b))
		}
		var v any
		if err := cbor.Unmarshal(b[:end], &v); err != nil && strings.Contains(err.Error(), "unexpected EOF") {
			t.Fatalf("Skip walked %d bytes the decoder finds truncated: %v", end, err)
		}
	})
}
