package node

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/mqtttest"
)

// startAggregator runs `edged aggregate` in the test against url.
func startAggregator(t *testing.T, url string) *client {
	t.Helper()
	cfg := testConfig(t)
	cfg.Cloud.URL = url
	n, err := NewAggregator(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	done, _ := runNode(t, n)
	waitReady(t, n, done)
	return &client{t: t, base: "http://" + n.Addr().String()}
}

// TestCloudSync: two nodes write; the aggregator serves the merged state
// (a counter summed, sets joined, readings of both), lists the nodes, and
// the nodes report an empty backlog. Local names stay home. The
// aggregator's own writes reach the nodes.
func TestCloudSync(t *testing.T) {
	broker := mqtttest.Start(t)
	agg := startAggregator(t, broker.URL)
	var nodes []*client
	for i := range 2 {
		nodes = append(nodes, startNode(t, func(n *Node) {
			n.cfg.Cloud.URL = broker.URL
			n.cfg.Node.Fleet = "north"
			n.cfg.Namespaces = map[string]string{"private": "local"}
			n.name = fmt.Sprintf("gw-%d", i)
		}))
	}
	for i, c := range nodes {
		for range 10 {
			c.expect("POST", "/v1/kv/app/visits", `{"type":"counter","op":"inc","by":`+fmt.Sprint(i+1)+`}`, 200, "")
		}
		c.expect("POST", "/v1/kv/app/members", `{"type":"set","op":"add","elems":["n`+fmt.Sprint(i)+`"]}`, 200, "")
		c.expect("POST", "/v1/kv/private/pin", `{"type":"register","op":"set","value":1234}`, 200, "")
		c.expect("POST", "/v1/readings", `{"readings":[{"sensor":"t`+fmt.Sprint(i)+`","value":1},{"sensor":"t`+fmt.Sprint(i)+`","value":2,"ts":"2026-01-01T00:00:00Z"}]}`, 200, "")
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		_, v := agg.do("GET", "/v1/kv/app/visits", "", nil)
		_, m := agg.do("GET", "/v1/kv/app/members", "", nil)
		_, s := agg.do("GET", "/v1/sensors", "", nil)
		if strings.Contains(string(v), `"value":30`) && strings.Contains(string(m), `["n0","n1"]`) && strings.Contains(string(s), `"t0"`) && strings.Contains(string(s), `"t1"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator has not merged both nodes:\n%s\n%s\n%s", v, m, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	agg.expect("GET", "/v1/kv/private/pin", "", 404, "")
	agg.expect("GET", "/v1/series/t0?from=2025-12-31T00:00:00Z", "", 200, `"value":2`)
	var doc struct {
		Nodes []struct {
			Name, Fleet string
			Online      bool
			Batches     uint64
		}
	}
	if err := json.Unmarshal(agg.expect("GET", "/v1/nodes", "", 200, ""), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Nodes) != 2 || doc.Nodes[0].Name != "gw-0" || doc.Nodes[0].Fleet != "north" || !doc.Nodes[0].Online || doc.Nodes[0].Batches == 0 {
		t.Errorf("GET /v1/nodes: %+v", doc.Nodes)
	}
	nodes[0].expect("GET", "/v1/nodes", "", 404, "not an aggregator")
	// Each node's share of the merged keys: gw-i added 10×(i+1) and "ni".
	for key, want := range map[string][]string{"visits": {"10", "20"}, "members": {`["n0"]`, `["n1"]`}} {
		var shares struct {
			Value json.RawMessage
			Nodes []struct {
				Name  string
				Value json.RawMessage
			}
		}
		if err := json.Unmarshal(agg.expect("GET", "/v1/kv/app/"+key+"?by=node", "", 200, ""), &shares); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range shares.Nodes {
			got[s.Name] = string(s.Value)
		}
		if len(shares.Nodes) != 2 || got["gw-0"] != want[0] || got["gw-1"] != want[1] {
			t.Errorf("GET /v1/kv/app/%s?by=node: %s, nodes %v; want gw-0 %s and gw-1 %s", key, shares.Value, got, want[0], want[1])
		}
	}
	agg.expect("GET", "/v1/kv/app/visits?by=fleet", "", 400, `"field":"by"`)
	for i, c := range nodes {
		deadline := time.Now().Add(waitTimeout)
		for {
			var st struct {
				Uplink struct {
					Connected bool
					Backlog   uint64
				}
			}
			json.Unmarshal(c.expect("GET", "/v1/status", "", 200, ""), &st)
			if st.Uplink.Connected && st.Uplink.Backlog == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d's uplink: %+v", i, st.Uplink)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The downlink: the aggregator's own writes reach every node.
	agg.expect("POST", "/v1/kv/config/mode", `{"type":"register","op":"set","value":"eco"}`, 200, "")
	agg.expect("POST", "/v1/kv/config/limits", `{"type":"map","op":"set","field":"max_temp","value":40}`, 200, "")
	// A node that starts after them gets them too.
	nodes = append(nodes, startNode(t, func(n *Node) { n.cfg.Cloud.URL = broker.URL }))
	for i, c := range nodes {
		deadline := time.Now().Add(waitTimeout)
		for {
			_, mode := c.do("GET", "/v1/kv/config/mode", "", nil)
			_, limits := c.do("GET", "/v1/kv/config/limits", "", nil)
			if strings.Contains(string(mode), `"value":"eco"`) && strings.Contains(string(limits), `"max_temp":40`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d lacks the aggregator's writes: %s %s", i, mode, limits)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if m := string(nodes[0].expect("GET", "/metrics", "", 200, "")); !strings.Contains(m, "edged_cloud_acks_total") {
		t.Error("/metrics lacks the uplink's")
	}
	if m := string(agg.expect("GET", "/metrics", "", 200, "")); !strings.Contains(m, `edged_aggregator_nodes{status="online"} 3`) {
		t.Error("/metrics lacks the aggregator's")
	}
}

// TestCloudBudgetShedsReadings: a node short of its byte budget sheds
// raw readings (their minute summaries still go), counts them, reports
// them to the aggregator, and once the budget is spent waits for it.
func TestCloudBudgetShedsReadings(t *testing.T) {
	broker := mqtttest.Start(t)
	agg := startAggregator(t, broker.URL)
	c := startNode(t, func(n *Node) {
		n.cfg.Cloud.URL = broker.URL
		n.cfg.Cloud.MaxBatchBytes = 4096
		// Bursts of 100,000 bytes: the first two posts' raw readings
		// (about 30,000 bytes each) go, the third's are shed.
		n.cfg.Cloud.BudgetBytesPerHour = 12 * 100_000
		n.cfg.Cloud.Compress = false
	})
	var body strings.Builder
	body.WriteString(`{"readings":[`)
	for i := range 1000 {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"sensor":"temp","value":%d.5,"ts":"2026-11-01T00:%02d:%02dZ"}`, i, i/60, i%60)
	}
	body.WriteString(`]}`)
	var st struct {
		Uplink struct {
			Paused       string
			Shedding     bool
			ShedReadings uint64 `json:"shed_readings"`
		}
	}
	waitUplink := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for {
			json.Unmarshal(c.expect("GET", "/v1/status", "", 200, ""), &st)
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the uplink has not %s: %+v", what, st.Uplink)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 3 {
		c.expect("POST", "/v1/readings", strings.Replace(body.String(), "temp", fmt.Sprint("temp", i), -1), 200, "")
	}
	waitUplink("shed readings", func() bool { return st.Uplink.Shedding && st.Uplink.ShedReadings > 0 })
	// State still goes, until the budget is spent.
	big := `{"type":"register","op":"set","value":"` + strings.Repeat("x", 30_000) + `"}`
	for i := range 4 {
		c.expect("POST", fmt.Sprintf("/v1/kv/app/blob%d", i), big, 200, "")
	}
	waitUplink("paused for the budget", func() bool { return st.Uplink.Paused == "budget" })
	var nodes struct {
		Nodes []struct {
			Shed uint64 `json:"shed_readings"`
		}
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		json.Unmarshal(agg.expect("GET", "/v1/nodes", "", 200, ""), &nodes)
		if len(nodes.Nodes) == 1 && nodes.Nodes[0].Shed > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator was not told of the shed readings: %+v", nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := string(c.expect("GET", "/metrics", "", 200, "")); !strings.Contains(m, "edged_cloud_paused 1") {
		t.Error("/metrics does not show the pause")
	}
	t.Logf("shed %d readings; the aggregator was told of %d", st.Uplink.ShedReadings, nodes.Nodes[0].Shed)
}

// TestCloudReadingsNewestFirst: with readings_order newest, a backlog of
// raw readings reaches an aggregator that starts late, each reading once,
// with the state; both streams' backlogs empty and the log is collected.
func TestCloudReadingsNewestFirst(t *testing.T) {
	broker := mqtttest.Start(t)
	c := startNode(t, func(n *Node) {
		n.cfg.Cloud.URL = broker.URL
		n.cfg.Cloud.MaxBatchBytes = 4096
		n.cfg.Cloud.ReadingsOrder = "newest"
		n.cfg.Cloud.AckTimeout = time.Second // the batches sent before the aggregator subscribed are lost
	})
	for h := range 6 {
		var body strings.Builder
		body.WriteString(`{"readings":[`)
		for i := range 100 {
			if i > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"sensor":"flow","value":%d,"ts":"2026-11-01T%02d:%02d:%02dZ"}`, h*100+i, h, i/60, i%60)
		}
		body.WriteString(`]}`)
		c.expect("POST", "/v1/readings", body.String(), 200, "")
		c.expect("POST", "/v1/kv/app/posts", `{"type":"counter","op":"inc"}`, 200, "")
	}
	agg := startAggregator(t, broker.URL)
	var series struct{ Points []json.RawMessage }
	var st struct {
		Uplink struct {
			Backlog         uint64
			ReadingsBacklog uint64 `json:"readings_backlog"`
		}
		Store struct{ Bytes int64 }
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		_, posts := agg.do("GET", "/v1/kv/app/posts", "", nil)
		json.Unmarshal(agg.expect("GET", "/v1/series/flow?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", "", 200, ""), &series)
		json.Unmarshal(c.expect("GET", "/v1/status", "", 200, ""), &st)
		if strings.Contains(string(posts), `"value":6`) && len(series.Points) == 600 && st.Uplink.Backlog == 0 && st.Uplink.ReadingsBacklog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator has %s and %d readings; the node's uplink %+v", posts, len(series.Points), st.Uplink)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
