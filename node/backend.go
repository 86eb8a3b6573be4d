package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edged-dev/edged/ingest"
	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/kv"
	"github.com/edged-dev/edged/localmqtt"
	"github.com/edged-dev/edged/sensors"
	"github.com/edged-dev/edged/series"
)

// mqttBackend serves the local MQTT interface from the node's key space
// and series.
type mqttBackend struct {
	kv     *kv.KV
	series *series.Series
	hub    *kv.Hub
	now    func() time.Time
	log    *slog.Logger
}

var _ localmqtt.Backend = (*mqttBackend)(nil)

// fieldError exposes the field of an *invalid.Error the way localmqtt
// reads it.
type fieldError struct {
	error
	field string
}

func (e fieldError) Field() string { return e.field }

func withField(err error) error {
	if f, ok := invalid.FieldOf(err); ok {
		return fieldError{err, f}
	}
	return err
}

func (b *mqttBackend) Ingest(ctx context.Context, sensor string, payload []byte) (int, error) {
	rs, err := ingest.Payload(sensor, payload, b.now())
	if err != nil {
		return 0, withField(err)
	}
	n, err := b.series.Ingest(ctx, rs)
	return n, withField(err)
}

func (b *mqttBackend) Do(ctx context.Context, ns, key string, op []byte) ([]byte, error) {
	d, err := b.kv.Do(ctx, ns, key, op)
	if err != nil {
		return nil, withField(err)
	}
	return json.Marshal(d)
}

func (b *mqttBackend) Get(_ context.Context, ns, key string) ([]byte, error) {
	d, err := b.kv.Get(ns, key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", localmqtt.ErrNotFound, err)
	}
	if err != nil {
		return nil, withField(err)
	}
	return json.Marshal(d)
}

// watchBuffer is how many key changes may wait for the MQTT publisher.
const watchBuffer = 1 << 14

// Watch reports every key once (the retained documents of a broker that
// restarted with the node are gone), then every change. A watcher that
// fell behind starts over the same way, so no document stays stale.
func (b *mqttBackend) Watch(ctx context.Context, fn func(ns, key string, doc []byte)) error {
	for {
		// Subscribe before the snapshot, so no change falls between them.
		w := b.hub.Watch("", watchBuffer)
		err := b.kv.Each(func(d kv.Doc) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			doc, err := json.Marshal(d)
			if err != nil {
				return err
			}
			fn(d.NS, d.Key, doc)
			return nil
		})
		if err != nil && ctx.Err() == nil {
			b.log.Warn("mqtt: publishing the key documents failed", "err", err)
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				b.hub.Stop(w)
				return nil
			case c, ok := <-w.C:
				if open = ok; !ok {
					break
				}
				d, err := b.kv.Get(c.NS, c.Key)
				switch {
				case errors.Is(err, kv.ErrNotFound):
					fn(c.NS, c.Key, nil)
				case err != nil:
					b.log.Warn("mqtt: key change not published", "ns", c.NS, "key", c.Key, "err", err)
				default:
					doc, _ := json.Marshal(d)
					fn(c.NS, c.Key, doc)
				}
			}
		}
		b.log.Warn("mqtt: key changes came faster than they were published; republishing every key")
	}
}

// sensorSink stores what the sensor adapters read.
func sensorSink(s *series.Series) sensors.Sink {
	return func(ctx context.Context, rs []sensors.Reading) error {
		in := make([]series.Reading, len(rs))
		for i, r := range rs {
			in[i] = series.Reading{Sensor: r.Sensor, Value: r.Value, Unit: r.Unit, Time: r.Time, NodeClock: true}
		}
		_, err := s.Ingest(ctx, in)
		return err
	}
}
