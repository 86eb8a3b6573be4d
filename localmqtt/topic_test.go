package localmqtt

import (
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  route
		err   string // substring of the error, "" for none
	}{
		{p + "/readings/temp", route{kind: routeReading, sensor: "temp"}, ""},
		{p + "/readings/a/b", route{}, "one topic level"},
		{p + "/readings/", route{}, "empty"},
		{p + "/readings", route{}, ""},
		{p + "/kv/app/room/set", route{kind: routeSet, ns: "app", key: "room"}, ""},
		{p + "/kv/app/room/1/set", route{kind: routeSet, ns: "app", key: "room/1"}, ""},
		{p + "/kv/app/room/1/get", route{kind: routeGet, ns: "app", key: "room/1"}, ""},
		{p + "/kv/app/room/1", route{}, ""},                     // a document
		{p + "/kv/app/room/1/get/reply", route{}, ""},           // a reply
		{p + "/kv/app/room/set/x", route{}, ""},                 // a document of key "room/set/x"
		{p + "/kv/app/x/set/set", route{}, `must not be "set"`}, // key "x/set"
		{p + "/kv/app/x/get/set", route{}, `must not be "get"`},
		{p + "/kv/app/x/reply/get", route{}, `must not be "reply"`},
		{p + "/kv/app/set", route{}, "want kv/<ns>/<key>/set"},
		{p + "/kv//x/set", route{}, "namespace is empty"},
		{p + "/kv/app//x/set", route{}, "empty level"},
		{p + "/kv/app/x//set", route{}, "empty level"},
		{p + "/kv/set", route{}, ""},
		{p + "/errors", route{}, ""},
		{p, route{}, ""},
		{"edged/n2/readings/temp", route{}, ""},
		{"edged/n10/readings/temp", route{}, ""},
		{"other", route{}, ""},
	}
	for _, tt := range tests {
		got, err := parseTopic(p, tt.topic)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("parseTopic(%q) = %+v, %v; want %+v, %q", tt.topic, got, err, tt.want, tt.err)
		}
	}
}

func TestIntersects(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "b", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+/c", "a/b/+", true},
		{"a/+/c", "+/b/d", false},
		{"a/b/#", "a/+", true},
		{"a/b/#", "+/c/#", false},
		{"a", "a/b", false},
		{"a/", "a", false},
		{"a/", "a/+", true},
	}
	for _, tt := range tests {
		if got := intersects(tt.a, tt.b); got != tt.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := intersects(tt.b, tt.a); got != tt.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// FuzzParseTopic checks that a parsed input topic is exactly the topic its
// route names, and that no output of the node parses as an input.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		p + "/readings/temp", p + "/kv/app/room/1/set", p + "/kv/app/k/get",
		p + "/kv/app/k/get/reply", p + "/kv/a/set/set", p + "/kv//set", p + "/readings/a/b",
		p + "/kv/a/b/c/d/get", "x/y", "",
	} {
		f.Add(p, s)
	}
	f.Add("site/a", "site/a/kv/ns/key/set")
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		if validPrefix(prefix) != nil {
			prefix = p
		}
		r, err := parseTopic(prefix, topic)
		if err != nil {
			if r != (route{}) {
				t.Fatalf("error %v with route %+v", err, r)
			}
			return
		}
		switch r.kind {
		case routeNone:
			return
		case routeReading:
			if readingTopic(prefix, r.sensor) != topic || r.sensor == "" || strings.Contains(r.sensor, "/") {
				t.Fatalf("%q parsed as sensor %q", topic, r.sensor)
			}
			return
		}
		verb := verbSet
		if r.kind == routeGet {
			verb = verbGet
		}
		if docTopic(prefix, r.ns, r.key)+"/"+verb != topic {
			t.Fatalf("%q parsed as %+v", topic, r)
		}
		if checkNS(r.ns) != nil || checkKey(r.key) != nil {
			t.Fatalf("%q parsed as invalid %+v", topic, r)
		}
		for _, out := range []string{docTopic(prefix, r.ns, r.key), replyTopic(prefix, r.ns, r.key), errorTopic(prefix)} {
			if o, err := parseTopic(prefix, out); err != nil || o.kind != routeNone {
				t.Fatalf("output topic %q parses as input %+v, %v", out, o, err)
			}
		}
	})
}

// FuzzDocTopic checks that the document and reply topics of every key the
// node publishes are not inputs.
func FuzzDocTopic(f *testing.F) {
	f.Add("app", "room/1")
	f.Add("app", "x/set")
	f.Add("app", "get/reply")
	f.Fuzz(func(t *testing.T, ns, key string) {
		if checkNS(ns) != nil || checkKey(key) != nil {
			return
		}
		for _, out := range []string{docTopic(p, ns, key), replyTopic(p, ns, key)} {
			if r, err := parseTopic(p, out); err != nil || r.kind != routeNone {
				t.Fatalf("output topic %q parses as input %+v, %v", out, r, err)
			}
		}
		for _, verb := range []string{verbSet, verbGet} {
			r, err := parseTopic(p, docTopic(p, ns, key)+"/"+verb)
			if err != nil || r.ns != ns || r.key != key {
				t.Fatalf("%s of %q/%q parses as %+v, %v", verb, ns, key, r, err)
			}
		}
	})
}

// matches is a reference topic matcher: whether filter matches topic name.
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	var match func(f, t []string) bool
	match = func(f, t []string) bool {
		switch {
		case len(f) == 0:
			return len(t) == 0
		case f[0] == "#":
			return true
		case len(t) == 0:
			return false
		case f[0] == "+" || f[0] == t[0]:
			return match(f[1:], t[1:])
		}
		return false
	}
	return match(strings.Split(filter, "/"), strings.Split(topic, "/"))
}

// FuzzIntersects checks intersects against the reference matcher where one
// side is a topic name, and its symmetry.
func FuzzIntersects(f *testing.F) {
	f.Add("a/+/c", "a/b/c")
	f.Add("#", "$SYS/x")
	f.Add("a/#", "a")
	f.Add("+/+", "a/b/c")
	f.Fuzz(func(t *testing.T, filter, other string) {
		if !validFilter(filter) || !validFilter(other) {
			return
		}
		got := intersects(filter, other)
		if got != intersects(other, filter) {
			t.Fatalf("intersects(%q, %q) not symmetric", filter, other)
		}
		if strings.ContainsAny(other, "+#") {
			return
		}
		if want := matches(filter, other); got != want {
			t.Fatalf("intersects(%q, %q) = %v, reference says %v", filter, other, got, want)
		}
	})
}
