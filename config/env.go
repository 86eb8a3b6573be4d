package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ApplyEnv overrides fields of c from environment variables, which it reads
// with lookup (os.LookupEnv in the edged binary). Every leaf field has a
// variable: EDGED_ followed by its YAML path upper-cased and joined with
// '_', so http.addr is EDGED_HTTP_ADDR and shutdown_timeout is
// EDGED_SHUTDOWN_TIMEOUT. A variable that is set overrides its field, even
// when empty. Values are written as in the YAML file, durations as "10s".
//
// Lists (sensor adapters, MQTT users, peers) and maps (namespace scopes)
// are set in the file only: one variable cannot hold a list of records. A
// variable set for one is an error, not ignored.
//
// Each value that does not parse is reported, naming the variable, and
// leaves its field unchanged. ApplyEnv does not validate the result.
func (c *Config) ApplyEnv(lookup func(name string) (string, bool)) error {
	var errs []error
	leaves(reflect.ValueOf(c).Elem(), nil, func(path []string, field reflect.Value) {
		name := "EDGED_" + strings.ToUpper(strings.Join(path, "_"))
		value, ok := lookup(name)
		if !ok {
			return
		}
		if !fromText(field) {
			errs = append(errs, fmt.Errorf("%s: %s is a list or map, set in the configuration file only", name, strings.Join(path, ".")))
			return
		}
		if err := setText(field, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q for %s (want %s)", name, value, strings.Join(path, "."), field.Type()))
		}
	})
	return errors.Join(errs...)
}

// leaves calls fn with the YAML path and the value of every leaf field of
// the struct v, in declaration order. A field of struct type is a section
// and is walked; any other field is a leaf.
func leaves(v reflect.Value, path []string, fn func(path []string, field reflect.Value)) {
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		fieldPath := append(slices.Clip(path), name)
		if field := v.Field(i); field.Kind() == reflect.Struct {
			leaves(field, fieldPath, fn)
		} else {
			fn(fieldPath, field)
		}
	}
}

// fromText reports whether a leaf field can be set from one variable's
// text: lists and maps cannot.
func fromText(field reflect.Value) bool {
	k := field.Kind()
	return k != reflect.Slice && k != reflect.Map
}

// setText sets the leaf field from its text form. It supports the kinds a
// configuration field may sensibly have; a test checks that every field of
// Config is one of them.
func setText(field reflect.Value, text string) error {
	if field.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(text)
		if err != nil {
			return err
		}
		field.SetInt(int64(d))
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, field.Type().Bits())
		if err != nil {
			return err
		}
		field.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(text, 10, field.Type().Bits())
		if err != nil {
			return err
		}
		field.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(text, field.Type().Bits())
		if err != nil {
			return err
		}
		field.SetFloat(f)
	default:
		return fmt.Errorf("unsupported type %s", field.Type())
	}
	return nil
}
