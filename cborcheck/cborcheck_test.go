package cborcheck

import (
	"errors"
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

func FuzzLengths(f *testing.F) {
	f.Add([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0xa1, 0x01, 0x82, 0x41, 0x00, 0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := Lengths(b); err != nil && !errors.Is(err, ErrLength) {
			t.Fatalf("an error that is not ErrLength: %v", err)
		}
	})
}
