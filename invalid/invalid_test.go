package invalid

import (
	"errors"
	"fmt"
	"testing"
)

func TestFieldOfAndWrap(t *testing.T) {
	cause := errors.New("limit")
	err := fmt.Errorf("request: %w", Wrap("readings", cause))
	if f, ok := FieldOf(err); !ok || f != "readings" {
		t.Errorf("FieldOf = %q, %v", f, ok)
	}
	if !errors.Is(err, cause) {
		t.Error("Wrap lost its cause")
	}
	if got := Errorf("", "bad %d", 1).Error(); got != "bad 1" {
		t.Errorf("Error() = %q", got)
	}
	if got := Errorf("op", "missing").Error(); got != "op: missing" {
		t.Errorf("Error() = %q", got)
	}
	if _, ok := FieldOf(cause); ok {
		t.Error("FieldOf found a field in a plain error")
	}
}
