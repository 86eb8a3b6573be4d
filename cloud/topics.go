package cloud

import (
	"fmt"
	"strings"

	"github.com/edged-dev/edged/crdt"
)

// TopicRoot is the first levels of every topic.
const TopicRoot = "edged/v1"

// DefaultFleet is the topic level of nodes that belong to no fleet.
const DefaultFleet = "default"

// The last level of a node's topics.
const (
	// LevelBatch: node → cloud, QoS 1, batches of log entries.
	LevelBatch = "batch"
	// LevelReadings: node → cloud, QoS 1, batches of the readings
	// stream: log entries with only their raw readings, whose other
	// deltas went first in batches (see Streams).
	LevelReadings = "readings"
	// LevelAck: cloud → node, QoS 1, retained: the aggregator's vectors.
	LevelAck = "ack"
	// LevelDown: cloud → node, QoS 1: the aggregator's own writes that
	// the node lacks, in order.
	LevelDown = "down"
	// LevelStatus: node → everyone, QoS 1, retained: online (birth) or
	// offline (the last will, or a clean stop), as JSON.
	LevelStatus = "status"
)

// FleetLevel returns the topic level of a fleet name.
func FleetLevel(fleet string) string {
	if fleet == "" {
		return DefaultFleet
	}
	return fleet
}

// Topic returns the topic of one of a node's levels:
// edged/v1/<fleet>/<replica ID, 16 hex digits>/<level>.
func Topic(fleet string, node crdt.ReplicaID, level string) string {
	return fmt.Sprintf("%s/%s/%s/%s", TopicRoot, FleetLevel(fleet), node, level)
}

// Filter returns the subscription filter for one level of every node of
// a fleet ("+" for every fleet).
func Filter(fleet, level string) string {
	if fleet != "+" {
		fleet = FleetLevel(fleet)
	}
	return fmt.Sprintf("%s/%s/+/%s", TopicRoot, fleet, level)
}

// ParseTopic splits a node's topic into its fleet level, node and level.
func ParseTopic(topic string) (fleet string, node crdt.ReplicaID, level string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" {
		return "", 0, "", fmt.Errorf("cloud: topic %q is not %s/<fleet>/<node>/<level>", topic, TopicRoot)
	}
	id, err := ParseReplica(parts[1])
	if err != nil {
		return "", 0, "", fmt.Errorf("cloud: topic %q: %w", topic, err)
	}
	return parts[0], id, parts[2], nil
}

// ParseReplica parses a replica ID as topics hold it: 16 lowercase hex
// digits, not all zero.
func ParseReplica(s string) (crdt.ReplicaID, error) {
	var id uint64
	if _, err := fmt.Sscanf(s, "%016x", &id); err != nil || id == 0 || crdt.ReplicaID(id).String() != s {
		return 0, fmt.Errorf("%q is not a replica ID (16 lowercase hex digits)", s)
	}
	return crdt.ReplicaID(id), nil
}
