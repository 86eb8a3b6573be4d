package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodesReplicate runs three nodes, b dialing a and c dialing b, writes
// every type on each over HTTP and waits until all three answer the same.
func TestNodesReplicate(t *testing.T) {
	start := func(peers ...string) (*client, *Node) {
		var node *Node
		c := startNode(t, func(n *Node) {
			n.cfg.P2P.Addr = "/ip4/127.0.0.1/tcp/0"
			n.cfg.P2P.Peers = peers
			n.cfg.P2P.Tick = 20 * time.Millisecond
			node = n
		})
		return c, node
	}
	a, an := start()
	b, bn := start(an.P2PAddrs()[0])
	c, _ := start(bn.P2PAddrs()[0])
	for i, cl := range []*client{a, b, c} {
		cl.expect("POST", "/v1/kv/app/visits", `{"type":"counter","op":"inc","by":`+fmt.Sprint(i+1)+`}`, 200, "")
		cl.expect("POST", "/v1/kv/app/members", `{"type":"set","op":"add","elems":["n`+fmt.Sprint(i)+`"]}`, 200, "")
		cl.expect("POST", "/v1/kv/app/cfg", `{"type":"map","op":"set","field":"f`+fmt.Sprint(i)+`","value":true}`, 200, "")
		cl.expect("POST", "/v1/kv/app/mode", `{"type":"mvregister","op":"set","value":"m`+fmt.Sprint(i)+`"}`, 200, "")
		cl.expect("POST", "/v1/kv/app/on", `{"type":"flag","op":"enable"}`, 200, "")
		cl.expect("POST", "/v1/readings", `{"readings":[{"sensor":"t`+fmt.Sprint(i)+`","value":1}]}`, 200, "")
	}
	snapshot := func(cl *client) string {
		_, keys := cl.do("GET", "/v1/kv/app?limit=100", "", nil)
		_, sensors := cl.do("GET", "/v1/sensors", "", nil)
		return string(keys) + string(sensors)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		sa, sb, sc := snapshot(a), snapshot(b), snapshot(c)
		if sa == sb && sb == sc && strings.Contains(sa, `"value":6`) && strings.Contains(sa, `"t2"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged:\na %s\nb %s\nc %s", sa, sb, sc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, body := b.do("GET", "/v1/status", "", nil)
	var st struct {
		Peers map[string]struct{ BytesSent, BytesReceived uint64 }
	}
	json.Unmarshal(body, &st)
	if len(st.Peers) != 2 {
		t.Errorf("b's status lists %d peers, want 2: %s", len(st.Peers), body)
	}
	b.expect("GET", "/v1/peers", "", 200, `"bytes_received"`)
	metrics := string(b.expect("GET", "/metrics", "", 200, "edged_sync_rounds_total"))
	if !strings.Contains(metrics, "edged_sync_entries_received_total") {
		t.Error("/metrics lacks the sync counters")
	}
}
