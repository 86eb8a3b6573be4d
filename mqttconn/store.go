package mqttconn

import (
	"bytes"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// store is paho's in-flight message store, in memory like its MemoryStore,
// but it keeps each packet encoded and hands out a fresh copy on Get.
//
// paho's MemoryStore returns the very packet it was given. When a client
// (re)connects, paho resumes the stored publishes and sets their DUP flag
// while its writer may still be sending the same packet: a data race
// (eclipse-paho/paho.mqtt.golang#703) that the race detector reports.
// paho stores a packet before it sends it, so encoding it in Put is safe;
// a copy from Get is nobody else's.
type store struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

var _ paho.Store = (*store)(nil)

func newStore() *store { return &store{msgs: map[string][]byte{}} }

func (s *store) Open() {}

func (s *store) Close() {}

func (s *store) Put(key string, m packets.ControlPacket) {
	var b bytes.Buffer
	if err := m.Write(&b); err != nil {
		return // as paho's stores do: a packet that cannot be stored is sent, not resumed
	}
	s.mu.Lock()
	s.msgs[key] = b.Bytes()
	s.mu.Unlock()
}

func (s *store) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	b, ok := s.msgs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	m, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		return nil // cannot happen: the bytes came from Write
	}
	return m
}

func (s *store) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.msgs))
	for k := range s.msgs {
		keys = append(keys, k)
	}
	return keys
}

func (s *store) Del(key string) {
	s.mu.Lock()
	delete(s.msgs, key)
	s.mu.Unlock()
}

func (s *store) Reset() {
	s.mu.Lock()
	clear(s.msgs)
	s.mu.Unlock()
}
