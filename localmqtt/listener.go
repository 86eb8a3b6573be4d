package localmqtt

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// maxAcceptRetry is the longest wait before accepting again after a failed
// Accept (out of file descriptors, say).
const maxAcceptRetry = time.Second

// listener is the embedded broker's TCP listener. It stands in for mochi's
// listeners.Net, which has two shutdown races in v2.7.9, the newest
// release, both open upstream:
//
//   - Net's Close lists its clients through Clients.GetByListener, which
//     takes the client map's read lock twice; a client that connects or
//     disconnects in between deadlocks the broker (mochi-mqtt/server#488).
//   - A connection's goroutine adds itself to Listeners.ClientsWg only once
//     it runs, so the server's Close can Wait on a zero counter with an Add
//     coming: a panic, or a client that attaches after the shutdown and is
//     waited for (mochi-mqtt/server#424, #508).
//
// This one counts a connection in ClientsWg before its goroutine starts. Its
// Close stops the accept loop and waits for it, disconnects its clients
// with one read of the client map, and closes every connection it accepted,
// so none attaches after. It also keeps accepting after a temporary error,
// where Net stops for good.
type listener struct {
	id  string
	ln  net.Listener
	srv *mqtt.Server
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	serving bool
	stop    chan struct{} // closed by Close
	served  chan struct{} // closed when Serve's accept loop has returned
	conns   map[net.Conn]struct{}
}

var _ listeners.Listener = (*listener)(nil)

// newListener serves srv's clients on ln; srv.AddListener adds it.
func newListener(id string, ln net.Listener, srv *mqtt.Server) *listener {
	return &listener{id: id, ln: ln, srv: srv, stop: make(chan struct{}), served: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.ln.Addr().Network() }

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close and hands each to establish,
// which returns when its client has gone.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed || l.serving {
		l.mu.Unlock()
		return
	}
	l.serving = true
	l.mu.Unlock()
	defer close(l.served)
	retry := 5 * time.Millisecond
	for {
		conn, err := l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			l.log.Warn("mqtt accept failed; retrying", "err", err, "retry_in", retry.String())
			select {
			case <-time.After(retry):
			case <-l.stop:
				return
			}
			retry = min(2*retry, maxAcceptRetry)
			continue
		}
		retry = 5 * time.Millisecond
		if !l.track(conn) {
			_ = conn.Close()
			return
		}
		l.srv.Listeners.ClientsWg.Add(1)
		go func() {
			defer l.srv.Listeners.ClientsWg.Done()
			defer l.untrack(conn)
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("mqtt client gone", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// track records an accepted connection, unless the listener is closed.
func (l *listener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[conn] = struct{}{}
	return true
}

func (l *listener) untrack(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, conn)
}

// Close stops accepting, disconnects the listener's clients (telling MQTT 5
// clients that the server is shutting down) and closes every connection
// still open. mochi's closer, which would list the clients again, is not
// used.
func (l *listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	serving := l.serving
	l.mu.Unlock()
	close(l.stop)
	_ = l.ln.Close()
	if serving {
		<-l.served
	}
	for _, cl := range l.srv.Clients.GetAll() {
		if cl.Net.Listener == l.id && !cl.Closed() {
			_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for conn := range l.conns {
		_ = conn.Close()
	}
}
