package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

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
	// Only a new key is written; printing an existing one is safe as root.
	if _, err := os.Stat(filepath.Join(cfg.Node.DataDir, identity.KeyFile)); errors.Is(err, os.ErrNotExist) {
		if err := checkOwner("id", args, cfg.Node.DataDir); err != nil {
			return err
		}
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
			"A stopped node's data directory is read directly, read-only; a running\n"+
			"node is asked over its HTTP API, and keeps serving while the backup runs.\n"+
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
	out, commit, err := createOutput(fs.Arg(0), stdout)
	if err != nil {
		return err
	}
	// Read-only: a backup never writes to the directory it reads (as
	// root, it would leave files the node's user cannot open), and it
	// refuses a directory that holds no store rather than back up an
	// empty one it created.
	opts := node.StoreOptions(cfg, nil)
	opts.ReadOnly = true
	db, err := store.Open(opts)
	switch {
	case err == nil:
		err = db.Backup(out)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	case errors.Is(err, store.ErrLocked):
		err = backupOverHTTP(ctx, cfg, out, stderr)
	case errors.Is(err, store.ErrNoStore):
		err = fmt.Errorf("%w; is node.data_dir (--data-dir) the node's data directory?", err)
	}
	return commit(err)
}

func backupOverHTTP(ctx context.Context, cfg config.Config, w io.Writer, stderr io.Writer) error {
	c, err := newAPIClient(cfg)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("the data directory is in use, and backup over HTTP failed: %w", err)
	}
	defer resp.Body.Close()
	// Checked as it is written: a stream the node cut short (it fails
	// a backup midway by cutting it) is never kept as a backup.
	version, err := store.CheckBackup(io.TeeReader(resp.Body, w))
	if err != nil {
		return fmt.Errorf("backup from %s interrupted or damaged: %w", c.base, err)
	}
	if version == 1 {
		fmt.Fprintf(stderr, "edged: %s sent a version 1 backup (an edged from before the end trailer): restore cannot tell it from one cut short between two frames; upgrade the node for a backup that can\n", c.base)
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
	if err := checkOwner("restore", args, cfg.Node.DataDir); err != nil {
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
	// Warnings only (Badger logs its progress at info): one says when a
	// backup cannot be checked for truncation.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return store.Restore(node.StoreOptions(cfg, log), in)
}

// checkOwner refuses to run command (with its args) as root when it
// would create files in dir, or in the nearest directory above it that
// exists, and that directory belongs to another user. The packaged node
// runs as edged, in /var/lib/edged owned by edged: files root created
// there are root's, and the node cannot open them (it fails to start).
func checkOwner(command string, args []string, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	d := filepath.Clean(dir)
	info, err := os.Stat(d)
	for errors.Is(err, os.ErrNotExist) && filepath.Dir(d) != d {
		d = filepath.Dir(d)
		info, err = os.Stat(d)
	}
	if err != nil {
		return nil // the command reports it
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	owner := strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	line := []string{"sudo", "-u", owner, "edged", command}
	for _, a := range args {
		line = append(line, shellQuote(a))
	}
	return fmt.Errorf("%s: %s belongs to %s (uid %d), and this command runs as root: the files it would create there would be root's, "+
		"which a node running as %s cannot open. Run it as the directory's owner: %s",
		command, d, owner, st.Uid, owner, strings.Join(line, " "))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
