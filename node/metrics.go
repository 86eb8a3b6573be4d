package node

import (
	"github.com/edged-dev/edged/aggregator"
	"github.com/edged-dev/edged/localmqtt"
	"github.com/edged-dev/edged/p2p"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/sensors"
	"github.com/edged-dev/edged/shedding"
	"github.com/edged-dev/edged/store"
	"github.com/edged-dev/edged/uplink"
	"github.com/prometheus/client_golang/prometheus"
)

// storeCollector exports the store's statistics as Prometheus metrics.
type storeCollector struct{ db *store.DB }

var (
	descStoreBytes   = prometheus.NewDesc("edged_store_bytes", "Bytes of the data directory.", nil, nil)
	descStoreBudget  = prometheus.NewDesc("edged_store_budget_bytes", "The data directory's byte budget (store.budget_bytes); 0: none.", nil, nil)
	descReadingBytes = prometheus.NewDesc("edged_store_reading_bytes", "Bytes of stored readings, as of the last GC.", nil, nil)
	descEvicted      = prometheus.NewDesc("edged_store_evicted_log_entries_total", "Delta-log entries dropped to meet the data budget.", nil, nil)
	descDropped      = prometheus.NewDesc("edged_store_dropped_reading_fragments_total", "Reading fragments deleted by retention or budget.", nil, nil)
)

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStoreBytes
	ch <- descStoreBudget
	ch <- descReadingBytes
	ch <- descEvicted
	ch <- descDropped
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descStoreBudget, prometheus.GaugeValue, float64(st.Budget))
	ch <- prometheus.MustNewConstMetric(descReadingBytes, prometheus.GaugeValue, float64(st.ReadingBytes))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped))
}

// counter is one counter of a collector: its description and its value.
type counter struct {
	desc  *prometheus.Desc
	value func() float64
}

// counters exports values read at scrape time as Prometheus counters.
type counters []counter

func (cs counters) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		ch <- c.desc
	}
}

func (cs counters) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, c.value())
	}
}

func newCounter(name, help string, value func() float64) counter {
	return counter{prometheus.NewDesc(name, help, nil, nil), value}
}

// mqttCollector exports the local MQTT interface's counters.
type mqttCollector struct{ s *localmqtt.Server }

var (
	descMQTT = map[string]*prometheus.Desc{
		"received": prometheus.NewDesc("edged_mqtt_received_total", "MQTT messages on input topics, valid or not.", nil, nil),
		"readings": prometheus.NewDesc("edged_mqtt_readings_total", "Readings stored from MQTT.", nil, nil),
		"ops":      prometheus.NewDesc("edged_mqtt_ops_total", "Key operations applied from MQTT.", nil, nil),
		"gets":     prometheus.NewDesc("edged_mqtt_gets_total", "Get requests answered over MQTT.", nil, nil),
		"changes":  prometheus.NewDesc("edged_mqtt_changes_published_total", "Key documents published over MQTT.", nil, nil),
		"delayed":  prometheus.NewDesc("edged_mqtt_shed_delays_total", "QoS 1 and 2 inputs held back before their PUBACK while the node shed their class.", nil, nil),
	}
	descMQTTErrors = prometheus.NewDesc("edged_mqtt_errors_total", "Refused or failed MQTT inputs and publications, by kind.", []string{"kind"}, nil)
)

func (mqttCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descMQTT {
		ch <- d
	}
	ch <- descMQTTErrors
}

func (c mqttCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for name, v := range map[string]uint64{"received": st.Received, "readings": st.Readings, "ops": st.Ops, "gets": st.Gets, "changes": st.Changes, "delayed": st.Delayed} {
		ch <- prometheus.MustNewConstMetric(descMQTT[name], prometheus.CounterValue, float64(v))
	}
	for k, v := range st.Errors {
		ch <- prometheus.MustNewConstMetric(descMQTTErrors, prometheus.CounterValue, float64(v), k.String())
	}
}

// sensorCounters exports the sensor adapters' counters.
func sensorCounters(st *sensors.Stats) counters {
	return counters{
		newCounter("edged_sensor_polls_total", "Sensor adapter polls.", func() float64 { return float64(st.Polls.Load()) }),
		newCounter("edged_sensor_poll_errors_total", "Sensor adapter polls that failed in whole or in part.", func() float64 { return float64(st.PollErrors.Load()) }),
		newCounter("edged_sensor_readings_total", "Readings from sensor adapters stored.", func() float64 { return float64(st.Readings.Load()) }),
		newCounter("edged_sensor_rejected_total", "NaN or infinite sensor values skipped.", func() float64 { return float64(st.Rejected.Load()) }),
		newCounter("edged_sensor_sink_errors_total", "Sensor polls whose readings could not be stored.", func() float64 { return float64(st.SinkErrors.Load()) }),
		newCounter("edged_sensor_panics_total", "Panics recovered in sensor adapters.", func() float64 { return float64(st.Panics.Load()) }),
	}
}

