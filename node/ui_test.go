package node

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/edged-dev/edged/mqtttest"
	"github.com/edged-dev/edged/sensors"
)

// chromium returns the path of a Chromium for the dashboard tests, skipping
// the test where there is none, except under CI=true, where that fails it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed: apt-get install chromium")
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// page is a headless Chromium tab for the dashboard tests: it records
// console errors and warnings and uncaught exceptions, and saves
// screenshots to the test's artifact directory.
type page struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// newPage starts Chromium (browser) and opens a tab at url.
func newPage(t *testing.T, browser, url string) *page {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1600))...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	p := &page{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				p.problems = append(p.problems, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			p.problems = append(p.problems, e.ExceptionDetails.Error())
		}
	})
	p.run(chromedp.Navigate(url))
	return p
}

// run runs actions in the tab.
func (p *page) run(actions ...chromedp.Action) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.screenshot("failed.png")
		p.t.Fatal(err)
	}
}

// poll waits until a JavaScript condition holds.
func (p *page) poll(what, expr string) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, chromedp.Poll(expr, nil, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		p.screenshot("failed.png")
		p.t.Fatalf("%s: %v (console: %q)", what, err, p.console())
	}
}

// eval returns the JSON of a JavaScript expression, decoded into v.
func (p *page) eval(expr string, v any) {
	p.t.Helper()
	var raw string
	p.run(chromedp.Evaluate("JSON.stringify("+expr+")", &raw))
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		p.t.Fatal(err)
	}
}

