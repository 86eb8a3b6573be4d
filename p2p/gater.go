package p2p

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// allowlist is a connection gater that admits only the listed peer IDs,
// both ways, once a connection's peer is authenticated.
type allowlist map[peer.ID]bool

var _ connmgr.ConnectionGater = allowlist(nil)

func newAllowlist(ids []string) (allowlist, error) {
	a := allowlist{}
	for i, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %q is not a peer ID: %w", i, s, err)
		}
		a[id] = true
	}
	return a, nil
}

func (a allowlist) InterceptPeerDial(p peer.ID) bool                 { return a[p] }
func (a allowlist) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return a[p] }
func (a allowlist) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (a allowlist) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return a[p]
}
func (a allowlist) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// memoryLimit is what libp2p's resource manager lets the host use:
// buffers of streams and connections on a 512 MiB board, where the rest
// belongs to the store and the API.
const memoryLimit = 64 << 20

// fdLimit is how many file descriptors the host may use.
const fdLimit = 256

// resourceManager returns libp2p's resource manager with its default
// limits scaled to memoryLimit and fdLimit: a few dozen peers with a few
// streams each, which a site's fleet needs, and no more.
func resourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(memoryLimit, fdLimit)))
}

// Connection manager watermarks: above connHigh connections the host
// closes the least useful ones down to connLow, sparing connections
// younger than connGrace and static peers (protected). A site's fleet is a
// few dozen gateways; the resource manager's limits stay the hard cap.
const (
	connLow   = 48
	connHigh  = 96
	connGrace = time.Minute
)

func connManager() (*basicconnmgr.BasicConnMgr, error) {
	return basicconnmgr.NewConnManager(connLow, connHigh, basicconnmgr.WithGracePeriod(connGrace))
}
