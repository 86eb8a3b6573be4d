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
)
