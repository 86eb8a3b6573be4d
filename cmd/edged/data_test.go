package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/identity"
	"github.com/edged-dev/edged/store"
)

// newStore creates a store in dir that has seen writes 1…5 of replica
// 1, and closes it.
func newStore(t *testing.T, dir string) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ctx crdt.Context
	ctx.AddRange(1, 1, 5)
	if err := db.Commit(store.Batch{Context: ctx}); err != nil {
		t.Fatal(err)
	}
}

// TestBackupOfNoStoreFails: "edged backup --data-dir DIR FILE" of a
// directory that holds no edged store (a typo, the wrong mount, the parent
// of the data directory) fails naming it, and writes nothing into it and
// no backup.
func TestBackupOfNoStoreFails(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a store\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "x.backup")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"backup", "--data-dir", dir, out}, &stdout, &stderr)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err == nil || !errors.Is(err, store.ErrNoStore) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "holds no edged store") {
		t.Errorf("backup of a directory without a store: %v, want an error naming %s as holding no edged store; it now holds %v", err, dir, names)
	}
	if len(entries) != 1 {
		t.Errorf("backup wrote into the directory it should only read: %v", names)
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("a failed backup left %v", left)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	if err := run(context.Background(), []string{"backup", "--data-dir", missing, out}, &stdout, &stderr); !errors.Is(err, store.ErrNoStore) {
		t.Errorf("backup of a missing directory: %v, want ErrNoStore", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup created %s", missing)
	}
}

// TestBackupOfStoppedNodeRestores: a stopped node's directory is backed
// up and the backup restores.
func TestBackupOfStoppedNodeRestores(t *testing.T) {
	dir := t.TempDir()
	newStore(t, dir)
	out := filepath.Join(t.TempDir(), "x.backup")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"backup", "--data-dir", dir, out}, &stdout, &stderr); err != nil {
		t.Fatalf("backup: %v (%s)", err, stderr.String())
	}
	restored := filepath.Join(t.TempDir(), "r")
	if err := run(context.Background(), []string{"restore", "--data-dir", restored, out}, &stdout, &stderr); err != nil {
		t.Fatalf("restore: %v (%s)", err, stderr.String())
	}
	db, err := store.Open(store.Options{Dir: restored})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ctx := db.Context(); ctx.Max(1) != 5 {
		t.Fatalf("context after backup and restore: %v, want replica 1 up to 5", ctx)
	}
	if stderr.Len() != 0 {
		t.Errorf("backup and restore printed %q", stderr.String())
	}
}

// TestBackupOverHTTPRefusesACutStream: a running node's backup that ends
// early (the node cuts the stream when its backup fails) is not kept.
func TestBackupOverHTTPRefusesACutStream(t *testing.T) {
	src := t.TempDir()
	newStore(t, src)
	db, err := store.Open(store.Options{Dir: src, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	err = db.Backup(&whole)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := whole.Bytes()[:whole.Len()-1]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer srv.Close()

	// The node holds its directory: backup asks it over HTTP.
	dir := t.TempDir()
	node, err := store.Open(store.Options{Dir: dir, Durability: store.None})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	outDir := t.TempDir()
	out := filepath.Join(outDir, "x.backup")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"backup", "--data-dir", dir, "--http-addr", srv.Listener.Addr().String(), out}, &stdout, &stderr)
	if !errors.Is(err, store.ErrBadBackup) || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("backup of a cut stream: %v, want ErrBadBackup saying it was cut short", err)
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("a refused backup left %v", left)
	}

	body = whole.Bytes()
	if err := run(context.Background(), []string{"backup", "--data-dir", dir, "--http-addr", srv.Listener.Addr().String(), out}, &stdout, &stderr); err != nil {
		t.Fatalf("backup of a whole stream: %v", err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, whole.Bytes()) {
		t.Errorf("backup over HTTP wrote %d bytes (%v), want the %d the node sent", len(got), err, whole.Len())
	}
}

// TestRootRefusesDirectoryOfAnotherUser: as root, id (creating a key) and
// restore refuse a data directory owned by another user, saying to run
// them as that user; files root created there would stop the node.
func TestRootRefusesDirectoryOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the check applies to root only: run the tests as root to cover it")
	}
	const nobody = 65534
	dir := t.TempDir()
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "x.backup")
	src := t.TempDir()
	newStore(t, src)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"backup", "--data-dir", src, backup}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"id", "--data-dir", dir},
		{"restore", "--data-dir", dir, backup},
		{"restore", "--data-dir", filepath.Join(dir, "new"), backup},
	} {
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "sudo -u ") || !strings.Contains(err.Error(), "edged "+args[0]) {
			t.Errorf("edged %s as root: %v, want a refusal saying to run it with sudo -u", strings.Join(args, " "), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused commands left %v in %s", entries, dir)
	}

	// A key that exists is only read: printing it as root is fine.
	if _, err := identity.Load(dir); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"id", "--data-dir", dir}, &stdout, &stderr); err != nil {
		t.Errorf("edged id as root of an existing key: %v", err)
	}
	// A directory of root's: no refusal.
	if err := run(context.Background(), []string{"id", "--data-dir", t.TempDir()}, &stdout, &stderr); err != nil {
		t.Errorf("edged id as root in root's directory: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/edged": "/var/lib/edged",
		"--data-dir":     "--data-dir",
		"a b":            "'a b'",
		"it's":           `'it'\''s'`,
		"":               "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
