package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/edged-dev/edged/buildinfo"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/node"
)

// errUsage reports a command line that edged cannot make sense of. run has
// already printed the problem and the usage to stderr; main exits with
// status 2.
var errUsage = errors.New("usage error")

const usage = `edged is an edge data node.

Usage:
  edged <command> [arguments]

Commands:
  run             run the node until SIGINT or SIGTERM
  aggregate       run the cloud aggregator until SIGINT or SIGTERM
  version         print the version, commit, Go version and platform
  config check    check a configuration file
  id              print the node's peer ID and replica ID
  backup          write a consistent snapshot of the node's store
  restore         restore a backup into an empty data directory
  get             print a key of the running node
  put             apply an operation to a key of the running node
  status          print the running node's status
  help            print this help

Run "edged <command> -h" for the flags of a command.
`

// run executes the command line args (without the program name), writing
// output to stdout and messages to stderr; a command that runs until
// stopped, like "run", stops when ctx is cancelled. It returns
// flag.ErrHelp after printing help that -h asked for, errUsage after
// printing a usage problem, and any other error for main to print.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "run":
		return runNode(ctx, args, stderr)
	case "aggregate":
		return runAggregator(ctx, args, stderr)
	case "version":
		return printVersion(args, stdout, stderr)
	case "config":
		return checkConfig(args, stdout, stderr)
	case "id":
		return printID(args, stdout, stderr)
	case "backup":
		return backupData(ctx, args, stdout, stderr)
	case "restore":
		return restoreData(args, os.Stdin, stderr)
	case "get", "put", "status":
		return clientCommand(ctx, cmd, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "edged: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// runNode implements "edged run".
func runNode(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := runConfig(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	if limit, ok := memoryLimit(cfg.Store.Profile, os.LookupEnv); ok {
		debug.SetMemoryLimit(limit)
		log.Info("go memory limit set from store.profile", "bytes", limit)
	}
	return n.Run(ctx)
}

// lowMemoryLimit is the Go runtime's soft memory limit on the low-memory
// profile: a node on a 512 MiB board collects garbage harder as its heap
// nears it, instead of growing until the kernel's OOM killer steps in.
const lowMemoryLimit = 256 << 20

// memoryLimit returns the soft memory limit for a store profile, and
// false when there is none to set: on the standard profile, or when the
// GOMEMLIMIT environment variable already set one.
func memoryLimit(profile string, lookup func(string) (string, bool)) (int64, bool) {
	if _, set := lookup("GOMEMLIMIT"); set || profile != "low-memory" {
		return 0, false
	}
	return lowMemoryLimit, true
}

// commonFlags are the flags "edged run" and "edged aggregate" share.
type commonFlags struct {
	file, dataDir, httpAddr, logLevel, cloudURL, fleet *string
}

func addCommonFlags(fs *flag.FlagSet) commonFlags {
	return commonFlags{
		file:     fs.String("config", "", "read the configuration from `FILE` (default: built-in defaults)"),
		dataDir:  fs.String("data-dir", "", "keep the node's data in `DIR` (sets node.data_dir)"),
		httpAddr: fs.String("http-addr", "", "serve the HTTP API on host:port `ADDR` (sets http.addr)"),
		logLevel: fs.String("log-level", "", "log at `LEVEL`: debug, info, warn or error (sets log.level)"),
		cloudURL: fs.String("cloud-url", "", "the cloud MQTT broker `URL`: tcp:// or mqtt://host:port, ssl://, tls:// or mqtts://host:port (TLS), ws:// or wss://host/path (WebSocket) (sets cloud.url)"),
		fleet:    fs.String("fleet", "", "the node's fleet `NAME` (sets node.fleet)"),
	}
}

// load returns the configuration the flags select: defaults, then the
// --config file, EDGED_* environment variables, then the flags set,
// which set reports through apply for the flags that are not common.
func (c commonFlags) load(fs *flag.FlagSet, apply func(f *flag.Flag, cfg *config.Config)) (config.Config, error) {
	cfg, err := loadConfig(*c.file)
	if err != nil {
		return config.Config{}, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.Node.DataDir = *c.dataDir
		case "http-addr":
			cfg.HTTP.Addr = *c.httpAddr
		case "log-level":
			cfg.Log.Level = *c.logLevel
		case "cloud-url":
			cfg.Cloud.URL = *c.cloudURL
		case "fleet":
			cfg.Node.Fleet = *c.fleet
		default:
			apply(f, &cfg)
		}
	})
	return cfg, nil
}