// chartRaw shows the raw readings of a sensor in the chart.
func (p *page) chartRaw(sensor string) {
	p.t.Helper()
	p.run(chromedp.Click(fmt.Sprintf(`#sensors li[data-sensor=%q] button`, sensor), chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("step").value = ""; document.getElementById("chart-form").dispatchEvent(new Event("change")); true`, nil))
}

func (p *page) screenshot(name string) {
	var png []byte
	if err := chromedp.Run(p.ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(p.t.ArtifactDir(), name), png, 0o644); err != nil {
		p.t.Error(err)
	}
}

func (p *page) console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.problems)
}

// servedMillis returns the points of a /v1/series answer by time in
// milliseconds, as the page holds times.
func servedMillis(t *testing.T, c *client, path string) map[int64]float64 {
	var served struct {
		Points []struct {
			TS    time.Time
			Value float64
		}
	}
	if err := json.Unmarshal(c.expect("GET", path, "", 200, ""), &served); err != nil {
		t.Fatal(err)
	}
	out := map[int64]float64{}
	for _, p := range served.Points {
		out[p.TS.UnixMilli()] = p.Value
	}
	return out
}

// TestDashboard drives the dashboard in headless Chromium against a node
// with a simulated sensor and two peers: the page loads without console
// errors (or the app's warnings), the sensor chart shows the points /v1/series serves, a key
// written through the API appears live, and a peer that is killed turns
// suspect or dead. Screenshots go to the test's artifact directory.
func TestDashboard(t *testing.T) {
	browser := chromium(t)
	var an *Node
	a := startNode(t, func(n *Node) {
		n.cfg.P2P.Addr, n.cfg.P2P.Tick, n.cfg.P2P.MDNS = "/ip4/127.0.0.1/tcp/0", 20*time.Millisecond, false
		n.cfg.Sensors.Simulated = []sensors.SimulatedConfig{{Name: "temp", Interval: 50 * time.Millisecond, Period: 5 * time.Second, Amplitude: 5, Offset: 20, Unit: "C"}}
		an = n
	})
	startNode(t, func(n *Node) {
		n.cfg.P2P.Addr, n.cfg.P2P.Tick, n.cfg.P2P.MDNS, n.cfg.P2P.Peers = "/ip4/127.0.0.1/tcp/0", 20*time.Millisecond, false, an.P2PAddrs()
	})
	// c runs in a process of its own, so that it can be killed with
	// SIGKILL: it says no goodbye, and its peers must find it gone.
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerProcess$")
	cmd.Env = append(os.Environ(), "EDGED_TEST_PEER="+an.P2PAddrs()[0], "EDGED_TEST_PEER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var cPeer string
	if _, err := fmt.Fscanln(out, &cPeer); err != nil {
		t.Fatalf("the peer process: %v", err)
	}

	p := newPage(t, browser, a.base+"/ui/")
	p.poll("the sensor listed", `document.querySelector('#sensors li[data-sensor="sim.temp"] button') !== null`)
	p.poll("both peers listed", `document.querySelectorAll('#peers tbody tr[data-peer]').length === 2`)

	// The chart of the raw readings holds points /v1/series serves.
	p.chartRaw("sim.temp")
	p.poll("the raw chart", `window.edged.chartPath && !window.edged.chartPath.includes("step") && window.edged.chartData[0].length > 0`)
	var chart struct {
		Path string
		Data [2][]float64
	}
	p.eval(`{Path: window.edged.chartPath, Data: window.edged.chartData}`, &chart)
	have := servedMillis(t, a, chart.Path)
	for i, ts := range chart.Data[0] {
		v, ok := have[int64(math.Round(ts*1000))]
		if !ok || v != chart.Data[1][i] {
			t.Fatalf("chart point %d (%v, %v) is not in %s (%d points)", i, ts, chart.Data[1][i], chart.Path, len(have))
		}
	}
	t.Logf("the chart's %d points are all served by %s", len(chart.Data[0]), chart.Path)

	// A key written through the API appears live.
	a.expect("POST", "/v1/kv/app/door", `{"type":"register","op":"set","value":"open"}`, 200, "")
	p.poll("the key, live", `(document.querySelector('#keys tr[data-key="door"]')?.textContent || "").includes("open")`)
	p.screenshot("dashboard.png")

	// A peer killed turns suspect, then dead.
	cmd.Process.Kill()
	p.poll("the killed peer suspect or dead", fmt.Sprintf(`["suspect", "dead"].includes(document.querySelector('#peers tr[data-peer="%s"] td:nth-child(2)')?.textContent)`, cPeer))
	p.screenshot("peer-down.png")

	// A phone's screen: the page lays out in one column, without errors.
	p.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Reload())
	p.poll("the phone layout", `document.querySelector('#sensors li') !== null && document.documentElement.scrollWidth <= 390`)
	p.screenshot("phone.png")

	if c := p.console(); len(c) > 0 {
		t.Errorf("console errors and warnings: %q", c)
	}
	if resp, err := http.Get(a.base + "/"); err == nil {
		resp.Body.Close()
		if resp.Request.URL.Path != "/ui/" {
			t.Errorf("GET / went to %s, want /ui/", resp.Request.URL.Path)
		}
	}
	t.Logf("screenshots in %s", t.ArtifactDir())
}

// TestPeerProcess is the peer process of TestDashboard: with
// EDGED_TEST_PEER set it runs a node that peers with it and prints its
// peer ID, until it is killed; otherwise it is skipped.
func TestPeerProcess(t *testing.T) {
	peer := os.Getenv("EDGED_TEST_PEER")
	if peer == "" {
		t.Skip("the peer process of TestDashboard, run by it")
	}
	cfg := testConfig(t)
	cfg.Node.DataDir = os.Getenv("EDGED_TEST_PEER_DIR")
	cfg.P2P.Addr, cfg.P2P.Tick, cfg.P2P.MDNS, cfg.P2P.Peers = "/ip4/127.0.0.1/tcp/0", 20*time.Millisecond, false, []string{peer}
	n := newNode(t, cfg)
	done, _ := runNode(t, n)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	addr := n.P2PAddrs()[0]
	fmt.Println(addr[strings.LastIndex(addr, "/")+1:])
	<-done // until killed
}

// TestDashboardFleet drives the aggregator's dashboard: the fleet's nodes
// are listed, and a sensor both nodes read is drawn per node on one chart,
// each series the readings /v1/series?node= serves.
func TestDashboardFleet(t *testing.T) {
	browser := chromium(t)
	broker := mqtttest.Start(t)
	agg := startAggregator(t, broker.URL)
	var replicas []string
	for i := range 2 {
		c := startNode(t, func(n *Node) {
			n.cfg.Cloud.URL, n.name = broker.URL, fmt.Sprintf("gw-%d", i)
		})
		var st struct{ Node struct{ Replica string } }
		json.Unmarshal(c.expect("GET", "/v1/status", "", 200, ""), &st)
		replicas = append(replicas, st.Node.Replica)
		var body strings.Builder
		for j := range 20 {
			if j > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"sensor":"temp","value":%d,"ts":%q}`, 10*i+j, time.Now().Add(-time.Duration(30-j)*time.Second).UTC().Format(time.RFC3339Nano))
		}
		c.expect("POST", "/v1/readings", `{"readings":[`+body.String()+`]}`, 200, "")
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		var pts [2]struct{ Points []json.RawMessage }
		for i, r := range replicas {
			json.Unmarshal(agg.expect("GET", "/v1/series/temp?node="+r, "", 200, ""), &pts[i])
		}
		if len(pts[0].Points) == 20 && len(pts[1].Points) == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the aggregator lacks the nodes' readings")
		}
		time.Sleep(20 * time.Millisecond)
	}

	p := newPage(t, browser, agg.base+"/ui/")
	p.poll("the fleet listed", `document.querySelectorAll('#nodes tbody tr').length === 2 && !document.getElementById("fleet").hidden`)
	p.poll("the sensor listed", `document.querySelector('#sensors li[data-sensor="temp"] button') !== null`)
	p.chartRaw("temp")
	p.poll("a series per node", `window.edged.chartPath && !window.edged.chartPath.includes("step") && (window.edged.chartNodes || []).length === 2`)
	var chart struct {
		Path  string
		Nodes []string
		Data  [][]*float64
	}
	p.eval(`{Path: window.edged.chartPath, Nodes: window.edged.chartNodes, Data: window.edged.chartData}`, &chart)
	for i, node := range chart.Nodes {
		want := servedMillis(t, agg, chart.Path+"&node="+node)
		got := map[int64]float64{}
		for j, ts := range chart.Data[0] {
			if v := chart.Data[i+1][j]; v != nil {
				got[int64(math.Round(*ts*1000))] = *v
			}
		}
		if len(got) != 20 || !maps.Equal(got, want) {
			t.Errorf("node %s: the chart shows %v, /v1/series serves %v", node, got, want)
		}
	}
	p.screenshot("fleet.png")
	if c := p.console(); len(c) > 0 {
		t.Errorf("console errors and warnings: %q", c)
	}
}
