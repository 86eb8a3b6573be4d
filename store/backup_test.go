package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// backupT returns a backup of a store of n names.
func backupT(t testing.TB, n int) []byte {
	t.Helper()
	db := openT(t, Options{Dir: t.TempDir(), Durability: None})
	for i := range n {
		commitOp(t, db, fmt.Sprintf("k%03d", i), "x")
	}
	var buf bytes.Buffer
	must(t, db.Backup(&buf))
	return buf.Bytes()
}

// frameEnds returns the offsets in a backup b where its header and each
// of its frames end: the last is where the trailer starts.
func frameEnds(t testing.TB, b []byte) []int {
	t.Helper()
	ends := []int{len(backupMagic)}
	for off := len(backupMagic); ; {
		size := binary.LittleEndian.Uint64(b[off:])
		if size == endMarker {
			return ends
		}
		off += 8 + int(size)
		if off > len(b)-8 {
			t.Fatalf("frame ending at %d runs past the backup's %d bytes", off, len(b))
		}
		ends = append(ends, off)
	}
}

// v1Of returns backup b in format version 1: the old header, no trailer.
func v1Of(b []byte) []byte {
	v1 := append([]byte(backupMagicV1), b[len(backupMagic):len(b)-8-trailerSize]...)
	return v1
}

// restoreFails restores b into a new directory, expects an ErrBadBackup
// naming want, and checks that nothing of it was kept.
func restoreFails(t *testing.T, what string, b []byte, want string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "r")
	err := Restore(Options{Dir: dir, Durability: None}, bytes.NewReader(b))
	if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), want) {
		t.Errorf("restore of %s: %v, want ErrBadBackup saying %q", what, err, want)
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("restore of %s left %s behind (stat: %v)", what, dir, serr)
	}
	if _, err := CheckBackup(bytes.NewReader(b)); !errors.Is(err, ErrBadBackup) {
		t.Errorf("CheckBackup of %s: %v, want ErrBadBackup", what, err)
	}
}

// TestRestoreRefusesBackupTruncatedAtFrameBoundary: a backup cut short
// between two frames of Badger's stream (or right after the header, or
// inside the end trailer) is refused, not restored as a smaller store.
func TestRestoreRefusesBackupTruncatedAtFrameBoundary(t *testing.T) {
	b := backupT(t, 10)
	ends := frameEnds(t, b)
	if len(ends) < 2 {
		t.Fatalf("backup of %d bytes has no frame", len(b))
	}
	for _, cut := range ends {
		restoreFails(t, fmt.Sprintf("%d bytes cut to %d (a frame boundary)", len(b), cut), b[:cut], "without its end trailer")
	}
	trailer := ends[len(ends)-1]
	for cut := trailer + 1; cut < len(b); cut++ {
		restoreFails(t, fmt.Sprintf("%d bytes cut to %d (in the trailer)", len(b), cut), b[:cut], "cut short")
	}
	restoreFails(t, "a header and nothing else", []byte(backupMagic), "without its end trailer")
}

// TestRestoreRefusesDamagedBackup: a changed byte anywhere, a trailer
// that counts other bytes, or data after the trailer is refused.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	b := backupT(t, 10)
	ends := frameEnds(t, b)
	trailer := ends[len(ends)-1]
	damaged := func(off int, v byte) []byte {
		d := bytes.Clone(b)
		d[off] ^= v
		return d
	}
	key := bytes.Index(b, []byte("k005")) // a key: a change that still decodes
	if key < 0 {
		t.Fatal("key k005 not found in the backup")
	}
	restoreFails(t, "a changed key in a frame", damaged(key, 0x01), "checksum mismatch")
	restoreFails(t, "a flipped bit in the trailer's checksum", damaged(len(b)-1, 0x80), "checksum mismatch")
	restoreFails(t, "a trailer counting one byte more", damaged(trailer+8, 0x01), "counts")
	restoreFails(t, "a byte after the trailer", append(bytes.Clone(b), 0), "after the end trailer")
	restoreFails(t, "a trailer marker cut", damaged(trailer, 0x01), "limit")
	restoreFails(t, "another file", []byte("garbage that is long enough"), "not an edged backup")
}

