package localmqtt

import (
	"bytes"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edged-dev/edged/shedding"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fullQueue starts an embedded server with one worker and a queue of one,
// whose worker is busy (sensor "block") and whose queue is full; hold is
// how long an input waits for room. It returns the server and a client.
func fullQueue(t *testing.T, be *fakeBackend, hold time.Duration) (*Server, paho.Client) {
	t.Helper()
	cfg := testConfig()
	cfg.Workers = 1
	cfg.QueueLength = 1
	srv, err := New(cfg, "n1", be, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv.hold = hold
	cancel, wait := run(t, srv)
	t.Cleanup(func() {
		select {
		case <-be.unblock:
		default:
			close(be.unblock)
		}
		cancel()
		if err := wait(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := connect(t, srv.Addr().String())
	publish(t, c, p+"/readings/block", false, "1") // occupies the worker
	select {
	case <-be.started:
	case <-timeAfter():
		t.Fatal("worker did not start")
	}
	publish(t, c, p+"/readings/queued", false, "2") // waits in the queue
	return srv, c
}

func TestQueueFullDropsQoS0(t *testing.T) {
	be := newFake()
	srv, c := fullQueue(t, be, waitTime)
	errs := subscribe(t, c, p+"/errors")
	c.Publish(p+"/readings/dropped", 0, false, "3")
	r := decodeReport(t, next(t, errs, "drop report"))
	if r.Topic != p+"/readings/dropped" || !strings.Contains(r.Error, "dropped") {
		t.Fatalf("report %+v, want readings/dropped dropped", r)
	}
	if st := srv.Stats(); st.Errors[KindDropped] != 1 || st.Received != 3 {
		t.Errorf("Errors[dropped] = %d, Received = %d; want 1, 3", st.Errors[KindDropped], st.Received)
	}
	close(be.unblock)
	for _, want := range []string{"block", "queued"} {
		if got := nextIngest(t, be); got.sensor != want {
			t.Errorf("ingested %s, want %s", got.sensor, want)
		}
	}
}

// A QoS 1 input that finds its queue full is acknowledged only once it is
// queued: never acknowledged and then dropped.
func TestQueueFullHoldsQoS1UntilQueued(t *testing.T) {
	be := newFake()
	srv, c := fullQueue(t, be, waitTime)
	tok := c.Publish(p+"/readings/held", 1, false, "3")
	if tok.WaitTimeout(200 * time.Millisecond) {
		t.Fatalf("PUBACK while the queue was full (err %v)", tok.Error())
	}
	close(be.unblock)
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		t.Fatalf("no PUBACK once the queue had room: %v", tok.Error())
	}
	for _, want := range []string{"block", "queued", "held"} {
		if got := nextIngest(t, be); got.sensor != want {
			t.Fatalf("ingested %s, want %s", got.sensor, want)
		}
	}
	if st := srv.Stats(); st.Errors[KindDropped] != 0 || st.Errors[KindDeclined] != 0 {
		t.Errorf("errors %v, want none dropped or declined", st.Errors)
	}
}

// A QoS 1 input whose queue stays full is declined: an MQTT 3.1.1 client
// is disconnected without a PUBACK, and the input is not stored.
func TestQueueFullDeclinesQoS1(t *testing.T) {
	be := newFake()
	srv, _ := fullQueue(t, be, 100*time.Millisecond)
	lost := make(chan error, 1)
	c := connect(t, srv.Addr().String(), func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	tok := c.Publish(p+"/readings/declined", 1, false, "3")
	select {
	case <-lost:
	case <-timeAfter():
		t.Fatal("client not disconnected")
	}
	if tok.WaitTimeout(waitTime) && tok.Error() == nil {
		t.Fatal("declined input acknowledged")
	}
	if n := srv.Stats().Errors[KindDeclined]; n != 1 {
		t.Errorf("Errors[declined] = %d, want 1", n)
	}
	close(be.unblock)
	for _, want := range []string{"block", "queued"} {
		if got := nextIngest(t, be); got.sensor != want {
			t.Fatalf("ingested %s, want %s", got.sensor, want)
		}
	}
	// The one worker has nothing more: a later input comes next.
	publish(t, connect(t, srv.Addr().String()), p+"/readings/after", false, "4")
	if got := nextIngest(t, be); got.sensor != "after" {
		t.Fatalf("ingested %s, want after (the declined input was stored)", got.sensor)
	}
}

// An MQTT 5 client is told: PUBACK with reason "quota exceeded".
func TestQueueFullDeclinesQoS1MQTT5(t *testing.T) {
	be := newFake()
	srv, _ := fullQueue(t, be, 100*time.Millisecond)
	c := dialMQTT5(t, srv.Addr().String(), "v5-publisher")
	c.send(func(b *bytes.Buffer) error {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
			ProtocolVersion: 5,
			PacketID:        7,
			TopicName:       p + "/readings/declined",
			Payload:         []byte("3"),
		}
		return pk.PublishEncode(b)
	})
	for {
		fh, body := c.read()
		if fh.Type != packets.Puback {
			continue
		}
		// Packet id 7, then the reason code.
		if len(body) < 3 || body[0] != 0 || body[1] != 7 || body[2] != packets.ErrQuotaExceeded.Code {
			t.Fatalf("PUBACK body %x, want id 7 and reason %#x", body, packets.ErrQuotaExceeded.Code)
		}
		break
	}
	if n := srv.Stats().Errors[KindDeclined]; n != 1 {
		t.Errorf("Errors[declined] = %d, want 1", n)
	}
}

// Inputs that come while the node stops are declined, not acknowledged
// and lost.
func TestStoppingDeclinesQoS1(t *testing.T) {
	be := newFake()
	cfg := testConfig()
	cfg.Workers = 1
	srv, err := New(cfg, "n1", be, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cancel, wait := run(t, srv)
	defer cancel()
	c := connect(t, srv.Addr().String())
	publish(t, c, p+"/readings/block", false, "1") // holds the drain
	select {
	case <-be.started:
	case <-timeAfter():
		t.Fatal("worker did not start")
	}
	cancel()
	eventually(t, "the node stopping", srv.isStopping)
	tok := c.Publish(p+"/readings/late", 1, false, "2")
	if tok.WaitTimeout(waitTime) && tok.Error() == nil {
		t.Fatal("input acknowledged while the node stopped")
	}
	close(be.unblock)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := nextIngest(t, be); got.sensor != "block" {
		t.Fatalf("ingested %s, want block", got.sensor)
	}
	select {
	case got := <-be.ingests:
		t.Fatalf("ingested %s after the node stopped taking inputs", got.sensor)
	default:
	}
	if n := srv.Stats().Errors[KindDeclined]; n != 1 {
		t.Errorf("Errors[declined] = %d, want 1", n)
	}
}

// A will message on an input topic is taken once, when the broker sends it.
func TestWillIsTaken(t *testing.T) {
	be := newFake()
	srv := start(t, testConfig(), be)
	conns := make(chan net.Conn, 1)
	connect(t, srv.Addr().String(), func(o *paho.ClientOptions) {
		o.SetWill(p+"/readings/gone", "0", 1, false)
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.Dial("tcp", u.Host)
			if err == nil {
				conns <- conn
			}
			return conn, err
		})
	})
	(<-conns).Close() // no DISCONNECT: the broker sends the will
	if got := nextIngest(t, be); got.sensor != "gone" || got.payload != "0" {
		t.Fatalf("ingested %+v, want the will", got)
	}
	publish(t, connect(t, srv.Addr().String()), p+"/readings/next", false, "1")
	if got := nextIngest(t, be); got.sensor != "next" {
		t.Fatalf("ingested %s, want next (the will taken twice?)", got.sensor)
	}
}

// A QoS 1 input held back while its class is shed is counted as delayed
// once, not refused at every poll; a QoS 0 input dropped for it is
// received and refused.
func TestShedCounters(t *testing.T) {
	be := newFake()
	gov := shedding.New(shedding.Config{Hold: time.Millisecond})
	srv := startWith(t, testConfig(), be, Options{Logger: testLogger(), Shed: gov})
	c := connect(t, srv.Addr().String())
	gov.ObserveMemory(99, 100, time.Now()) // normal work is shed for memory

	c.Publish(p+"/readings/temp", 0, false, "21.5")
	eventually(t, "the QoS 0 input dropped", func() bool { return srv.Stats().Errors[KindShed] == 1 })
	tok := c.Publish(p+"/readings/temp", 1, false, "22.5")
	eventually(t, "the QoS 1 input held", func() bool { return srv.Stats().Delayed == 1 })
	n, _ := gov.Activity()
	eventually(t, "the input held over more polls", func() bool { m, _ := gov.Activity(); return m >= n+3 })
	gov.ObserveMemory(10, 100, time.Now())
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		t.Fatalf("no PUBACK once the node recovered: %v", tok.Error())
	}
	if got := nextIngest(t, be); got.payload != "22.5" {
		t.Fatalf("ingested %+v", got)
	}
	st := srv.Stats()
	cs := gov.Status().Classes["normal"]
	if st.Received != 2 || st.Delayed != 1 || cs.Refused[shedding.ReasonMemory] != 1 || cs.Delayed != 1 || cs.Admitted != 1 {
		t.Errorf("received %d, delayed %d; governor: refused[memory] %d, delayed %d, admitted %d; want 2, 1; 1, 1, 1",
			st.Received, st.Delayed, cs.Refused[shedding.ReasonMemory], cs.Delayed, cs.Admitted)
	}
}
