package kv

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/engine/enginetest"
	"github.com/edged-dev/edged/invalid"
)

func newKV(t *testing.T, hub *Hub) *KV {
	t.Helper()
	cfg := engine.Config{}
	if hub != nil {
		cfg.OnCommit = hub.Notify
	}
	db, eng := enginetest.Start(t, 1, cfg)
	return New(db, eng)
}

func TestOperationsAndTheirValues(t *testing.T) {
	k := newKV(t, nil)
	ctx := context.Background()
	for _, c := range []struct {
		key, op, typ, want string
	}{
		{"c", `{"type":"counter","op":"inc","by":5}`, "counter", `5`},
		{"c", `{"type":"counter","op":"dec"}`, "counter", `4`},
		{"c", `{"type":"counter","op":"inc","by":null}`, "counter", `5`},
		{"r", `{"type":"register","op":"set","value":{"a": [1, 2]}}`, "register", `{"a":[1,2]}`},
		{"mv", `{"type":"mvregister","op":"set","value":"x"}`, "mvregister", `["x"]`},
		{"s", `{"type":"set","op":"add","elems":["b","a",3]}`, "set", `["a","b",3]`},
		{"s", `{"type":"set","op":"remove","elems":["a"]}`, "set", `["b",3]`},
		{"m", `{"type":"map","op":"set","field":"name","value":"pump"}`, "map", `{"name":"pump"}`},
		{"m", `{"type":"map","op":"inc","field":"runs","by":2}`, "map", `{"name":"pump","runs":2}`},
		{"m", `{"type":"map","op":"remove","field":"name"}`, "map", `{"runs":2}`},
		{"f", `{"type":"flag","op":"enable"}`, "flag", `true`},
		{"f", `{"type":"flag","op":"disable"}`, "flag", `false`},
	} {
		d, err := k.Do(ctx, "app", c.key, []byte(c.op))
		if err != nil {
			t.Fatalf("%s %s: %v", c.key, c.op, err)
		}
		if d.NS != "app" || d.Key != c.key || d.Type != c.typ || string(d.Value) != c.want {
			t.Errorf("%s %s = %+v (value %s), want type %s value %s", c.key, c.op, d, d.Value, c.typ, c.want)
		}
	}
	if _, err := k.Do(ctx, "app", "c", []byte(`{"type":"register","op":"set","value":1}`)); !errors.Is(err, engine.ErrTypeMismatch) {
		t.Errorf("register op on a counter: %v, want ErrTypeMismatch", err)
	}
	if err := k.Delete(ctx, "app", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get("app", "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	var keys []string
	more, err := k.List("app", "", "", 2, func(d Doc) error { keys = append(keys, d.Key); return nil })
	if err != nil || !more || len(keys) != 2 || keys[0] != "m" || keys[1] != "mv" {
		t.Fatalf("List page 1 = %v more=%v %v", keys, more, err)
	}
	keys = nil
	k.List("app", "s", "f", 10, func(d Doc) error { keys = append(keys, d.Key); return nil })
	if len(keys) != 1 || keys[0] != "s" {
		t.Errorf("List with prefix s after f (which sorts before it) = %v, want [s]", keys)
	}
	keys = nil
	more, _ = k.List("app", "", "m", 10, func(d Doc) error { keys = append(keys, d.Key); return nil })
	if more || len(keys) != 3 || keys[0] != "mv" || keys[2] != "s" {
		t.Fatalf("List after m = %v more=%v", keys, more)
	}
}

func TestDecodeOpErrorsNameTheField(t *testing.T) {
	for _, c := range []struct{ op, field string }{
		{`{"type":"counter","op":"inc","by":0}`, "by"},
		{`{"type":"counter","op":"inc","by":"1"}`, "by"},
		{`{"type":"counter","op":"mul"}`, "op"},
		{`{"type":"register","op":"set"}`, "value"},
		{`{"type":"set","op":"add"}`, "elems"},
		{`{"type":"set","op":"add","elems":[1,]}`, ""},
		{`{"type":"map","op":"set","value":1}`, "field"},
		{`{"type":"tree","op":"set"}`, "type"},
		{`{"op":"set"}`, "type"},
		{`{"type":"flag","op":"enable","vaule":1}`, ""},
		{`{"type":"flag","op":"enable"} {}`, ""},
		// Members that the operation does not take.
		{`{"type":"counter","op":"inc","value":5}`, "value"},
		{`{"type":"counter","op":"inc","elems":[5]}`, "elems"},
		{`{"type":"counter","op":"dec","field":""}`, "field"},
		{`{"type":"counter","op":"mul","value":5}`, "op"},
		{`{"type":"flag","op":"enable","value":false}`, "value"},
		{`{"type":"flag","op":"disable","by":null}`, "by"},
		{`{"type":"register","op":"set","value":1,"field":"x"}`, "field"},
		{`{"type":"mvregister","op":"set","value":1,"by":1}`, "by"},
		{`{"type":"set","op":"add","elems":[1],"by":3}`, "by"},
		{`{"type":"set","op":"remove","elems":[1],"value":1}`, "value"},
		{`{"type":"map","op":"set","field":"f","value":1,"by":2}`, "by"},
		{`{"type":"map","op":"inc","field":"f","value":2}`, "value"},
		{`{"type":"map","op":"remove","field":"f","value":null}`, "value"},
		{`{"type":"map","op":"remove","field":"f","elems":[]}`, "elems"},
		{`{"type":"flag","op":"enable"}}`, ""},
		{`{"type":"flag","op":"enable"}]`, ""},
		{`{"type":"flag","op":"enable"}]]]}`, ""},
		{`{"type":"flag","op":"enable"} x`, ""},
	} {
		_, err := DecodeOp("app/k", []byte(c.op))
		if f, ok := invalid.FieldOf(err); !ok || f != c.field {
			t.Errorf("DecodeOp(%s) = %v, want an error about %q", c.op, err, c.field)
		}
	}
	for _, c := range []struct{ ns, key string }{{"", "k"}, {"App", "k"}, {"_r", "k"}, {"a", ""}, {"a", "x\ny"}, {"a", "b//c"}, {"a", "../x"}, {"a", "x/."}} {
		if _, err := Name(c.ns, c.key); err == nil {
			t.Errorf("Name(%q, %q) accepted", c.ns, c.key)
		}
	}
}

func TestHubDeliversAndDropsLaggards(t *testing.T) {
	hub := NewHub()
	fast := hub.Watch("app/", 10)
	slow := hub.Watch("", 1)
	hub.Notify([]string{"app/a", "_l/x", "other/b", "app/a//b", "app/x\x01", "app/./c"})
	if c := <-fast.C; c != (Change{"app", "a"}) {
		t.Errorf("fast got %v", c)
	}
	if len(fast.C) != 0 {
		t.Errorf("a change outside the prefix or the user namespaces, or to a name that is not a key, was delivered: %v", <-fast.C)
	}
	<-slow.C
	if _, open := <-slow.C; open || !hub.Lagged(slow) {
		t.Error("a watcher that fell behind was not dropped")
	}
	hub.Stop(fast)
	hub.Stop(fast)
}

// takes lists the members each operation takes besides type and op, as
// docs/API.md documents them: a reference for FuzzDecodeOp.
var takes = map[string][]string{
	"counter inc": {"by"}, "counter dec": {"by"},
	"register set": {"value"}, "mvregister set": {"value"},
	"set add": {"elems"}, "set remove": {"elems"},
	"map set": {"field", "value"}, "map inc": {"field", "by"}, "map dec": {"field", "by"}, "map remove": {"field"},
	"flag enable": nil, "flag disable": nil,
}

func FuzzDecodeOp(f *testing.F) {
	for _, s := range []string{`{"type":"counter","op":"inc","by":5}`, `{"type":"map","op":"set","field":"a","value":[1,{"b":null}]}`,
		`{"type":"set","op":"add","elems":["a",1.5e3]}`, `{"type":"flag","op":"enable"}`, `{"type":"mvregister","op":"set","value":"\u00e9"}`,
		`{"type":"flag","op":"enable"}}`, `{"type":"flag","op":"enable"}]`, "{\"type\":\"flag\",\"op\":\"enable\"} \r\n\t",
		`{"type":"counter","op":"inc","value":5}`, `{"type":"map","op":"remove","field":"f","value":null}`, `{"TYPE":"counter","Op":"dec","By":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := DecodeOp("app/k", b)
		if err != nil {
			if _, ok := invalid.FieldOf(err); !ok {
				t.Fatalf("error %v is not an *invalid.Error", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted %q, which is not JSON", b)
		}
		// Every member is one the operation takes, matched as
		// encoding/json matches them (case-insensitively).
		var head struct{ Type, Op string }
		var members map[string]json.RawMessage
		if json.Unmarshal(b, &head) != nil || json.Unmarshal(b, &members) != nil {
			t.Fatalf("accepted %q, which is not a JSON object", b)
		}
		uses, ok := takes[head.Type+" "+head.Op]
		if !ok {
			t.Fatalf("accepted %q, a %s %s", b, head.Type, head.Op)
		}
		for m := range members {
			known := strings.EqualFold(m, "type") || strings.EqualFold(m, "op") ||
				slices.ContainsFunc(uses, func(u string) bool { return strings.EqualFold(m, u) })
			if !known {
				t.Fatalf("accepted %q, whose %q a %s %s does not take", b, m, head.Type, head.Op)
			}
		}
		if op.Name != "app/k" || op.Mutate == nil {
			t.Fatalf("decoded op %+v", op)
		}
	})
}
