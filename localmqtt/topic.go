package localmqtt

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Topic levels after the prefix.
const (
	levelReadings = "readings"
	levelKV       = "kv"
	levelErrors   = "errors"
	verbSet       = "set"
	verbGet       = "get"
	levelReply    = "reply"
)

// routeKind says what an input topic asks for.
type routeKind int

const (
	routeNone    routeKind = iota // not an input of the node
	routeReading                  // <p>/readings/<sensor>
	routeSet                      // <p>/kv/<ns>/<key>/set
	routeGet                      // <p>/kv/<ns>/<key>/get
)

func (k routeKind) String() string {
	switch k {
	case routeReading:
		return "reading"
	case routeSet:
		return "set"
	case routeGet:
		return "get"
	default:
		return "none"
	}
}

// route is a parsed input topic.
type route struct {
	kind   routeKind
	sensor string // routeReading
	ns     string // routeSet, routeGet
	key    string // routeSet, routeGet; one or more levels
}

// parseTopic parses topic, a topic name, against the prefix p. A topic that
// is not an input (outside <p>/readings/ and <p>/kv/, or under <p>/kv/ but
// not ending in /set or /get) yields routeNone and no error. An input topic
// that names no valid sensor or key yields an error saying why.
func parseTopic(p, topic string) (route, error) {
	rest, ok := strings.CutPrefix(topic, p+"/")
	if !ok {
		return route{}, nil
	}
	if sensor, ok := strings.CutPrefix(rest, levelReadings+"/"); ok {
		if err := CheckSensor(sensor); err != nil {
			return route{}, err
		}
		return route{kind: routeReading, sensor: sensor}, nil
	}
	rest, ok = strings.CutPrefix(rest, levelKV+"/")
	if !ok {
		return route{}, nil
	}
	var kind routeKind
	var nsKey string
	if s, ok := strings.CutSuffix(rest, "/"+verbSet); ok {
		kind, nsKey = routeSet, s
	} else if s, ok := strings.CutSuffix(rest, "/"+verbGet); ok {
		kind, nsKey = routeGet, s
	} else {
		return route{}, nil // a document, a reply, or something else
	}
	ns, key, ok := strings.Cut(nsKey, "/")
	if !ok || key == "" {
		return route{}, fmt.Errorf("want %s/<ns>/<key>/%s", levelKV, kind)
	}
	if err := checkNS(ns); err != nil {
		return route{}, err
	}
	if err := checkKey(key); err != nil {
		return route{}, err
	}
	return route{kind: kind, ns: ns, key: key}, nil
}

// CheckSensor reports why name cannot be the sensor level of a readings
// topic (<prefix>/readings/<sensor>), or nil. A sensor whose name fails
// never has a reading taken over MQTT.
func CheckSensor(name string) error {
	switch {
	case name == "":
		return errors.New("sensor name is empty")
	case strings.Contains(name, "/"):
		return errors.New("sensor name must be one topic level")
	case !validTopicText(name):
		return errors.New("sensor name contains a wildcard, NUL or invalid UTF-8")
	}
	return nil
}

// checkNS reports whether ns can be a namespace level of a topic.
func checkNS(ns string) error {
	if ns == "" {
		return errors.New("namespace is empty")
	}
	if strings.Contains(ns, "/") {
		return errors.New("namespace must be one topic level")
	}
	if !validTopicText(ns) {
		return errors.New("namespace contains a wildcard, NUL or invalid UTF-8")
	}
	return nil
}

// checkKey reports whether key can be the key levels of a topic, with no
// topic of one key looking like an input or reply of another.
func checkKey(key string) error {
	if !validTopicText(key) {
		return errors.New("key contains a wildcard, NUL or invalid UTF-8")
	}
	levels := strings.Split(key, "/")
	for _, l := range levels {
		if l == "" {
			return errors.New("key has an empty level")
		}
	}
	switch last := levels[len(levels)-1]; last {
	case verbSet, verbGet, levelReply:
		return fmt.Errorf("key's last level must not be %q", last)
	}
	return nil
}

// validTopicText reports whether s may appear in a topic name: UTF-8, with
// no wildcard and no NUL.
func validTopicText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "+#\x00")
}

// readingTopic is the input topic of sensor.
func readingTopic(p, sensor string) string {
	return p + "/" + levelReadings + "/" + sensor
}

// docTopic is the topic a key's document is published on, retained.
func docTopic(p, ns, key string) string {
	return p + "/" + levelKV + "/" + ns + "/" + key
}

// replyTopic is the topic a get from an MQTT 3.1.1 client is answered on.
func replyTopic(p, ns, key string) string {
	return docTopic(p, ns, key) + "/" + verbGet + "/" + levelReply
}

// errorTopic is where refused and failed inputs are reported.
func errorTopic(p string) string {
	return p + "/" + levelErrors
}

// validPrefix reports why p cannot be a topic prefix, or nil.
func validPrefix(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case !validTopicText(p):
		return errors.New("must not contain +, #, NUL or invalid UTF-8")
	case strings.HasPrefix(p, "$"):
		return errors.New("must not start with $")
	case len(p) > 1024:
		return errors.New("must be at most 1024 bytes")
	}
	for l := range strings.SplitSeq(p, "/") {
		if l == "" {
			return errors.New("must not have empty levels (leading, trailing or double '/')")
		}
	}
	return nil
}

// validFilter reports whether f is a valid MQTT topic filter: non-empty,
// UTF-8, no NUL, '+' only as a whole level, '#' only as the whole last
// level.
func validFilter(f string) bool {
	if f == "" || len(f) > 65535 || !utf8.ValidString(f) || strings.Contains(f, "\x00") {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return false
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}

// intersects reports whether some topic name matches both topic filters a
// and b. A topic name is a filter without wildcards, so intersects(filter,
// topic) is whether filter matches topic. As MQTT requires, a filter
// starting with a wildcard does not match a topic starting with '$'.
func intersects(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	if dollar(as[0]) && wildcard(bs[0]) || dollar(bs[0]) && wildcard(as[0]) {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(as) && i == len(bs):
			return true
		case i == len(as):
			return len(bs) == i+1 && bs[i] == "#" // "a/#" matches "a"
		case i == len(bs):
			return len(as) == i+1 && as[i] == "#"
		case as[i] == "#" || bs[i] == "#":
			return true
		case as[i] == "+" || bs[i] == "+" || as[i] == bs[i]:
		default:
			return false
		}
	}
}

func dollar(level string) bool   { return strings.HasPrefix(level, "$") }
func wildcard(level string) bool { return level == "+" || level == "#" }

// stripShare returns the filter of a shared subscription
// "$share/<group>/<filter>", or f itself.
func stripShare(f string) string {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if _, filter, ok := strings.Cut(rest, "/"); ok {
			return filter
		}
	}
	return f
}
