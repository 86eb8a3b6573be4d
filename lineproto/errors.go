package lineproto

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Test for them with errors.Is; the returned
// errors wrap them with details.
var (
	// ErrSyntax: the body is not valid line protocol. A *SyntaxError wraps it.
	ErrSyntax = errors.New("lineproto: invalid line protocol")
	// ErrLimit: the body exceeds one of the Limits. A *SyntaxError wraps it.
	ErrLimit = errors.New("lineproto: limit exceeded")
	// ErrPrecision: an unknown precision name or Precision value.
	ErrPrecision = errors.New("lineproto: unknown precision")
	// ErrEncode: a point that AppendPoint cannot write as valid line
	// protocol (an empty or invalid name, a non-finite float, ...).
	ErrEncode = errors.New("lineproto: cannot encode point")
)

// SyntaxError is what is wrong with a body, and where. Parse returns it for
// every problem with the body itself.
type SyntaxError struct {
	// Line is the 1-based physical line of the problem (newlines inside
	// string values count).
	Line int
	// Col is the 1-based byte column of the problem within Line.
	Col int
	// Msg says what is wrong, for example `field "usage" value: invalid
	// number "1.2.3"`.
	Msg string
	// Err is ErrLimit when a limit is exceeded, ErrSyntax otherwise.
	Err error
}

// Error returns "line <Line>: <Msg>".
func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Unwrap returns e.Err.
func (e *SyntaxError) Unwrap() error { return e.Err }
