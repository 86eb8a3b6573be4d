// Package invalid describes input that edged refuses: an error that names
// the offending field, so the HTTP API can answer {"error", "field"} and
// the MQTT interface can report it on its error topic.
package invalid

import (
	"errors"
	"fmt"
)

// Error is input refused because of one field.
type Error struct {
	// Field is the path of the offending field, such as
	// "readings[3].value" or "op"; empty when the input as a whole is
	// malformed.
	Field string
	// Msg says what is wrong, for people.
	Msg string
	// Err is the cause, if any, for errors.Is and errors.As.
	Err error
}

// Wrap returns an *Error about field whose message and cause are err.
func Wrap(field string, err error) *Error {
	return &Error{Field: field, Msg: err.Error(), Err: err}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error about field.
func Errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Error returns "field: msg", or msg alone when there is no field.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// FieldOf returns the field named by the first *Error in err's chain, and
// whether there is one.
func FieldOf(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Field, true
	}
	return "", false
}

// PrefixEach returns the problems joined in err (by errors.Join), each
// prefixed with prefix, such as a configuration section's name, so that
// every message starts with the full path of its field.
func PrefixEach(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	qualified := make([]error, len(errs))
	for i, e := range errs {
		qualified[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return qualified
}
