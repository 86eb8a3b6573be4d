// Package localmqtt is the node's local MQTT interface: it serves a Backend
// (the node's storage) to devices and apps on the LAN over MQTT.
//
// # Modes
//
// Config.Mode selects one of three:
//
//   - embedded (the default): the node runs its own broker
//     (github.com/mochi-mqtt/server/v2) on Config.Addr. Devices connect to
//     the node itself. Users, passwords and per-user topic ACLs come from
//     Config.Users and are enforced by a broker hook; with no users the
//     broker admits anonymous clients, which Validate allows on a loopback
//     address only. The node's own subscriptions and publications go
//     through the broker's inline client, without a network connection.
//   - client: the node connects (github.com/eclipse/paho.mqtt.golang, MQTT
//     3.1.1) to a broker the gateway already runs, such as Mosquitto, at
//     Config.Broker, as client "edged-<node name>" with a persistent session
//     (clean session false), reconnecting with exponential backoff and
//     subscribing again on every connection. Authentication and ACLs are
//     that broker's business.
//   - off: nothing runs.
//
// # Topics
//
// All topics live under a prefix, Config.TopicPrefix, by default
// "edged/<node name>". Below, <p> is the prefix.
//
//	topic                          dir  payload
//	<p>/readings/<sensor>          in   readings for sensor, as Backend.Ingest takes them:
//	                                    a number ("21.5"), a JSON reading or {"readings":[...]},
//	                                    or InfluxDB line protocol
//	<p>/kv/<ns>/<key>/set          in   an operation, a JSON object, for Backend.Do
//	<p>/kv/<ns>/<key>/get          in   any payload (ignored): a request for the key's document
//	<p>/kv/<ns>/<key>              out  retained, QoS 1: the key's JSON document
//	                                    {"ns","key","type","value"} after every change; an empty
//	                                    retained message (which clears the retained one) when the
//	                                    key is removed
//	<p>/kv/<ns>/<key>/get/reply    out  QoS 1: the reply to a get from an MQTT 3.1.1 client (or an
//	                                    MQTT 5 client that set no Response Topic): the document,
//	                                    or an error object
//	MQTT 5 Response Topic          out  QoS 1: the reply to a get or set that carried a Response
//	                                    Topic, with the request's Correlation Data
//	<p>/errors                     out  QoS 0, not retained: {"topic","error","field"} for every
//	                                    input that was refused or failed ("field" only when the
//	                                    Backend named one)
//
// A sensor is exactly one topic level: <p>/readings/a/b is refused (on
// <p>/errors), not read as sensor "a/b". A namespace is one level; a key is
// one or more levels, so <p>/kv/app/room/1/set sets key "room/1" in
// namespace "app". No level may be empty, and a key's last level may not be
// "set", "get" or "reply": such keys would make the key's document topic look
// like another key's input or reply. Operations on them are refused, and
// their changes are not published (they are counted and reported on
// <p>/errors). Only topics under <p>/readings/ and topics under <p>/kv/ that
// end in /set or /get are inputs, so the node never reads its own documents
// or replies as requests.
//
// An error object, on <p>/errors or as a reply, is
//
//	{"topic": "<p>/kv/app/x/set", "error": "op must be a JSON object", "field": "op"}
//
// An MQTT 5 Response Topic must be a valid topic name outside the node's
// inputs and, in embedded mode, one the requesting client may publish to;
// otherwise the request fails with an error on <p>/errors.
//
// # Acknowledgement and delivery
//
// An input is acknowledged once the node has taken it: queued for a
// worker, or refused as invalid (reported on <p>/errors; sending it again
// would not help). While the node sheds the input's class (Options.Shed)
// or the input's queue is full, a QoS 1 or 2 input waits, unacknowledged,
// which slows its publisher: in embedded mode the broker reads nothing
// more from that client, in client mode paho's router waits and the
// broker holds what follows. A QoS 0 input is dropped instead (counted,
// reported). A QoS 1 or 2 input held back by shedding is taken after 5s
// (counted as delayed). One whose queue stays full for 5s in embedded
// mode, or that comes while the node stops, is declined: not
// acknowledged, so the publisher sends it again. An MQTT 5 client gets
// PUBACK "quota exceeded" (0x97); an MQTT 3.1.1 client, which has no
// negative acknowledgement, is disconnected and sends it again when it
// reconnects with its session. In client mode the node only stops
// waiting when it stops, and it does not acknowledge what it did not
// take: the broker keeps it for the node's persistent session.
//
// An acknowledged input can still fail (reported on <p>/errors), be
// dropped because it was still queued when the shutdown drain time
// (Config.BackendTimeout) ran out, or be lost in a crash before the
// Backend stored it. On a clean stop the node first stops taking inputs
// (client mode: it disconnects) and then drains its queue into the
// Backend. Will messages on input topics are taken as the broker
// publishes them (embedded mode), without an acknowledgement to hold.
//
// In client mode, retained messages replayed by the broker when the node
// subscribes are ignored, so a retained operation is not applied again on
// every reconnection. Publish inputs without the retain flag.
//
// Key documents are published after the Backend reports a change (Watch),
// not in reply to the set; changes to the same key that arrive faster than
// they can be published are coalesced (the last one wins). The embedded
// broker keeps retained messages in memory only: after a restart a key's
// retained document is missing until the key changes again, and in client
// mode a change made while the node was down is not republished; use get.
//
// # Limits
//
// Payloads above Config.MaxPayloadBytes and topics above
// Config.MaxTopicBytes are refused. The embedded broker also refuses, by
// disconnecting the client, any packet larger than MaxPayloadBytes +
// MaxTopicBytes + 4 KiB; this applies to all traffic through it. At most
// Config.Workers Backend calls run at once, each within
// Config.BackendTimeout; up to Config.QueueLength more inputs wait, split
// among the workers. Inputs for one sensor, or for one key, always go to
// the same worker and are handled in the order they arrived (so a get after
// a set of the same key sees it); inputs for different ones may be handled
// in any order. An input that finds its worker's queue full waits or is
// dropped (see above). Taking an input never waits for the Backend, only
// for room in the queue: in embedded mode it runs in the broker's
// per-client read loop. A panic while handling a message is recovered and
// counted.
//
// # Concurrency and lifecycle
//
// New validates the configuration and reads password files; it starts
// nothing. Run starts the broker or the connection, the workers and the
// publisher of key changes, and blocks until its context is cancelled; then
// it stops them in reverse order and waits for its goroutines. Ready is
// closed once Run has started (in client mode, before the broker is
// necessarily reachable); Connected says whether inputs can arrive now.
// Stats and Connected are safe to call at any time from any goroutine.
//
// Usage:
//
//	srv, err := localmqtt.New(cfg, nodeName, backend, localmqtt.Options{Logger: log})
//	if err != nil { ... }
//	go func() { done <- srv.Run(ctx) }()
//	<-srv.Ready()
//	log.Info("mqtt listening", "addr", srv.Addr())
package localmqtt
