package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/localmqtt"

	"gopkg.in/yaml.v3"
)

// exampleFile is the documented configuration shipped with edged.
const exampleFile = "../configs/edged.yaml"

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(*Config) // edits Default into the expected result
	}{
		{name: "empty", yaml: ""},
		{name: "comments only", yaml: "# nothing set\n"},
		{
			name: "some fields",
			yaml: "http:\n  addr: 0.0.0.0:9000\nshutdown_timeout: 1m30s\n",
			want: func(c *Config) {
				c.HTTP.Addr = "0.0.0.0:9000"
				c.ShutdownTimeout = 90 * time.Second
			},
		},
		{
			name: "empty section keeps defaults",
			yaml: "log:\nnode:\n  name: pi-1\n",
			want: func(c *Config) { c.Node.Name = "pi-1" },
		},
		{
			name: "a trailing empty document",
			yaml: "node:\n  name: pi-1\n---\n# end\n",
			want: func(c *Config) { c.Node.Name = "pi-1" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must be a line of the error
	}{
		{
			name: "unknown top-level field",
			yaml: "verbose: true\n",
			want: []string{"verbose: unknown field (line 1)"},
		},
		{
			name: "unknown nested field",
			yaml: "http:\n  adress: 127.0.0.1:80\n",
			want: []string{"http.adress: unknown field (line 2)"},
		},
		{
			name: "duration without unit",
			yaml: "shutdown_timeout: 10\n",
			want: []string{"shutdown_timeout: cannot unmarshal !!int `10` into time.Duration (line 1)"},
		},
		{
			name: "malformed duration",
			yaml: "shutdown_timeout: soon\n",
			want: []string{"shutdown_timeout: cannot unmarshal !!str `soon` into time.Duration (line 1)"},
		},
		{
			name: "scalar for a section",
			yaml: "log: debug\n",
			want: []string{"log: cannot unmarshal !!str `debug` into config.LogConfig (line 1)"},
		},
		{
			name: "every problem at once",
			yaml: "node:\n  nmae: x\nlog:\n  level: [debug]\nshutdown_timeout: x\n",
			want: []string{
				"node.nmae: unknown field (line 2)",
				"log.level: cannot unmarshal !!seq into string (line 4)",
				"shutdown_timeout: cannot unmarshal !!str `x` into time.Duration (line 5)",
			},
		},
		{
			name: "a second document",
			yaml: "log:\n  level: debug\n---\nhttp:\n  adress: x\n",
			want: []string{"a second YAML document at line 3 (---): the configuration is one document"},
		},
		{
			name: "syntax error",
			yaml: "http:\n  addr: [\n",
			want: []string{"yaml: line 2: did not find expected node content"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			assertLines(t, err, tt.want)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		path := writeFile(t, "log:\n  level: debug\n")
		got, err := Load(path)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		want := Default()
		want.Log.Level = "debug"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load = %+v, want %+v", got, want)
		}
	})
	t.Run("problems name the file", func(t *testing.T) {
		path := writeFile(t, "log:\n  levle: debug\n  format: [json]\n")
		_, err := Load(path)
		assertLines(t, err, []string{
			path + ": log.levle: unknown field (line 2)",
			path + ": log.format: cannot unmarshal !!seq into string (line 3)",
		})
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // each must be a line of the error; none means valid
	}{
		{name: "default"},
		{name: "named node", edit: func(c *Config) { c.Node.Name = "gw-01.site_a" }},
		{name: "any port", edit: func(c *Config) { c.HTTP.Addr = "127.0.0.1:0" }},
		{name: "all addresses with a token", edit: func(c *Config) { c.HTTP.Addr, c.HTTP.TokenFile = ":8080", "/etc/edged/token" }},
		{
			name: "all addresses without a token",
			edit: func(c *Config) { c.HTTP.Addr = "0.0.0.0:8080" },
			want: []string{`http.token_file: required when addr "0.0.0.0:8080" is not a loopback address: anyone on the network could write`},
		},
		{
			name: "p2p on the network without a fleet key",
			edit: func(c *Config) { c.P2P.Addr = "/ip4/0.0.0.0/tcp/4001"; c.P2P.Peers = []string{"/ip4/1.2.3.4/tcp/1"} },
			want: []string{
				`p2p.fleet_key_file: required (or allow) when addr "/ip4/0.0.0.0/tcp/4001" is not a loopback address: any host could join`,
				`p2p.peers[0]: "/ip4/1.2.3.4/tcp/1": want /ip4/HOST/tcp/PORT/p2p/PEER-ID (invalid p2p multiaddr)`,
			},
		},
		{
			name: "relays without an addr",
			edit: func(c *Config) { c.P2P.Relays = []string{"/ip4/1.2.3.4/tcp/1"}; c.P2P.Reachability = "behind-nat" },
			want: []string{
				`p2p.relays[0]: "/ip4/1.2.3.4/tcp/1": want /ip4/HOST/tcp/PORT/p2p/PEER-ID (invalid p2p multiaddr)`,
				`p2p.addr: required to use relays or to be one`,
				`p2p.reachability: "behind-nat" is not auto, private or public`,
			},
		},
		{
			name: "namespace scopes",
			edit: func(c *Config) { c.Namespaces = map[string]string{"secrets": "local", "Bad": "cloud", "x": "peers"} },
			want: []string{
				`namespaces.Bad: not a namespace (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)`,
				`namespaces.x: scope must be fleet, cloud or local (got "peers")`,
			},
		},
		{
			// Keys no namespace or sensor can have, which would never
			// match, in sorted order with the bad classes.
			name: "shedding keys",
			edit: func(c *Config) {
				c.Shedding.Namespaces = map[string]string{"alarms": "critical", "Alarms": "critical", "zz": "urgent", "a/b": "bulk"}
				c.Shedding.Sensors = map[string]string{"bad sensor!": "critical", "line/3": "critical", "": "normal", "t+": "bulk", "ok": "low"}
			},
			want: []string{
				`shedding.namespaces.Alarms: not a namespace (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit) (got "Alarms")`,
				`shedding.namespaces.a/b: not a namespace (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit) (got "a/b")`,
				`shedding.namespaces.zz: must be critical, normal or bulk (got "urgent")`,
				`shedding.sensors.: sensor name is empty, so no readings topic names it (got "")`,
				`shedding.sensors.line/3: sensor name must be one topic level, so no readings topic names it (got "line/3")`,
				`shedding.sensors.ok: must be critical, normal or bulk (got "low")`,
				`shedding.sensors.t+: sensor name contains a wildcard, NUL or invalid UTF-8, so no readings topic names it (got "t+")`,
			},
		},
		{
			name: "every HTTP problem with a bad addr",
			edit: func(c *Config) { c.HTTP.Addr, c.HTTP.TLSCertFile, c.HTTP.MaxConnections = "nowhere", "cert.pem", 0 },
			want: []string{
				"http.addr: must be host:port (address nowhere: missing port in address)",
				"http.tls_cert_file, tls_key_file: set both or neither",
				"http.max_connections: must be from 1 to 65536 (got 0)",
			},
		},
		{
			name: "half of TLS",
			edit: func(c *Config) { c.HTTP.TLSCertFile = "cert.pem" },
			want: []string{"http.tls_cert_file, tls_key_file: set both or neither"},
		},
		{name: "IPv6 address", edit: func(c *Config) { c.HTTP.Addr = "[::1]:8080" }},
		{name: "debug json log", edit: func(c *Config) { c.Log = LogConfig{Level: "debug", Format: "json"} }},
		{
			name: "name with a slash",
			edit: func(c *Config) { c.Node.Name = "site/gw" },
			want: []string{`node.name: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got "site/gw")`},
		},
		{
			name: "name too long",
			edit: func(c *Config) { c.Node.Name = strings.Repeat("a", 64) },
			want: []string{`node.name: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got "` + strings.Repeat("a", 64) + `")`},
		},
		{
			name: "name starting with a dash",
			edit: func(c *Config) { c.Node.Name = "-gw" },
			want: []string{`node.name: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got "-gw")`},
		},
		{
			name: "address without port",
			edit: func(c *Config) { c.HTTP.Addr = "127.0.0.1" },
			want: []string{"http.addr: must be host:port (address 127.0.0.1: missing port in address)"},
		},
		{
			name: "port out of range",
			edit: func(c *Config) { c.HTTP.Addr = "127.0.0.1:65536" },
			want: []string{`http.addr: port must be a number from 0 to 65535 (got "65536")`},
		},
		{
			name: "zero shutdown timeout",
			edit: func(c *Config) { c.ShutdownTimeout = 0 },
			want: []string{"shutdown_timeout: must be positive (got 0s)"},
		},
		{
			name: "cloud",
			edit: func(c *Config) {
				c.Cloud.URL, c.Cloud.Window, c.Cloud.CAFile, c.Cloud.AggregatorID = "http://cloud", 0, "ca.pem", "nope"
				c.Cloud.Fleets, c.Cloud.ReadingsOrder = []string{"north", "a/b"}, "random"
			},
			want: []string{
				`cloud.url: scheme must be tcp, mqtt, ws, ssl, tls, mqtts or wss (got "http://cloud")`,
				"cloud.ca_file, cert_file: need a TLS URL (ssl://, tls://, mqtts:// or wss://)",
				"cloud.window: must be from 1 to 64 (got 0)",
				"cloud.aggregator_id: not a peer ID: failed to parse peer ID: invalid cid: selected encoding not supported",
				`cloud.readings_order: must be oldest or newest (got "random")`,
				`cloud.fleets[1]: must be a fleet name (got "a/b")`,
			},
		},
		{
			name: "every problem at once",
			edit: func(c *Config) {
				*c = Config{
					Node:            NodeConfig{Name: "a b"},
					HTTP:            HTTPConfig{Addr: "localhost:http"},
					Log:             LogConfig{Level: "verbose", Format: "xml"},
					MQTT:            localmqtt.DefaultConfig(),
					P2P:             Default().P2P,
					ShutdownTimeout: -time.Second,
				}
			},
			want: []string{
				`node.name: must be at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (got "a b")`,
				"node.data_dir: must not be empty",
				`http.addr: port must be a number from 0 to 65535 (got "http")`,
				"http.max_connections: must be from 1 to 65536 (got 0)",
				`log.level: must be one of debug, info, warn, error (got "verbose")`,
				`log.format: must be one of text, json (got "xml")`,
				`store.profile: must be low-memory or standard (got "")`,
				`store.durability: must be fsync or none (got "")`,
				"store.gc_interval: must be positive (got 0s)",
				`readings.scope: must be fleet, cloud or local (got "")`,
				"shutdown_timeout: must be positive (got -1s)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.edit != nil {
				tt.edit(&c)
			}
			assertLines(t, c.Validate(), tt.want)
		})
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want func(*Config) // edits Default into the expected result
		errs []string      // each must be a line of the error
	}{
		{name: "none"},
		{
			name: "every section",
			env: map[string]string{
				"EDGED_NODE_NAME":            "pi-7",
				"EDGED_NODE_DATA_DIR":        "/var/lib/edged",
				"EDGED_HTTP_ADDR":            "127.0.0.2:80",
				"EDGED_LOG_LEVEL":            "debug",
				"EDGED_LOG_FORMAT":           "json",
				"EDGED_SHUTDOWN_TIMEOUT":     "2m",
				"EDGED_STORE_PROFILE":        "standard",
				"EDGED_STORE_DURABILITY":     "none",
				"EDGED_STORE_BUDGET_BYTES":   "1000000",
				"EDGED_STORE_MIN_FREE_BYTES": "5",
				"EDGED_STORE_GC_INTERVAL":    "1m",
				"EDGED_CLOUD_URL":            "mqtts://cloud.example:8883",
			},
			want: func(c *Config) {
				*c = Config{
					Node:            NodeConfig{Name: "pi-7", DataDir: "/var/lib/edged"},
					HTTP:            HTTPConfig{Addr: "127.0.0.2:80", MaxConnections: 512},
					Log:             LogConfig{Level: "debug", Format: "json"},
					Store:           StoreConfig{Profile: "standard", Durability: "none", BudgetBytes: 1000000, MinFreeBytes: 5, GCInterval: time.Minute},
					Readings:        Default().Readings,
					MQTT:            localmqtt.DefaultConfig(),
					P2P:             Default().P2P,
					Cloud:           Default().Cloud,
					Shedding:        Default().Shedding,
					ShutdownTimeout: 2 * time.Minute,
				}
				c.Cloud.URL = "mqtts://cloud.example:8883"
			},
		},
		{
			name: "set but empty",
			env:  map[string]string{"EDGED_NODE_DATA_DIR": ""},
			want: func(c *Config) { c.Node.DataDir = "" },
		},
		{
			name: "bad values name their variables",
			env: map[string]string{
				"EDGED_SHUTDOWN_TIMEOUT": "10",
				"EDGED_HTTP_ADDR":        "127.0.0.1:9000",
			},
			want: func(c *Config) { c.HTTP.Addr = "127.0.0.1:9000" },
			errs: []string{`EDGED_SHUTDOWN_TIMEOUT: invalid value "10" for shutdown_timeout (want time.Duration)`},
		},
		{
			name: "lists and maps are for the file",
			env:  map[string]string{"EDGED_P2P_PEERS": "/ip4/10.0.0.2/tcp/4001", "EDGED_NAMESPACES": "app=local"},
			errs: []string{
				"EDGED_P2P_PEERS: p2p.peers is a list or map, set in the configuration file only",
				"EDGED_NAMESPACES: namespaces is a list or map, set in the configuration file only",
			},
		},
		{
			name: "unrelated variables are ignored",
			env:  map[string]string{"EDGED_HTTP": "x", "HTTP_ADDR": "x", "EDGED_E2E": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Default()
			err := got.ApplyEnv(lookupMap(tt.env))
			assertLines(t, err, tt.errs)
			want := Default()
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after ApplyEnv: %+v, want %+v", got, want)
			}
		})
	}
}