// peerStates exports how many peers are in each membership state.
type peerStates struct{ n *p2p.Node }

var descPeers = prometheus.NewDesc("edged_peers", "Peers by membership state (alive, suspect, dead, left).", []string{"state"}, nil)

func (peerStates) Describe(ch chan<- *prometheus.Desc) { ch <- descPeers }

func (c peerStates) Collect(ch chan<- prometheus.Metric) {
	count := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, s := range c.n.Stats() {
		if s.State != "" {
			count[s.State]++
		}
	}
	for state, v := range count {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, v, state)
	}
}

// p2pCounters exports the replication counters.
func p2pCounters(n *p2p.Node) counters {
	stat := func(f func(replication.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(n.SyncStats())) }
	}
	peers := func(f func(p2p.PeerStats) uint64) func() float64 {
		return func() float64 {
			var sum uint64
			for _, s := range n.Stats() {
				sum += f(s)
			}
			return float64(sum)
		}
	}
	return counters{
		newCounter("edged_sync_rounds_total", "Anti-entropy rounds started.", stat(func(s replication.Stats) uint64 { return s.Rounds })),
		newCounter("edged_sync_entries_sent_total", "Delta-log entries sent to peers.", stat(func(s replication.Stats) uint64 { return s.EntriesSent })),
		newCounter("edged_sync_entries_received_total", "Delta-log entries received from peers.", stat(func(s replication.Stats) uint64 { return s.EntriesReceived })),
		newCounter("edged_sync_redundant_entries_total", "Received entries this node already held.", stat(func(s replication.Stats) uint64 { return s.Redundant })),
		newCounter("edged_sync_invalid_total", "Messages and entries from peers dropped as invalid.", stat(func(s replication.Stats) uint64 { return s.Invalid })),
		newCounter("edged_sync_own_ahead_total", "Peer vectors holding more of this node's own writes than it does (restored with its old identity: give it a new one).", stat(func(s replication.Stats) uint64 { return s.OwnAhead })),
		newCounter("edged_sync_unservable_total", "Sends skipped because the log no longer holds what a peer lacks (the peer is offered a state transfer).", stat(func(s replication.Stats) uint64 { return s.Unservable })),
		newCounter("edged_sync_offers_declined_total", "State transfer offers this node declined: it already held all the offering peer did.", stat(func(s replication.Stats) uint64 { return s.OffersDeclined })),
		newCounter("edged_sync_transfers_started_total", "State transfers this node started to catch up.", stat(func(s replication.Stats) uint64 { return s.Transfers })),
		newCounter("edged_sync_transfers_done_total", "State transfers this node finished.", stat(func(s replication.Stats) uint64 { return s.TransfersDone })),
		newCounter("edged_sync_transfers_abandoned_total", "State transfers given up because the serving peer went silent.", stat(func(s replication.Stats) uint64 { return s.TransfersAbandoned })),
		newCounter("edged_sync_transfer_ranges_skipped_total", "Key ranges of state transfers skipped because their digests were equal.", stat(func(s replication.Stats) uint64 { return s.RangesSkipped })),
		newCounter("edged_sync_transfer_states_sent_total", "Key states sent to peers by state transfer.", stat(func(s replication.Stats) uint64 { return s.StatesSent })),
		newCounter("edged_sync_transfer_states_received_total", "Key states received by state transfer.", stat(func(s replication.Stats) uint64 { return s.StatesReceived })),
		newCounter("edged_sync_deferred_entries_total", "Entries not applied because a state transfer was running (they come again).", stat(func(s replication.Stats) uint64 { return s.Deferred })),
		newCounter("edged_sync_bytes_sent_total", "Bytes of sync messages sent.", peers(func(s p2p.PeerStats) uint64 { return s.BytesSent })),
		newCounter("edged_sync_bytes_received_total", "Bytes of sync messages received.", peers(func(s p2p.PeerStats) uint64 { return s.BytesReceived })),
		newCounter("edged_sync_errors_total", "Failed sends and unreadable messages.", peers(func(s p2p.PeerStats) uint64 { return s.Errors })),
		newCounter("edged_p2p_hole_punch_retries_total", "Reconnections through a relay to retry hole punching with a peer still reachable only through it.", peers(func(s p2p.PeerStats) uint64 { return s.PunchRetries })),
	}
}