// TestRestoreVersion1: a backup of format version 1 (no trailer) still
// restores, with a warning that its truncation cannot be told.
func TestRestoreVersion1(t *testing.T) {
	b := backupT(t, 10)
	v1 := v1Of(b)
	if v, err := CheckBackup(bytes.NewReader(v1)); v != 1 || err != nil {
		t.Fatalf("CheckBackup of a version 1 backup = %d, %v; want 1, nil", v, err)
	}
	if v, err := CheckBackup(bytes.NewReader(b)); v != 2 || err != nil {
		t.Fatalf("CheckBackup of a backup = %d, %v; want 2, nil", v, err)
	}
	var logs bytes.Buffer
	dir := filepath.Join(t.TempDir(), "r")
	must(t, Restore(Options{Dir: dir, Durability: None, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, bytes.NewReader(v1)))
	if !strings.Contains(logs.String(), "version 1 backup") {
		t.Errorf("restore of a version 1 backup logged %q, want a warning naming version 1", logs.String())
	}
	db := openT(t, Options{Dir: dir, Durability: None})
	for i := range 10 {
		if vs, err := db.Get(fmt.Sprintf("k%03d", i)); err != nil || vs == nil {
			t.Fatalf("k%03d after restore of a version 1 backup: %v, %v", i, vs, err)
		}
	}
}

// dirState sums the names, sizes, modes, times and contents of the files
// of dir, to tell that nothing wrote to it.
func dirState(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %s %d\n", path, info.Size(), info.Mode(), info.ModTime().UnixNano())
		if d.Type().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(h, f)
			return err
		}
		return nil
	})
	must(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestReadOnlyOpen: a read-only store serves reads and backups without
// writing to its directory, refuses writes, and opens only an edged
// store that was closed cleanly.
func TestReadOnlyOpen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, Durability: None})
	for i := range 10 {
		commitOp(t, db, fmt.Sprintf("k%03d", i), "x")
	}
	// A copy of the files of an open store: what a crash leaves.
	crashed := t.TempDir()
	entries, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(crashed, e.Name()), b, 0o600))
	}
	if _, err := Open(Options{Dir: dir, ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only open of a store open in another process: %v, want ErrLocked", err)
	}
	must(t, db.Close())

	before := dirState(t, dir)
	ro, err := Open(Options{Dir: dir, ReadOnly: true})
	must(t, err)
	if vs, err := ro.Get("k005"); err != nil || vs == nil {
		t.Errorf("read-only Get: %v, %v", vs, err)
	}
	var buf bytes.Buffer
	must(t, ro.Backup(&buf))
	if err := ro.Commit(opBatch(t, ro, "k", "y")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Commit: %v, want ErrReadOnly", err)
	}
	must(t, ro.Close())
	if after := dirState(t, dir); after != before {
		t.Error("a read-only open, read, backup and close changed the directory")
	}
	restored := filepath.Join(t.TempDir(), "r")
	must(t, Restore(Options{Dir: restored, Durability: None}, &buf))

	crashedBefore := dirState(t, crashed)
	if _, err := Open(Options{Dir: crashed, ReadOnly: true}); !errors.Is(err, ErrUnclean) || !strings.Contains(err.Error(), "start the node once") {
		t.Errorf("read-only open of a store left by a crash: %v, want ErrUnclean saying what to do", err)
	}
	if dirState(t, crashed) != crashedBefore {
		t.Error("a refused read-only open changed the directory")
	}

	empty := t.TempDir()
	must(t, os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing")
	bare := t.TempDir() // an empty Badger database, no edged format marker
	bo, err := Options{Dir: bare}.withDefaults()
	must(t, err)
	bdb, err := badger.Open(bo.badgerOptions())
	must(t, err)
	must(t, bdb.Close())
	for _, c := range []struct{ dir, want string }{
		{empty, "holds no edged store"},
		{missing, "does not exist"},
		{bare, "empty Badger database"},
	} {
		if _, err := Open(Options{Dir: c.dir, ReadOnly: true}); !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.dir) {
			t.Errorf("read-only open of %s: %v, want ErrNoStore naming it and saying %q", c.dir, err, c.want)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open created %s", missing)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 1 {
		t.Errorf("read-only open wrote into a directory without a store: %v", entries)
	}
}

// TestOpenErrorNamesFilesOfOtherUsers: a store holding files of another
// user (left by an edged command run as root) fails to open with an error
// that says so, not that the directory is damaged. It needs root to give
// files away, and runs the check as if the process were that other user.
func TestOpenErrorNamesFilesOfOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files to another user")
	}
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, Durability: None})
	commitOp(t, db, "k", "x")
	must(t, db.Close())
	must(t, os.Chown(filepath.Join(dir, "MANIFEST"), 65534, 65534))
	msg := foreignFiles(dir)
	if !strings.Contains(msg, "MANIFEST (uid 65534)") || !strings.Contains(msg, "chown -R") {
		t.Errorf("foreignFiles = %q, want MANIFEST named with its owner and the chown to run", msg)
	}
	err := openError(dir, fmt.Errorf("while opening: open %s: %w", filepath.Join(dir, "MANIFEST"), fs.ErrPermission))
	if errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("openError of a permission error = %v, want permission denied, not damaged", err)
	}
}

// FuzzCheckBackup: whatever the bytes, CheckBackup returns; it accepts a
// version 2 input only when it ends with a trailer that counts and sums
// exactly what precedes it.
func FuzzCheckBackup(f *testing.F) {
	b := backupT(f, 3)
	f.Add(b)
	f.Add(v1Of(b))
	f.Add(b[:len(b)-1])
	f.Add([]byte(backupMagic))
	f.Add(append([]byte(backupMagic), "\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"...))
	f.Add(append([]byte(backupMagic), "\x00\x00\x00\x00\x00\x01\x00\x00"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := CheckBackup(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("error %v does not wrap ErrBadBackup", err)
			}
			return
		}
		if v != 2 {
			return
		}
		end := len(in) - 8 - trailerSize
		if end < len(backupMagic) || binary.LittleEndian.Uint64(in[end:]) != endMarker ||
			binary.LittleEndian.Uint64(in[end+8:]) != uint64(end-len(backupMagic)) ||
			binary.LittleEndian.Uint32(in[end+16:]) != crc32.Checksum(in[:end], castagnoli) ||
			!complete(in[len(backupMagic):end]) {
			t.Fatalf("accepted %x, which does not end with a matching trailer after whole frames", in)
		}
	})
}
