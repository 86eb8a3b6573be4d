package store

import "errors"

// Errors returned by the store; test with errors.Is.
var (
	// ErrLocked: another process has the data directory open.
	ErrLocked = errors.New("store: data directory in use")
	// ErrFormat: the data directory was written by an incompatible edged.
	ErrFormat = errors.New("store: incompatible data format")
	// ErrCorrupt: the data directory is damaged.
	ErrCorrupt = errors.New("store: data directory damaged")
	// ErrDiskFull: the disk has no space left; nothing of the commit was
	// stored, reads still work, and writes resume when space returns.
	ErrDiskFull = errors.New("store: disk full")
	// ErrBudget: the data directory reached its byte budget.
	ErrBudget = errors.New("store: data budget exhausted")
	// ErrInvalidName: a key name the store cannot hold.
	ErrInvalidName = errors.New("store: invalid name")
	// ErrTooLarge: a value over MaxValueBytes.
	ErrTooLarge = errors.New("store: value too large")
	// ErrTxnTooBig: a commit with more writes than one transaction holds
	// (the profile's memtable size bounds it); nothing was stored.
	ErrTxnTooBig = errors.New("store: too many writes for one commit")
	// ErrFailed: a commit failed after Badger took it, so what it left is
	// unknown until the data directory is opened again; the store refuses
	// every later commit (see DB.Failed).
	ErrFailed = errors.New("store: failed")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrNotEmpty: restore into a data directory that holds data.
	ErrNotEmpty = errors.New("store: data directory not empty")
	// ErrNoStore: a read-only open (Options.ReadOnly) of a directory that
	// holds no edged store: absent, without Badger's files, or an empty
	// Badger database.
	ErrNoStore = errors.New("store: not an edged data directory")
	// ErrUnclean: a read-only open of a store that was not closed cleanly
	// (its process crashed or lost power): Badger must replay and
	// truncate its log, which writes, before it can read the store.
	ErrUnclean = errors.New("store: data directory not closed cleanly")
	// ErrReadOnly: a write to a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrBadBackup: restore of a file that is not a whole edged backup:
	// another file, a damaged one, or one cut short.
	ErrBadBackup = errors.New("store: not a whole edged backup")
)