// TestEnvCoversEveryField sets every field from the environment to the text
// of its default, so a field of a type ApplyEnv cannot set fails here.
func TestEnvCoversEveryField(t *testing.T) {
	env := make(map[string]string)
	leaves(reflect.ValueOf(Default()), nil, func(path []string, field reflect.Value) {
		if fromText(field) {
			env["EDGED_"+strings.ToUpper(strings.Join(path, "_"))] = fmt.Sprint(field.Interface())
		}
	})
	got := Config{}
	if err := got.ApplyEnv(lookupMap(env)); err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("after ApplyEnv: %+v, want %+v", got, Default())
	}
}

func TestSetText(t *testing.T) {
	var fields struct {
		S string
		B bool
		I int16
		U uint8
		F float64
		D time.Duration
		L []string
	}
	v := reflect.ValueOf(&fields).Elem()
	tests := []struct {
		field   string
		text    string
		want    any
		wantErr bool
	}{
		{field: "S", text: "10s", want: "10s"},
		{field: "B", text: "true", want: true},
		{field: "B", text: "yes", wantErr: true},
		{field: "I", text: "-42", want: int16(-42)},
		{field: "I", text: "40000", wantErr: true},
		{field: "U", text: "255", want: uint8(255)},
		{field: "U", text: "-1", wantErr: true},
		{field: "F", text: "0.5", want: 0.5},
		{field: "F", text: "half", wantErr: true},
		{field: "D", text: "1m30s", want: 90 * time.Second},
		{field: "D", text: "90", wantErr: true},
		{field: "L", text: "a,b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.text, func(t *testing.T) {
			field := v.FieldByName(tt.field)
			err := setText(field, tt.text)
			if tt.wantErr {
				if err == nil {
					t.Errorf("setText = nil, want an error; field = %v", field.Interface())
				}
				return
			}
			if err != nil {
				t.Fatalf("setText: %v", err)
			}
			if got := field.Interface(); got != tt.want {
				t.Errorf("field = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestPrecedence checks that the environment overrides the file, which
// overrides the defaults.
func TestPrecedence(t *testing.T) {
	path := writeFile(t, "http:\n  addr: 127.0.0.1:1000\nlog:\n  level: debug\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.ApplyEnv(lookupMap(map[string]string{"EDGED_HTTP_ADDR": "127.0.0.1:2000"})); err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	want := Default()
	want.HTTP.Addr = "127.0.0.1:2000" // environment
	want.Log.Level = "debug"          // file
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config = %+v, want %+v", cfg, want)
	}
}

// TestExampleFileIsDefault keeps configs/edged.yaml in step with Default.
func TestExampleFileIsDefault(t *testing.T) {
	got, err := Load(exampleFile)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", Default()) { // nil and empty lists alike
		t.Errorf("%s configures %+v, want Default() = %+v", exampleFile, got, Default())
	}
}

// TestExampleFileDocumentsEveryField checks that every field of Config is
// written out in configs/edged.yaml, under a comment of its own.
func TestExampleFileDocumentsEveryField(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	leaves(reflect.ValueOf(Default()), nil, func(path []string, _ reflect.Value) {
		key := findKey(doc.Content[0], path)
		switch {
		case key == nil:
			t.Errorf("%s: field %s is missing", exampleFile, strings.Join(path, "."))
		case strings.TrimSpace(key.HeadComment) == "":
			t.Errorf("%s:%d: field %s has no comment above it", exampleFile, key.Line, strings.Join(path, "."))
		}
	})
}

// FuzzParse checks that Parse never panics and that what it accepts
// survives a round trip through YAML.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(exampleFile); err == nil {
		f.Add(data)
	}
	f.Add([]byte("http: {addr: ':0'}\nshutdown_timeout: 1h\n"))
	f.Add([]byte("node:\n  nmae: x\nlog: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", cfg, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v\n%s", cfg, err, out)
		}
		// Compared as printed: an empty list may come back as nil.
		if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", cfg) {
			t.Fatalf("round trip: %+v, want %+v", again, cfg)
		}
	})
}

// findKey returns the key node at path in the mapping n, or nil.
func findKey(n *yaml.Node, path []string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != path[0] {
			continue
		}
		if len(path) == 1 {
			return n.Content[i]
		}
		return findKey(n.Content[i+1], path[1:])
	}
	return nil
}

// assertLines fails t unless err has exactly the lines want; no lines means
// err must be nil.
func assertLines(t testing.TB, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want:\n%s", strings.Join(want, "\n"))
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// lookupMap returns a lookup function, like os.LookupEnv, over env.
func lookupMap(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// writeFile writes data to a fresh file and returns its path.
func writeFile(t testing.TB, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edged.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
