package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged-dev/edged/mqtttest"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/uplink"
)

// TestCloudSyncEndToEnd runs two edged nodes and an aggregator (real
// binaries) against a real Mosquitto. The nodes write counters, sets and
// readings throughout while the broker is stopped and restarted, the
// aggregator is restarted, and a node is killed with SIGKILL mid-upload
// and restarted; one node sends its raw readings oldest first, the
// other newest first. Then the aggregator holds the join of everything: the
// counter is the sum of the nodes' (no acknowledged write lost, none
// counted twice), every reading arrived once, and each node's cloud
// watermark covers its log, which is collected.
func TestCloudSyncEndToEnd(t *testing.T) {
	broker := mqtttest.Start(t)
	bin := buildEdged(t)
	env := []string{"EDGED_LOG_FORMAT=json", "EDGED_READINGS_TRUST_CLOCK=true", "EDGED_CLOUD_ACK_TIMEOUT=2s", "EDGED_CLOUD_RECONNECT_MAX_INTERVAL=1s"}
	aggDir := filepath.Join(t.TempDir(), "aggregator")
	runAgg := func() (*process, string) {
		return startedAt(t, start(t, bin, env, "aggregate", "--cloud-url", broker.URL, "--data-dir", aggDir, "--http-addr", "127.0.0.1:0"))
	}
	dirs := []string{filepath.Join(t.TempDir(), "n0"), filepath.Join(t.TempDir(), "n1")}
	// Node 0 sends its raw readings oldest first, node 1 newest first.
	orders := []string{"EDGED_CLOUD_READINGS_ORDER=oldest", "EDGED_CLOUD_READINGS_ORDER=newest"}
	runNode := func(i int) (*process, string) {
		return startedAt(t, start(t, bin, append(slices.Clip(env), orders[i]), "run", "--cloud-url", broker.URL, "--fleet", "north", "--data-dir", dirs[i], "--http-addr", "127.0.0.1:0"))
	}
	pagg, _ := runAgg() // its address changes when it restarts
	var procs [2]*process
	var urls sync.Map // node index -> base URL, replaced on restart
	for i := range procs {
		var u string
		procs[i], u = runNode(i)
		urls.Store(i, u)
	}

	// Writers: on each node, counter increments, set additions and
	// readings at distinct times, counted when acknowledged.
	base := time.Now().Add(-time.Minute)
	var acked [2]atomic.Int64
	var readings [2]atomic.Int64
	post := func(i int, path, body string) bool {
		u, _ := urls.Load(i)
		return postOK(u.(string), path, body)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if post(i, "/v1/kv/app/hits", `{"type":"counter","op":"inc"}`) {
					acked[i].Add(1)
				}
				post(i, "/v1/kv/app/seen", fmt.Sprintf(`{"type":"set","op":"add","elems":["n%d-%d"]}`, i, n))
				ts := base.Add(time.Duration(readings[i].Load()) * time.Millisecond).Format(time.RFC3339Nano)
				if post(i, "/v1/readings", fmt.Sprintf(`{"readings":[{"sensor":"s%d","value":%d,"ts":%q}]}`, i, n, ts)) {
					readings[i].Add(1)
				}
			}
		})
	}
	total := func() int64 { return acked[0].Load() + acked[1].Load() }
	waitAcked := func(n int64) { waitAtLeast(t, "writes acknowledged", total, n) }
	waitAcked(100)
	broker.Stop() // writes go on while the broker is down
	waitAcked(total() + 100)
	broker.Restart()
	waitAcked(total() + 100)
	pagg.cmd.Process.Signal(syscall.SIGTERM)
	<-pagg.done
	waitAcked(total() + 50)
	pagg, agg := runAgg()
	waitAcked(total() + 50)
	procs[1].cmd.Process.Signal(syscall.SIGKILL) // mid-upload: its writers never stop
	<-procs[1].done
	var u string
	procs[1], u = runNode(1)
	urls.Store(1, u)
	waitAcked(total() + 100)
	close(stop)
	wg.Wait()

	getJSON := func(base, path string, v any) {
		resp, err := http.Get(base + path)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(v)
	}
	counter := func(base string) int64 {
		var doc struct{ Value int64 }
		getJSON(base, "/v1/kv/app/hits", &doc)
		return doc.Value
	}
	var sums [2]int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		u0, _ := urls.Load(0)
		u1, _ := urls.Load(1)
		sums = [2]int64{counter(u0.(string)), counter(u1.(string))}
		done := counter(agg) == sums[0]+sums[1]
		for i, u := range []string{u0.(string), u1.(string)} {
			var st struct{ Uplink uplink.Status }
			getJSON(u, "/v1/status", &st)
			done = done && st.Uplink.Connected && st.Uplink.Backlog == 0 && readingCount(agg, i, base) == readingCount(u, i, base)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator has not caught up: counter %d, nodes %v; readings s0 %d/%d, s1 %d/%d", counter(agg), sums,
				readingCount(agg, 0, base), readingCount(u0.(string), 0, base), readingCount(agg, 1, base), readingCount(u1.(string), 1, base))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 2 {
		if n := int64(readingCount(agg, i, base)); n < readings[i].Load() {
			t.Errorf("node %d: the aggregator holds %d readings, %d were acknowledged", i, n, readings[i].Load())
		}
	}
	if sums[0]+sums[1] < total() {
		t.Errorf("the nodes count %v, %d increments were acknowledged", sums, total())
	}
	var seen struct{ Value []string }
	getJSON(agg, "/v1/kv/app/seen", &seen)
	t.Logf("aggregator: counter %d = %d + %d (%d acknowledged), %d set elements, readings %d + %d", counter(agg), sums[0], sums[1], total(), len(seen.Value),
		readingCount(agg, 0, base), readingCount(agg, 1, base))

	// The nodes' cloud watermarks cover their logs: once they stop, GC
	// collects every entry.
	for i, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		db, err := store.Open(store.Options{Dir: dirs[i], Durability: store.None})
		if err != nil {
			t.Fatal(err)
		}
		marks, err := db.Watermarks()
		if err != nil {
			t.Fatal(err)
		}
		for r, s := range db.LogVector() {
			if marks[uplink.Watermark][r] < s {
				t.Errorf("node %d: cloud watermark %v does not cover its log %v", i, marks[uplink.Watermark], db.LogVector())
			}
		}
		if _, err := db.CollectGarbage(); err != nil {
			t.Fatal(err)
		}
		left := 0
		db.AllEntries(func(store.Entry) error { left++; return nil })
		db.Close()
		if left != 0 {
			t.Errorf("node %d: %d log entries left after GC", i, left)
		}
	}
	pagg.cmd.Process.Signal(syscall.SIGTERM)
	<-pagg.done
}

// readingCount returns how many readings of sensor s<i> the node at base
// holds since from.
func readingCount(base string, i int, from time.Time) int {
	q := url.Values{"from": {from.Add(-time.Hour).Format(time.RFC3339)}, "to": {time.Now().Add(time.Hour).Format(time.RFC3339)}}
	resp, err := http.Get(fmt.Sprintf("%s/v1/series/s%d?%s", base, i, q.Encode()))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var doc struct{ Points []json.RawMessage }
	if json.NewDecoder(resp.Body).Decode(&doc) != nil {
		return -1
	}
	return len(doc.Points)
}

// startedAt waits for p's "node started" line and returns p and its
// HTTP base URL.
func startedAt(t *testing.T, p *process) (*process, string) {
	t.Helper()
	select {
	case addr := <-p.addr:
		return p, "http://" + addr
	case <-p.done:
		t.Fatalf("edged exited before it started: %v", p.err)
	case <-time.After(waitTimeout):
		t.Fatal("no \"node started\" log line in time")
	}
	return nil, ""
}
