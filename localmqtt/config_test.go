package localmqtt

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	user := User{Username: "u", PasswordFile: "/etc/edged/u.pw"}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" for valid; else a substring of the error
	}{
		{"loopback anonymous", func(c *Config) { c.Addr = "127.0.0.1:1883" }, ""},
		{"localhost anonymous", func(c *Config) { c.Addr = "localhost:0" }, ""},
		{"ipv6 loopback anonymous", func(c *Config) { c.Addr = "[::1]:1883" }, ""},
		{"all interfaces anonymous", func(c *Config) { c.Addr = ":1883" }, "users: must list at least one user"},
		{"lan address anonymous", func(c *Config) { c.Addr = "192.168.1.10:1883" }, "users: must list at least one user"},
		{"host name anonymous", func(c *Config) { c.Addr = "pi.local:1883" }, "users: must list at least one user"},
		{"lan address with users", func(c *Config) { c.Addr = "0.0.0.0:1883"; c.Users = []User{user} }, ""},
		{"bad addr", func(c *Config) { c.Addr = "1883" }, "addr: must be host:port"},
		{"bad port", func(c *Config) { c.Addr = "127.0.0.1:70000" }, "addr: port must be a number"},
		{"user without password file", func(c *Config) { c.Users = []User{user, {Username: "v"}} }, "users[1].password_file: must not be empty"},
		{"user without name", func(c *Config) { c.Users = []User{{PasswordFile: "x"}} }, "users[0].username: must not be empty"},
		{"duplicate user", func(c *Config) { c.Users = []User{user, user} }, `users[1].username: "u" is also users[0]`},
		{"bad read filter", func(c *Config) { c.Users = []User{{Username: "u", PasswordFile: "x", Read: []string{"a/#/b"}}} }, "users[0].read[0]: not a valid topic filter"},
		{"bad write filter", func(c *Config) { c.Users = []User{{Username: "u", PasswordFile: "x", Write: []string{"a+"}}} }, "users[0].write[0]: not a valid topic filter"},
		{"bad mode", func(c *Config) { c.Mode = "bridge" }, `mode: must be one of embedded, client, off (got "bridge")`},
		{"off ignores the rest", func(c *Config) { c.Mode = ModeOff; c.Addr = "nonsense"; c.Workers = 0 }, ""},
		{"client", func(c *Config) { c.Mode = ModeClient; c.Broker = "tcp://gw:1883"; c.Addr = "nonsense" }, ""},
		{"client ws", func(c *Config) { c.Mode = ModeClient; c.Broker = "ws://gw:9001/mqtt" }, ""},
		{"client ssl with password", func(c *Config) {
			c.Mode, c.Broker, c.Username, c.PasswordFile = ModeClient, "ssl://gw:8883", "node", "/etc/edged/mqtt.pw"
		}, ""},
		{"client without broker", func(c *Config) { c.Mode = ModeClient }, "broker: must be a URL"},
		{"client bad scheme", func(c *Config) { c.Mode = ModeClient; c.Broker = "http://gw" }, `broker: scheme must be one of`},
		{"client no host", func(c *Config) { c.Mode = ModeClient; c.Broker = "tcp://" }, "broker: must name a host"},
		{"client password without user", func(c *Config) { c.Mode = ModeClient; c.Broker = "tcp://gw:1883"; c.PasswordFile = "x" }, "username: must not be empty when password_file is set"},
		{"client reconnect", func(c *Config) { c.Mode = ModeClient; c.Broker = "tcp://gw:1883"; c.ReconnectMaxInterval = 0 }, "reconnect_max_interval: must be positive"},
		{"prefix", func(c *Config) { c.TopicPrefix = "site1/edged/pi-3" }, ""},
		{"prefix wildcard", func(c *Config) { c.TopicPrefix = "site/+" }, "topic_prefix: must not contain +"},
		{"prefix trailing slash", func(c *Config) { c.TopicPrefix = "site/" }, "topic_prefix: must not have empty levels"},
		{"prefix leading slash", func(c *Config) { c.TopicPrefix = "/site" }, "topic_prefix: must not have empty levels"},
		{"prefix dollar", func(c *Config) { c.TopicPrefix = "$SYS/x" }, "topic_prefix: must not start with $"},
		{"payload zero", func(c *Config) { c.MaxPayloadBytes = 0 }, "max_payload_bytes: must be from 1"},
		{"topic too small", func(c *Config) { c.MaxTopicBytes = 10 }, "max_topic_bytes: must be from 64 to 65535"},
		{"workers", func(c *Config) { c.Workers = 0 }, "workers: must be positive"},
		{"queue", func(c *Config) { c.QueueLength = -1 }, "queue_length: must not be negative"},
		{"queue zero", func(c *Config) { c.QueueLength = 0 }, ""},
		{"backend timeout", func(c *Config) { c.BackendTimeout = -time.Second }, "backend_timeout: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "0.0.0.0:1883"
	cfg.Workers = 0
	cfg.MaxTopicBytes = 0
	err := cfg.Validate()
	for _, want := range []string{"users:", "workers:", "max_topic_bytes:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestNewChecksNodeName(t *testing.T) {
	for _, node := range []string{"", "a/b", "a+", "a#"} {
		if _, err := New(DefaultConfig(), node, newFake(), Options{}); err == nil {
			t.Errorf("New with node name %q: nil error", node)
		}
	}
	cfg := DefaultConfig()
	cfg.TopicPrefix = "x"
	if _, err := New(cfg, "a/b", newFake(), Options{}); err != nil {
		t.Errorf("New with a prefix set: %v", err)
	}
	if _, err := New(DefaultConfig(), "n1", nil, Options{}); err == nil {
		t.Error("New with a nil backend: nil error")
	}
}

func TestModeOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeOff
	srv, err := New(cfg, "n1", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel, wait := run(t, srv)
	if srv.Addr() != nil || srv.Connected() {
		t.Errorf("Addr(), Connected() = %v, %v in mode off", srv.Addr(), srv.Connected())
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil {
		t.Error("second Run: nil error")
	}
}
