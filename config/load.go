package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edged-dev/edged/invalid"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path over Default, as Parse does, and
// prefixes each problem with the path. It does not apply the environment or
// validate the result.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, errors.Join(invalid.PrefixEach(path+": ", err)...)
	}
	return cfg, nil
}

// Parse decodes a YAML document over Default: fields that data leaves out
// keep their defaults, and an empty document yields Default. Unknown fields
// and values of the wrong type are errors; each problem is reported, joined
// with errors.Join, with its field path and line:
// `http.adress: unknown field (line 4)`. The file is one document: a
// second (after ---) is an error. Parse does not validate the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&cfg)
	if errors.Is(err, io.EOF) {
		return cfg, nil
	}
	if typeErr, ok := errors.AsType[*yaml.TypeError](err); ok {
		return Config{}, describe(data, typeErr)
	}
	if err != nil {
		return Config{}, err
	}
	// A second document would be skipped, unknown fields and all; an
	// empty one (a trailing ---) holds nothing to skip.
	for {
		var more yaml.Node
		switch err := dec.Decode(&more); {
		case errors.Is(err, io.EOF):
			return cfg, nil
		case err != nil:
			return Config{}, err
		case !emptyDocument(&more):
			return Config{}, fmt.Errorf("a second YAML document at line %d (---): the configuration is one document", more.Line)
		}
	}
}

// emptyDocument reports whether doc holds nothing but null.
func emptyDocument(doc *yaml.Node) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!null" {
			return false
		}
	}
	return true
}

// describe turns the messages of a yaml.TypeError, such as "line 4: field
// adress not found in type config.HTTPConfig", into errors that name the
// field path: "http.adress: unknown field (line 4)". The decoder reports
// only line numbers, so the path is that of the key on that line; in
// flow-style mappings, with several keys on a line, it is the line's last.
func describe(data []byte, typeErr *yaml.TypeError) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return typeErr // cannot happen: data has just been decoded
	}
	paths := make(map[int]string)
	keyPaths(&root, "", paths)

	errs := make([]error, len(typeErr.Errors))
	for i, msg := range typeErr.Errors {
		var line int
		_, detail, found := strings.Cut(msg, ": ")
		if _, err := fmt.Sscanf(msg, "line %d:", &line); err != nil || !found {
			errs[i] = errors.New(msg)
			continue
		}
		if strings.HasPrefix(detail, "field ") && strings.Contains(detail, " not found in type ") {
			detail = "unknown field"
		}
		if path, ok := paths[line]; ok {
			errs[i] = fmt.Errorf("%s: %s (line %d)", path, detail, line)
		} else {
			errs[i] = fmt.Errorf("line %d: %s", line, detail)
		}
	}
	return errors.Join(errs...)
}

// keyPaths records in paths the dotted path of every mapping key under n,
// by the key's line.
func keyPaths(n *yaml.Node, prefix string, paths map[int]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, paths)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			path := key.Value
			if prefix != "" {
				path = prefix + "." + key.Value
			}
			paths[key.Line] = path
			keyPaths(value, path, paths)
		}
	}
}