// uplinkCollector exports the cloud uplink's state and counters.
type uplinkCollector struct{ u *uplink.Uplink }

var (
	descUplinkGauges = map[string]*prometheus.Desc{
		"connected": prometheus.NewDesc("edged_cloud_connected", "1 while the uplink is connected to the cloud broker.", nil, nil),
		"backlog":   prometheus.NewDesc("edged_cloud_backlog_dots", "Dots of the log the cloud has not acknowledged.", nil, nil),
		"readings":  prometheus.NewDesc("edged_cloud_readings_backlog_dots", "Dots of the log whose raw readings the cloud does not hold (they go after the state).", nil, nil),
		"in_flight": prometheus.NewDesc("edged_cloud_batches_in_flight", "Batches awaiting the aggregator's ack.", nil, nil),
		"breaker":   prometheus.NewDesc("edged_cloud_breaker_open", "1 while publishing is paused after repeated failures.", nil, nil),
		"paused":    prometheus.NewDesc("edged_cloud_paused", "1 while publishing waits for the schedule or the byte budget.", nil, nil),
		"shedding":  prometheus.NewDesc("edged_cloud_shedding", "1 while raw readings are left out of batches (short budget or disk).", nil, nil),
	}
	descUplinkCounters = map[string]*prometheus.Desc{
		"batches":    prometheus.NewDesc("edged_cloud_batches_total", "Batches published to the cloud.", nil, nil),
		"entries":    prometheus.NewDesc("edged_cloud_entries_total", "Log entries (origin groups) published to the cloud.", nil, nil),
		"delta":      prometheus.NewDesc("edged_cloud_delta_bytes_total", "Bytes of deltas published to the cloud.", nil, nil),
		"wire":       prometheus.NewDesc("edged_cloud_wire_bytes_total", "Bytes of batch messages published, after compression.", nil, nil),
		"acks":       prometheus.NewDesc("edged_cloud_acks_total", "Acks taken from the aggregator.", nil, nil),
		"refused":    prometheus.NewDesc("edged_cloud_acks_refused_total", "Acks refused: malformed, for another node, or not from the pinned aggregator.", nil, nil),
		"retries":    prometheus.NewDesc("edged_cloud_retries_total", "Times unacknowledged batches were sent again.", nil, nil),
		"failures":   prometheus.NewDesc("edged_cloud_publish_failures_total", "Batches the broker did not acknowledge.", nil, nil),
		"unservable": prometheus.NewDesc("edged_cloud_unservable_total", "Batches that skipped an origin whose entries the log no longer holds.", nil, nil),
		"shed":       prometheus.NewDesc("edged_cloud_shed_readings_total", "Raw readings left out of batches (their summaries went).", nil, nil),
		"down":       prometheus.NewDesc("edged_cloud_down_entries_total", "Entries of the aggregator's own writes merged.", nil, nil),
		"downbad":    prometheus.NewDesc("edged_cloud_down_refused_total", "Downlink messages refused.", nil, nil),
	}
)

func (uplinkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descUplinkGauges {
		ch <- d
	}
	for _, d := range descUplinkCounters {
		ch <- d
	}
}

func (c uplinkCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.u.Status()
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for name, v := range map[string]float64{"connected": flag(st.Connected), "backlog": float64(st.Backlog), "readings": float64(st.ReadingsBacklog),
		"in_flight": float64(st.InFlight), "breaker": flag(!st.BreakerOpenUntil.IsZero()),
		"paused": flag(st.Paused != ""), "shedding": flag(st.Shedding)} {
		ch <- prometheus.MustNewConstMetric(descUplinkGauges[name], prometheus.GaugeValue, v)
	}
	for name, v := range map[string]uint64{"batches": st.Batches, "entries": st.Entries, "delta": st.DeltaBytes, "wire": st.WireBytes, "acks": st.Acks,
		"refused": st.AcksRefused, "retries": st.Retries, "failures": st.PublishFailures, "unservable": st.Unservable,
		"shed": st.ShedReadings, "down": st.DownEntries, "downbad": st.DownRefused} {
		ch <- prometheus.MustNewConstMetric(descUplinkCounters[name], prometheus.CounterValue, float64(v))
	}
}

// aggregatorCollector exports the aggregator's counters and nodes.
type aggregatorCollector struct{ a *aggregator.Aggregator }

