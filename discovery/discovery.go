// Package discovery finds a node's peers on the local network over mDNS
// (github.com/hashicorp/mdns): it advertises the service _edged._tcp with
// the node's libp2p peer ID, a fleet tag, the protocol version and its name
// in TXT records, and browses for others periodically, with jitter.
//
// What it finds are candidates: a record proves nothing, so the caller
// dials them through the libp2p host, which authenticates them (Noise, and
// the fleet key or allowlist). Records of other fleets, other protocol
// versions or malformed ones are ignored.
package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
)

// Service is the mDNS service edged advertises.
const Service = "_edged._tcp"

// Proto is the sync protocol version advertised; records of others are
// ignored.
const Proto = "1"

// Limits on what a record may hold.
const (
	maxIDBytes   = 128
	maxNameBytes = 63
	// maxPerBrowse bounds the entries taken from one browse, so that a
	// flood of records cannot flood the host with dials.
	maxPerBrowse = 64
)

// Config configures discovery.
type Config struct {
	// Interfaces are the names of the interfaces to use; empty means every
	// interface that is up, multicast-capable and not loopback.
	Interfaces []string
	// IPv4Only advertises and browses over IPv4 alone (the library's IPv6
	// support has known problems).
	IPv4Only bool
	// Interval is how often to browse, ±25%; zero means 30 s. The first
	// browse is at once.
	Interval time.Duration
}

// Self is what a node advertises.
type Self struct {
	PeerID string
	// Fleet is the fleet tag (FleetTag), never a key.
	Fleet string
	Name  string
	// Port is the libp2p TCP port.
	Port int
}

// Candidate is a peer found on the network: where it says it is.
type Candidate struct {
	PeerID string
	Name   string
	IP     net.IP
	Port   int
}

// FleetTag derives the tag that marks a fleet's records from its key and
// name: a hash, so the record never reveals the key. Nodes that share both
// share the tag.
func FleetTag(key []byte, name string) string {
	h := sha256.New()
	h.Write([]byte("edged fleet tag v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Run advertises self on the configured interfaces and browses them until
// ctx is done, calling found (from its own goroutine) with each candidate
// of self's fleet. It fails at once when no interface can be used.
func Run(ctx context.Context, cfg Config, self Self, found func(Candidate), logger *slog.Logger) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	ifaces, err := interfaces(cfg.Interfaces)
	if err != nil {
		return err
	}
	quiet := log.New(io.Discard, "", 0) // the library logs every bad packet
	var servers []*mdns.Server
	defer func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}()
	txt := []string{"id=" + self.PeerID, "fleet=" + self.Fleet, "proto=" + Proto, "name=" + self.Name}
	for _, ifc := range ifaces {
		ips := addrs(ifc, cfg.IPv4Only)
		if len(ips) == 0 {
			continue
		}
		// The host name is given, and so are the addresses: the library
		// would otherwise resolve the machine's name, which fails on
		// many gateways.
		zone, err := mdns.NewMDNSService(self.PeerID, Service, "local.", self.PeerID[max(0, len(self.PeerID)-12):]+".edged.local.", self.Port, ips, txt)
		if err != nil {
			return fmt.Errorf("discovery: %s: %w", ifc.Name, err)
		}
		s, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: &ifc, Logger: quiet})
		if err != nil {
			logger.Warn("discovery: cannot advertise", "interface", ifc.Name, "err", err)
			continue
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return fmt.Errorf("discovery: could not advertise on any of %d interfaces", len(ifaces))
	}
	logger.Info("discovery: advertising", "service", Service, "interfaces", len(servers), "fleet_tag", self.Fleet)
	failed := map[string]string{} // the last error logged per interface
	for {
		for _, ifc := range ifaces {
			err := browse(ctx, ifc, cfg.IPv4Only, self, found, quiet)
			if msg := fmt.Sprint(err); err != nil && failed[ifc.Name] != msg {
				// The library joins the multicast group on the interface
				// of the default route: a LAN without one needs a route
				// for multicast.
				logger.Warn("discovery: browse failed (on a network without a default route, add one for multicast: ip route add 224.0.0.0/4 dev "+ifc.Name+")",
					"interface", ifc.Name, "err", err)
			}
			failed[ifc.Name] = fmt.Sprint(err)
		}
		wait := cfg.Interval - cfg.Interval/4 + rand.N(cfg.Interval/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// browse queries one interface and hands over the candidates. It reads
// the entries only once the query is over: the library keeps writing an
// entry after it has sent it (a later packet completes it), so reading
// them meanwhile races.
func browse(ctx context.Context, ifc net.Interface, v4only bool, self Self, found func(Candidate), logger *log.Logger) error {
	entries := make(chan *mdns.ServiceEntry, maxPerBrowse) // more are dropped by the library
	p := &mdns.QueryParam{Service: Service, Domain: "local", Timeout: time.Second, Interface: &ifc,
		Entries: entries, DisableIPv6: v4only, Logger: logger}
	err := mdns.QueryContext(ctx, p)
	close(entries)
	for e := range entries {
		if c, err := parse(e, self); err == nil {
			found(c)
		}
	}
	return err
}

// errSkip marks a record that is not a candidate.
var errSkip = errors.New("discovery: not a candidate")

// parse checks a record and returns its candidate.
func parse(e *mdns.ServiceEntry, self Self) (Candidate, error) {
	var c Candidate
	fields := map[string]string{}
	for _, f := range e.InfoFields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if _, dup := fields[k]; dup {
			return c, fmt.Errorf("%w: %s given twice", errSkip, k)
		}
		fields[k] = v
	}
	switch {
	case fields["proto"] != Proto:
		return c, fmt.Errorf("%w: protocol %q", errSkip, fields["proto"])
	case fields["fleet"] != self.Fleet:
		return c, fmt.Errorf("%w: another fleet", errSkip)
	case fields["id"] == "" || len(fields["id"]) > maxIDBytes || fields["id"] == self.PeerID:
		return c, fmt.Errorf("%w: peer ID %.20q", errSkip, fields["id"])
	case len(fields["name"]) > maxNameBytes:
		return c, fmt.Errorf("%w: name of %d bytes", errSkip, len(fields["name"]))
	case e.Port <= 0 || e.Port > 65535:
		return c, fmt.Errorf("%w: port %d", errSkip, e.Port)
	}
	c = Candidate{PeerID: fields["id"], Name: fields["name"], IP: e.AddrV4, Port: e.Port}
	if c.IP == nil && e.AddrV6IPAddr != nil {
		c.IP = e.AddrV6IPAddr.IP
	}
	if c.IP == nil {
		return c, fmt.Errorf("%w: no address", errSkip)
	}
	return c, nil
}

// interfaces returns the named interfaces, or every usable one.
func interfaces(names []string) ([]net.Interface, error) {
	if len(names) > 0 {
		var out []net.Interface
		for _, n := range names {
			ifc, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("discovery: interface %q: %w", n, err)
			}
			out = append(out, *ifc)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var out []net.Interface
	for _, ifc := range all {
		if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0 {
			out = append(out, ifc)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("discovery: no interface is up and multicast-capable; set p2p.mdns_interfaces or turn mDNS off (--mdns=false)")
	}
	return out, nil
}

// addrs returns the unicast addresses of an interface to advertise.
func addrs(ifc net.Interface, v4only bool) []net.IP {
	as, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() == nil {
			continue
		}
		if ipn.IP.To4() == nil && v4only {
			continue
		}
		ips = append(ips, ipn.IP)
	}
	return ips
}
