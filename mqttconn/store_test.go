package mqttconn

import (
	"bytes"
	"slices"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestStoreHandsOutCopies: a stored packet comes back equal, but as a copy
// of its own, so setting DUP on it (as paho's resume does) changes
// neither the packet that was stored nor later copies.
func TestStoreHandsOutCopies(t *testing.T) {
	s := newStore()
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Qos, pub.MessageID, pub.Payload = "edged/fleet/n/batch", 1, 7, []byte("batch")
	s.Put("o.7", pub)
	got, ok := s.Get("o.7").(*packets.PublishPacket)
	if !ok || got == pub {
		t.Fatalf("Get returned %p (the stored %p)", got, pub)
	}
	if got.TopicName != pub.TopicName || got.MessageID != 7 || got.Qos != 1 || !bytes.Equal(got.Payload, pub.Payload) || got.Dup {
		t.Fatalf("copy %+v differs from %+v", got, pub)
	}
	got.Dup = true
	if again := s.Get("o.7").(*packets.PublishPacket); again.Dup || pub.Dup {
		t.Error("DUP set on a copy reached the store")
	}
	s.Put("i.9", packets.NewControlPacket(packets.Pubrel))
	keys := s.All()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"i.9", "o.7"}) {
		t.Errorf("All = %v", keys)
	}
	s.Del("o.7")
	if s.Get("o.7") != nil {
		t.Error("deleted packet still there")
	}
	s.Reset()
	if len(s.All()) != 0 {
		t.Error("Reset left packets")
	}
}