// runConfig parses the flags of "edged run" and returns the valid
// configuration they select. Precedence, lowest first: defaults, the
// --config file, EDGED_* environment variables, flags.
func runConfig(args []string, stderr io.Writer) (config.Config, error) {
	fs := newFlagSet("run", "run [flags]", "Run the node until SIGINT or SIGTERM.", stderr)
	common := addCommonFlags(fs)
	p2pAddr := fs.String("p2p-addr", "", "replicate with peers, listening on libp2p `MULTIADDR` (sets p2p.addr)")
	fleetKey := fs.String("fleet-key", "", "the fleet's key `FILE` (sets p2p.fleet_key_file)")
	mdns := fs.Bool("mdns", true, "advertise the node and find peers on the LAN over mDNS (sets p2p.mdns)")
	var peers []string
	fs.Func("peer", "a static peer `MULTIADDR` /ip4/…/tcp/…/p2p/<peer ID>; repeatable (sets p2p.peers)", func(s string) error {
		peers = append(peers, s)
		return nil
	})
	var relays []string
	fs.Func("relay", "a relay `MULTIADDR` /ip4/…/tcp/…/p2p/<peer ID> for a node behind a NAT; repeatable (sets p2p.relays)", func(s string) error {
		relays = append(relays, s)
		return nil
	})
	relayService := fs.Bool("relay-service", false, "relay for the fleet's nodes behind NATs (sets p2p.relay_service)")
	if err := parseArgs(fs, args, 0); err != nil {
		return config.Config{}, err
	}
	cfg, err := common.load(fs, func(f *flag.Flag, cfg *config.Config) {
		switch f.Name {
		case "relay":
			cfg.P2P.Relays = relays
		case "relay-service":
			cfg.P2P.RelayService = *relayService
		case "p2p-addr":
			cfg.P2P.Addr = *p2pAddr
		case "fleet-key":
			cfg.P2P.FleetKeyFile = *fleetKey
		case "mdns":
			cfg.P2P.MDNS = *mdns
		case "peer":
			cfg.P2P.Peers = peers
		}
	})
	if err != nil {
		return config.Config{}, err
	}
	return cfg, cfg.Validate()
}

// runAggregator implements "edged aggregate".
func runAggregator(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("aggregate", "aggregate --cloud-url URL [flags]",
		"Run the cloud aggregator until SIGINT or SIGTERM: merge the batches of the\n"+
			"fleets' nodes from the broker into this store, acknowledge them, and serve\n"+
			"the HTTP API over the merged state, with GET /v1/nodes.", stderr)
	common := addCommonFlags(fs)
	var fleets []string
	fs.Func("aggregate-fleet", "merge only fleet `NAME`; repeatable (sets cloud.fleets; default: every fleet)", func(s string) error {
		fleets = append(fleets, s)
		return nil
	})
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	cfg, err := common.load(fs, func(f *flag.Flag, cfg *config.Config) {
		if f.Name == "aggregate-fleet" {
			cfg.Cloud.Fleets = fleets
		}
	})
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	n, err := node.NewAggregator(cfg, log)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// printVersion implements "edged version".
func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version", "Print the version, commit, Go version and platform of this build.", stderr)
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintln(stdout, buildinfo.Get())
	return nil
}

// checkConfig implements "edged config check".
func checkConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, "Usage: edged config check FILE\n")
		return errUsage
	}
	fs := newFlagSet("config check", "config check FILE",
		"Check the configuration in FILE, with EDGED_* environment variables applied,\n"+
			"and report every problem with its field path.", stderr)
	if err := parseArgs(fs, args[1:], 1); err != nil {
		return err
	}
	file := fs.Arg(0)
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", file)
	return nil
}

// loadConfig returns the defaults overridden by the YAML file at path, if
// path is not empty, and then by EDGED_* environment variables. It does not
// validate the result.
func loadConfig(path string) (config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return config.Config{}, err
		}
	}
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// newLogger returns a logger that writes to w as the valid cfg asks.
func newLogger(w io.Writer, cfg config.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // cannot fail: Validate accepted the level
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newFlagSet returns the flag set of a command, which prints its problems
// and usage to stderr instead of exiting.
func newFlagSet(name, synopsis, doc string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: edged %s\n\n%s\n\n", synopsis, doc)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args with fs and checks that n arguments follow the
// flags. On failure the problem and the usage have been printed, and the
// error is flag.ErrHelp for -h, errUsage otherwise.
func parseArgs(fs *flag.FlagSet, args []string, n int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != n {
		fmt.Fprintf(fs.Output(), "edged %s: wrong number of arguments (want %d, got %d)\n", fs.Name(), n, fs.NArg())
		fs.Usage()
		return errUsage
	}
	return nil
}
