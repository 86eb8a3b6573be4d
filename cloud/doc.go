// Package cloud is edged's cloud sync protocol: the topics and messages
// that nodes and the aggregator exchange over MQTT, and the outbox, the
// pure engine that decides what a node uploads next.
//
// A node's outbox is its delta log read from the cloud's acknowledged
// version vector: nothing is copied into a second queue. The node
// publishes batches (the log entries the cloud lacks, one group per
// origin) at QoS 1; the aggregator merges each one durably and then
// publishes its own log vector to the node's ack topic (retained). Only
// that ack advances the node's cloud watermark and lets its store collect
// the log; a broker's PUBACK never does. Merging is idempotent, so a batch
// sent twice (after a reconnection, a lost ack, a restart) changes
// nothing the second time: exactly once in effect.
//
// Every message is signed with its sender's node key (Ed25519), and its
// sender's replica ID is derived from the key, so a node cannot publish in
// another's name even where the broker's ACLs allow it.
//
// Like package replication, this package has no goroutines, sockets,
// clocks or storage: packages uplink and aggregator are its drivers.
package cloud
