package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReplicationEndToEnd runs three edged binaries with static peers on
// loopback, writes on all of them at once, kills one with SIGKILL in the
// middle and restarts it, and checks that all three converge and that no
// acknowledged write was lost.
func TestReplicationEndToEnd(t *testing.T) {
	bin := buildEdged(t)
	env := []string{"EDGED_LOG_FORMAT=json", "EDGED_P2P_TICK=50ms", "EDGED_READINGS_TRUST_CLOCK=true"}
	run := func(dir string, peers ...string) (*process, string) {
		args := []string{"run", "--http-addr", "127.0.0.1:0", "--data-dir", dir, "--p2p-addr", "/ip4/127.0.0.1/tcp/0"}
		for _, p := range peers {
			args = append(args, "--peer", p)
		}
		return startedAt(t, start(t, bin, env, args...))
	}
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b"), filepath.Join(t.TempDir(), "c")}
	pa, a := run(dirs[0])
	pa.mu.Lock()
	aAddr := pa.p2p[0]
	pa.mu.Unlock()
	_, b := run(dirs[1], aAddr)
	pc, c := run(dirs[2], aAddr)

	// Writers on each node: increments of one shared counter, counted
	// when acknowledged (and when attempted, for the one killed).
	var acked, attempted atomic.Int64
	var urls sync.Map // node index -> base URL, replaced on restart
	for i, u := range []string{a, b, c} {
		urls.Store(i, u)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				u, _ := urls.Load(i)
				attempted.Add(1)
				if postOK(u.(string), "/v1/kv/app/hits", `{"type":"counter","op":"inc"}`) {
					acked.Add(1)
				}
				postOK(u.(string), "/v1/kv/app/seen", fmt.Sprintf(`{"type":"set","op":"add","elems":["n%d-%d"]}`, i, n))
			}
		})
	}
	// Kill c once writes and sync are under way, and stop writing once
	// the restarted c has taken writes too.
	waitAcked := func(n int64) { waitAtLeast(t, "writes acknowledged", acked.Load, n) }
	waitAcked(150)
	pc.cmd.Process.Signal(syscall.SIGKILL)
	<-pc.done
	_, c = run(dirs[2], aAddr)
	urls.Store(2, c)
	waitAcked(acked.Load() + 150)
	close(stop)
	wg.Wait()

	get := func(base, path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	var doc struct{ Value int64 }
	deadline := time.Now().Add(30 * time.Second)
	for {
		ga, gb, gc := get(a, "/v1/kv/app?limit=1000"), get(b, "/v1/kv/app?limit=1000"), get(c, "/v1/kv/app?limit=1000")
		if ga == gb && gb == gc {
			json.Unmarshal([]byte(get(a, "/v1/kv/app/hits")), &doc)
			if doc.Value >= acked.Load() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged in time:\na %.300s\nb %.300s\nc %.300s", ga, gb, gc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if doc.Value < acked.Load() || doc.Value > attempted.Load() {
		t.Fatalf("counter %d: want between the %d acknowledged and %d attempted increments", doc.Value, acked.Load(), attempted.Load())
	}
	t.Logf("converged: counter %d (%d acknowledged, %d attempted)", doc.Value, acked.Load(), attempted.Load())
}