var (
	descAggregator = map[string]*prometheus.Desc{
		"batches": prometheus.NewDesc("edged_aggregator_batches_total", "Batches merged.", nil, nil),
		"entries": prometheus.NewDesc("edged_aggregator_entries_total", "Log entries (origin groups) merged.", nil, nil),
		"bytes":   prometheus.NewDesc("edged_aggregator_bytes_total", "Bytes of batches merged, as received.", nil, nil),
		"acks":    prometheus.NewDesc("edged_aggregator_acks_total", "Acks published.", nil, nil),
	}
	descAggregatorRefused = prometheus.NewDesc("edged_aggregator_refused_total", "Messages refused, by reason (malformed, forged, topic, gap, store).", []string{"reason"}, nil)
	descAggregatorNodes   = prometheus.NewDesc("edged_aggregator_nodes", "Nodes known, by status.", []string{"status"}, nil)
)

func (aggregatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descAggregator {
		ch <- d
	}
	ch <- descAggregatorRefused
	ch <- descAggregatorNodes
}

func (c aggregatorCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	for name, v := range map[string]uint64{"batches": st.Batches, "entries": st.Entries, "bytes": st.Bytes, "acks": st.Acks} {
		ch <- prometheus.MustNewConstMetric(descAggregator[name], prometheus.CounterValue, float64(v))
	}
	for reason, v := range st.Refused {
		ch <- prometheus.MustNewConstMetric(descAggregatorRefused, prometheus.CounterValue, float64(v), reason)
	}
	count := map[string]float64{"online": 0, "offline": 0}
	for _, n := range c.a.Nodes() {
		if n.Online {
			count["online"]++
		} else {
			count["offline"]++
		}
	}
	for status, v := range count {
		ch <- prometheus.MustNewConstMetric(descAggregatorNodes, prometheus.GaugeValue, v, status)
	}
}

// sheddingCollector exports the governor's decisions and state.
type sheddingCollector struct{ g *shedding.Governor }

var (
	descShedAdmitted    = prometheus.NewDesc("edged_shed_admitted_total", "Requests and inputs admitted, by class.", []string{"class"}, nil)
	descShedDownsampled = prometheus.NewDesc("edged_shed_downsampled_total", "Requests admitted downsampled (readings kept as summaries only), by class.", []string{"class"}, nil)
	descShedDelayed     = prometheus.NewDesc("edged_shed_delayed_total", "Requests held back until they could be taken (critical requests beyond shedding.max_concurrency in flight), by class.", []string{"class"}, nil)
	descShedRefused     = prometheus.NewDesc("edged_shed_refused_total", "Requests and inputs refused, by class and reason (concurrency, cpu, memory, disk).", []string{"class", "reason"}, nil)
	descShedDegraded    = prometheus.NewDesc("edged_shed_degraded", "1 while a class is shed.", []string{"class"}, nil)
	descShedLimit       = prometheus.NewDesc("edged_shed_concurrency_limit", "The adaptive limit of requests in flight.", nil, nil)
	descShedRate        = prometheus.NewDesc("edged_shed_admission_rate", "The admission rate set while the CPU queue stands over shedding.queue_target, per second; 0 when there is none.", nil, nil)
	descShedInFlight    = prometheus.NewDesc("edged_shed_in_flight", "Admitted requests in flight.", nil, nil)
	descShedQueueWait   = prometheus.NewDesc("edged_shed_queue_wait_seconds", "How long runnable work waited for a CPU (90th percentile of the Go scheduler's latency over the last measurement: 100ms under load, 1s idle).", nil, nil)
)

func (sheddingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShedAdmitted, descShedDownsampled, descShedDelayed, descShedRefused, descShedDegraded, descShedLimit, descShedRate, descShedInFlight, descShedQueueWait} {
		ch <- d
	}
}

func (c sheddingCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.Status()
	for class, cs := range st.Classes {
		ch <- prometheus.MustNewConstMetric(descShedAdmitted, prometheus.CounterValue, float64(cs.Admitted), class)
		ch <- prometheus.MustNewConstMetric(descShedDownsampled, prometheus.CounterValue, float64(cs.Downsampled), class)
		ch <- prometheus.MustNewConstMetric(descShedDelayed, prometheus.CounterValue, float64(cs.Delayed), class)
		for reason, n := range cs.Refused {
			ch <- prometheus.MustNewConstMetric(descShedRefused, prometheus.CounterValue, float64(n), class, string(reason))
		}
		degraded := 0.0
		if cs.Degraded {
			degraded = 1
		}
		ch <- prometheus.MustNewConstMetric(descShedDegraded, prometheus.GaugeValue, degraded, class)
	}
	ch <- prometheus.MustNewConstMetric(descShedLimit, prometheus.GaugeValue, float64(st.Limit))
	ch <- prometheus.MustNewConstMetric(descShedRate, prometheus.GaugeValue, st.Rate)
	ch <- prometheus.MustNewConstMetric(descShedInFlight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(descShedQueueWait, prometheus.GaugeValue, st.QueueWaitMS/1000)
}
