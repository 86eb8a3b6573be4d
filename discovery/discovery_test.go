package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
)

var self = Self{PeerID: "12D3KooWself", Fleet: FleetTag([]byte("key"), "north"), Name: "gw1", Port: 4001}

func entry(fields ...string) *mdns.ServiceEntry {
	return &mdns.ServiceEntry{AddrV4: net.IPv4(192, 168, 1, 7), Port: 4001, InfoFields: fields}
}

func TestParse(t *testing.T) {
	good := []string{"id=12D3KooWother", "fleet=" + self.Fleet, "proto=1", "name=gw2"}
	c, err := parse(entry(good...), self)
	if err != nil || c.PeerID != "12D3KooWother" || c.Name != "gw2" || !c.IP.Equal(net.IPv4(192, 168, 1, 7)) || c.Port != 4001 {
		t.Fatalf("a good record: %+v, %v", c, err)
	}
	for name, fields := range map[string][]string{
		"another fleet":    {"id=x", "fleet=" + FleetTag([]byte("key"), "south"), "proto=1"},
		"another protocol": {"id=x", "fleet=" + self.Fleet, "proto=2"},
		"no id":            {"fleet=" + self.Fleet, "proto=1"},
		"itself":           {"id=" + self.PeerID, "fleet=" + self.Fleet, "proto=1"},
		"id twice":         {"id=x", "id=y", "fleet=" + self.Fleet, "proto=1"},
		"long name":        {"id=x", "fleet=" + self.Fleet, "proto=1", "name=" + string(make([]byte, 64))},
	} {
		if _, err := parse(entry(fields...), self); !errors.Is(err, errSkip) {
			t.Errorf("%s: %v", name, err)
		}
	}
	e := entry(good...)
	e.AddrV4 = nil
	if _, err := parse(e, self); !errors.Is(err, errSkip) {
		t.Errorf("no address: %v", err)
	}
}

func TestFleetTagHidesTheKey(t *testing.T) {
	a, b := FleetTag([]byte("key"), "north"), FleetTag([]byte("other"), "north")
	if a == b || a == FleetTag([]byte("key"), "south") || len(a) != 16 {
		t.Errorf("tags %s %s", a, b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("id=12D3KooWother", "fleet="+self.Fleet, "proto=1", 4001)
	f.Fuzz(func(t *testing.T, a, b, c string, port int) {
		e := entry(a, b, c)
		e.Port = port
		cand, err := parse(e, self)
		if err == nil && (cand.PeerID == "" || cand.PeerID == self.PeerID || cand.Port <= 0 || cand.Port > 65535 || len(cand.Name) > maxNameBytes) {
			t.Fatalf("accepted %+v", cand)
		}
	})
}

// testLink returns an interface for mDNS: a veth pair of its own when run
// as root with iproute2 (removed at the end), else EDGED_TEST_IFACE.
func testLink(t *testing.T) string {
	if name := os.Getenv("EDGED_TEST_IFACE"); name != "" {
		return name
	}
	ip, err := exec.LookPath("ip")
	if os.Geteuid() != 0 || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI: this test needs root and iproute2 (apt-get install iproute2)")
		}
		t.Skip("needs root and iproute2 to make a veth link (or EDGED_TEST_IFACE=an interface that multicasts)")
	}
	name := fmt.Sprintf("edgd%d", os.Getpid()%100000)
	run := func(args ...string) {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { exec.Command(ip, "link", "del", name).Run() })
	run("link", "set", name, "up")
	run("link", "set", name+"p", "up")
	run("addr", "add", fmt.Sprintf("10.213.%d.1/24", os.Getpid()%250), "dev", name)
	return name
}

// TestTwoNodesFindEachOther runs three advertisers and browsers on one
// link; two of one fleet find each other, the third, of another fleet, is
// found by neither.
func TestTwoNodesFindEachOther(t *testing.T) {
	cfg := Config{Interfaces: []string{testLink(t)}, IPv4Only: true, Interval: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for _, s := range []Self{
		{PeerID: "12D3KooWaaaa", Fleet: self.Fleet, Name: "a", Port: 4101},
		{PeerID: "12D3KooWbbbb", Fleet: self.Fleet, Name: "b", Port: 4102},
		{PeerID: "12D3KooWcccc", Fleet: FleetTag(nil, "other"), Name: "c", Port: 4103},
	} {
		wg.Go(func() {
			err := Run(ctx, cfg, s, func(c Candidate) {
				mu.Lock()
				seen[s.Name+">"+c.Name] = c.PeerID
				mu.Unlock()
			}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		ok := seen["a>b"] == "12D3KooWbbbb" && seen["b>a"] == "12D3KooWaaaa"
		mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if seen["a>b"] == "" || seen["b>a"] == "" {
		t.Fatalf("found %v", seen)
	}
	for k := range seen {
		if k[0] == 'c' || k[len(k)-1] == 'c' {
			t.Errorf("a node of another fleet was found: %s", k)
		}
	}
}
