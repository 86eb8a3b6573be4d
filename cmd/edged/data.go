package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/internal/atomicfile"
	"github.com/edged-dev/edged/node"
	"github.com/edged-dev/edged/store"
)

// dataFlags are the flags of the commands that work on a data directory.
type dataFlags struct {
	config, dataDir, httpAddr *string
}

func newDataFlags(fs *flag.FlagSet, withHTTP bool) dataFlags {
	d := dataFlags{
		config:  fs.String("config", "", "read the configuration from `FILE`"),
		dataDir: fs.String("data-dir", "", "the node's data directory `DIR` (sets node.data_dir)"),
	}
	if withHTTP {
		d.httpAddr = fs.String("http-addr", "", "the running node's HTTP API `ADDR` (sets http.addr)")
	}
	return d
}

// load returns the configuration the flags select.
func (d dataFlags) load() (config.Config, error) {
	cfg, err := loadConfig(*d.config)
	if err != nil {
		return cfg, err
	}
	if *d.dataDir != "" {
		cfg.Node.DataDir = *d.dataDir
	}
	if d.httpAddr != nil && *d.httpAddr != "" {
		cfg.HTTP.Addr = *d.httpAddr
	}
	return cfg, nil
}

// printID implements "edged id".
func printID(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("id", "id [--config FILE] [--data-dir DIR]",
		"Print the node's libp2p peer ID and replica ID, creating the node key\nin the data directory if it has none yet.", stderr)
	flags := newDataFlags(fs, false)
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	cfg, err := flags.load()
	if err != nil {
		return err
	}
	id, err := identity.Load(cfg.Node.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "peer_id: %s\nreplica: %s\n", id.PeerID, id.Replica)
	return nil
}

// backupData implements "edged backup".
func backupData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "backup [--config FILE] [--data-dir DIR] [--http-addr ADDR] FILE",
		"Write a consistent snapshot of the node's store to FILE (- for stdout).\n"+
			"A stopped node's data directory is read directly; a running node is\n"+
			"asked over its HTTP API, and keeps serving while the backup runs.\n"+
			"The node key (identity.key in the data directory) is not included:\n"+
			"keep a copy of it apart, as a secret.", stderr)
	flags := newDataFlags(fs, true)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	cfg, err := flags.load()
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Node.DataDir); err != nil {
		return fmt.Errorf("backup: node.data_dir: %w", err)
	}
	out, commit, err := createOutput(fs.Arg(0), stdout)
	if err != nil {
		return err
	}
	db, err := store.Open(node.StoreOptions(cfg, nil))
	switch {
	case err == nil:
		err = db.Backup(out)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	case errors.Is(err, store.ErrLocked):
		err = backupOverHTTP(ctx, cfg, out)
	}
	return commit(err)
}

func backupOverHTTP(ctx context.Context, cfg config.Config, w io.Writer) error {
	c, err := newAPIClient(cfg)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("the data directory is in use, and backup over HTTP failed: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("backup from %s interrupted: %w", c.base, err)
	}
	return nil
}

// createOutput opens the backup destination. Data goes to a temporary file
// renamed into place only on success (commit(nil)), so a failed backup
// never leaves a truncated file that looks whole.
func createOutput(path string, stdout io.Writer) (io.Writer, func(error) error, error) {
	if path == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return nil, nil, err
	}
	commit := func(err error) error {
		if err == nil {
			err = f.Commit()
		}
		if err != nil {
			f.Abort()
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	}
	return f, commit, nil
}

// restoreData implements "edged restore".
func restoreData(args []string, stdin io.Reader, stderr io.Writer) error {
	fs := newFlagSet("restore", "restore [--config FILE] [--data-dir DIR] FILE",
		"Restore a backup made by edged backup (FILE, or - for stdin) into the\n"+
			"data directory, which must be empty or absent. Stop the node first.", stderr)
	flags := newDataFlags(fs, false)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	cfg, err := flags.load()
	if err != nil {
		return err
	}
	in := stdin
	if path := fs.Arg(0); path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return store.Restore(node.StoreOptions(cfg, nil), in)
}
