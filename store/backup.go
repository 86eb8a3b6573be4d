package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// backupMagic starts every backup file, followed by Badger's backup stream.
const backupMagic = "EDGED-BACKUP-1\n"

// Backup writes a consistent snapshot of the whole store to w: a short
// header, then Badger's backup stream of one read transaction, which the
// node keeps serving during. It is safe to call while the node writes.
func (db *DB) Backup(w io.Writer) error {
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := db.bdb.Backup(w, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// Restore loads a backup made by Backup into the data directory o.Dir,
// which must be empty or absent: restore never merges into or overwrites
// existing data.
func Restore(o Options, r io.Reader) error {
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s; restore into an empty directory and point node.data_dir at it", ErrNotEmpty, o.Dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: restore: %w", err)
	}
	br := bufio.NewReader(r)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return fmt.Errorf("store: restore: not an edged backup (bad header)")
	}
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	bdb, err := badger.Open(o.badgerOptions())
	if err != nil {
		return openError(o.Dir, err)
	}
	if err := bdb.Load(&frameLimit{r: br, max: maxBackupFrame}, 256); err != nil {
		bdb.Close()
		return fmt.Errorf("store: restore: the backup is damaged or truncated: %w (remove %s before trying another backup)", err, o.Dir)
	}
	if err := bdb.Close(); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	// Opening checks the format marker and reads the context back.
	db, err := Open(o)
	if err != nil {
		return fmt.Errorf("store: restore: the restored data does not open: %w", err)
	}
	return db.Close()
}

// maxBackupFrame bounds a frame of Badger's backup stream (a batch of
// keys, about 16 MiB and at most about 100 MiB as Badger writes them).
const maxBackupFrame = 128 << 20

// frameLimit passes Badger's backup stream through (frames of an 8-byte
// little-endian length and that many bytes) and refuses a frame over max
// before Load allocates it: a damaged or hostile file would otherwise make
// it allocate whatever its length says and kill the process.
type frameLimit struct {
	r       io.Reader
	max     uint64
	pending []byte // the current frame's length, not yet passed on
	left    uint64 // bytes of the current frame not yet passed on
}

func (f *frameLimit) Read(p []byte) (int, error) {
	if len(f.pending) == 0 && f.left == 0 {
		h := make([]byte, 8)
		if _, err := io.ReadFull(f.r, h); err != nil {
			return 0, err // io.EOF between frames: the end
		}
		size := binary.LittleEndian.Uint64(h)
		if size > f.max {
			return 0, fmt.Errorf("a frame of %d bytes, limit %d", size, f.max)
		}
		f.pending, f.left = h, size
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	n, err := f.r.Read(p[:min(uint64(len(p)), f.left)])
	f.left -= uint64(n)
	if err == io.EOF && f.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
