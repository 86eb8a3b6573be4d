package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// A backup file is a header line, Badger's backup stream (frames of an
// 8-byte little-endian length and that many bytes of a protobuf KV list),
// and, from version 2, an end trailer:
//
//	"EDGED-BACKUP-2\n"
//	frames...
//	endMarker (8 bytes, all ones) | stream bytes (8, LE) | CRC-32C (4, LE)
//
// where stream bytes counts the frames' bytes and the CRC-32C
// (Castagnoli) covers the header and the frames. The marker stands where
// a frame's length would: no frame is that long (maxBackupFrame). Without
// the trailer a file cut short between two frames reads as a whole
// smaller backup; with it, restore refuses every truncation and a
// damaged byte.
//
// Version 1 files (the same without the trailer) are still restored, but
// their truncation at a frame boundary cannot be told.
const (
	backupMagic   = "EDGED-BACKUP-2\n"
	backupMagicV1 = "EDGED-BACKUP-1\n"
	// endMarker starts the trailer in place of a frame length.
	endMarker = math.MaxUint64
	// trailerSize is the trailer's size after its marker.
	trailerSize = 8 + 4
)

// castagnoli is the CRC-32C table: hardware-assisted on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Backup writes a consistent snapshot of the whole store to w: a short
// header, Badger's backup stream of one read transaction, which the node
// keeps serving during, and an end trailer that restore requires. It is
// safe to call while the node writes, and on a read-only store.
func (db *DB) Backup(w io.Writer) error {
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	sw := &sumWriter{w: w, crc: crc32.Checksum([]byte(backupMagic), castagnoli)}
	if _, err := db.bdb.Backup(sw, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	t := make([]byte, 8+trailerSize)
	binary.LittleEndian.PutUint64(t, endMarker)
	binary.LittleEndian.PutUint64(t[8:], sw.n)
	binary.LittleEndian.PutUint32(t[16:], sw.crc)
	if _, err := w.Write(t); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// sumWriter counts and checksums what passes to w.
type sumWriter struct {
	w   io.Writer
	n   uint64
	crc uint32
}

func (s *sumWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += uint64(n)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	return n, err
}

// readBackupHeader reads the header of a backup from r and returns the
// frame reader for what follows it.
func readBackupHeader(r io.Reader) (*frameLimit, error) {
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return nil, fmt.Errorf("%w: not an edged backup (%d bytes, shorter than the header)", ErrBadBackup, len(magic))
	}
	switch string(magic) {
	case backupMagic:
		return &frameLimit{r: r, max: maxBackupFrame, trailer: true, crc: crc32.Checksum(magic, castagnoli)}, nil
	case backupMagicV1:
		return &frameLimit{r: r, max: maxBackupFrame}, nil
	}
	return nil, fmt.Errorf("%w: not an edged backup (header %q, want %q or %q)", ErrBadBackup, magic, backupMagic, backupMagicV1)
}

// CheckBackup reads a whole backup from r, without loading it: it
// checks the header, the frames' lengths and, from version 2, the end
// trailer. It returns the format version; 1 means the file has no
// trailer, so a cut between two frames passes unseen. Errors wrap
// ErrBadBackup. edged backup checks what a running node sends with it.
func CheckBackup(r io.Reader) (version int, err error) {
	f, err := readBackupHeader(r)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return f.version(), nil
}

// Restore loads a backup made by Backup into the data directory o.Dir,
// which must be empty or absent: restore never merges into or overwrites
// existing data. A backup that is not whole is refused (ErrBadBackup),
// and what was loaded of it is removed. A version 1 backup, which has no
// end trailer, is restored with a warning to o.Logger.
func Restore(o Options, r io.Reader) (err error) {
	o, err = o.withDefaults()
	if err != nil {
		return err
	}
	created := false
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s; restore into an empty directory and point node.data_dir at it", ErrNotEmpty, o.Dir)
	} else if errors.Is(err, os.ErrNotExist) {
		created = true
	} else if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	f, err := readBackupHeader(bufio.NewReader(r))
	if err != nil {
		return err
	}
	if f.version() == 1 {
		o.Logger.Warn("store: restoring a version 1 backup: it has no end trailer, so a copy cut short between two frames would restore as a smaller store without error",
			"dir", o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	// A failed restore removes what it loaded: a partial store opens
	// like a whole one.
	defer func() {
		if err != nil {
			if rerr := removeRestored(o.Dir, created); rerr != nil {
				err = fmt.Errorf("%w; removing what was loaded into %s failed, remove it by hand: %v", err, o.Dir, rerr)
			}
		}
	}()
	bdb, err := badger.Open(o.badgerOptions())
	if err != nil {
		return openError(o.Dir, err)
	}
	if err := bdb.Load(f, 256); err != nil {
		bdb.Close()
		return fmt.Errorf("%w: %v; nothing of it was kept in %s", ErrBadBackup, err, o.Dir)
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

// removeRestored removes what a failed restore wrote: dir itself when
// restore created it, else its contents (it was empty).
func removeRestored(dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// maxBackupFrame bounds a frame of Badger's backup stream (a batch of
// keys, about 16 MiB and at most about 100 MiB as Badger writes them).
const maxBackupFrame = 128 << 20

// frameLimit passes Badger's backup stream through (frames of an 8-byte
// little-endian length and that many bytes) and refuses a frame over max
// before Load allocates it: a damaged or hostile file would otherwise make
// it allocate whatever its length says and kill the process. With trailer
// set (version 2) it requires the end trailer after the last frame, checks
// it against what passed, and requires the end of the input after it; it
// returns io.EOF only then.
type frameLimit struct {
	r       io.Reader
	max     uint64
	trailer bool   // version 2: the stream ends with the end trailer
	crc     uint32 // CRC-32C of the header and the frames so far
	n       uint64 // bytes of frames so far
	pending []byte // the current frame's length, not yet passed on
	left    uint64 // bytes of the current frame not yet passed on
	end     bool   // the trailer was read and checked
}

func (f *frameLimit) version() int {
	if f.trailer {
		return 2
	}
	return 1
}

func (f *frameLimit) Read(p []byte) (int, error) {
	if f.end {
		return 0, io.EOF
	}
	if len(f.pending) == 0 && f.left == 0 {
		h := make([]byte, 8)
		if _, err := io.ReadFull(f.r, h); err != nil {
			if errors.Is(err, io.EOF) && f.trailer {
				return 0, fmt.Errorf("the backup ends after %d bytes of frames without its end trailer: it was cut short", f.n)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("the backup ends inside a frame's length after %d bytes of frames: it was cut short", f.n)
			}
			return 0, err // version 1: io.EOF between frames is the end
		}
		size := binary.LittleEndian.Uint64(h)
		if f.trailer && size == endMarker {
			return 0, f.readTrailer()
		}
		if size > f.max {
			return 0, fmt.Errorf("a frame of %d bytes, limit %d", size, f.max)
		}
		f.crc = crc32.Update(f.crc, castagnoli, h)
		f.n += 8
		f.pending, f.left = h, size
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	n, err := f.r.Read(p[:min(uint64(len(p)), f.left)])
	f.left -= uint64(n)
	f.crc = crc32.Update(f.crc, castagnoli, p[:n])
	f.n += uint64(n)
	if err == io.EOF && f.left > 0 {
		err = fmt.Errorf("the backup ends inside a frame, %d bytes short: it was cut short: %w", f.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// readTrailer reads and checks the end trailer, whose marker was read,
// and the end of the input after it. It returns io.EOF when all is well.
func (f *frameLimit) readTrailer() error {
	t := make([]byte, trailerSize)
	if _, err := io.ReadFull(f.r, t); err != nil {
		return fmt.Errorf("the backup ends inside its end trailer: it was cut short")
	}
	n, crc := binary.LittleEndian.Uint64(t), binary.LittleEndian.Uint32(t[8:])
	if n != f.n {
		return fmt.Errorf("the end trailer counts %d bytes of frames, the backup holds %d", n, f.n)
	}
	if crc != f.crc {
		return fmt.Errorf("checksum mismatch: the end trailer says CRC-32C %08x, the backup's bytes sum to %08x: it was damaged", crc, f.crc)
	}
	if k, _ := io.ReadFull(f.r, make([]byte, 1)); k > 0 {
		return fmt.Errorf("data after the end trailer: the backup was damaged or had something appended")
	}
	f.end = true
	return io.EOF
}
