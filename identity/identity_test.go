package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCreatesOnceAndKeeps(t *testing.T) {
	dir := t.TempDir()
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.PeerID != b.PeerID || a.Replica != b.Replica || a.Replica == 0 {
		t.Fatalf("identity changed across loads: %s/%s vs %s/%s", a.PeerID, a.Replica, b.PeerID, b.Replica)
	}
	if c, _ := Load(t.TempDir()); c.Replica == a.Replica {
		t.Fatal("two fresh directories got the same replica ID")
	}
}

func TestDamagedKeyIsNotReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v, want a damaged-key error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Fatal("the damaged key file was overwritten")
	}
}
