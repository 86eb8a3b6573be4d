// Package atomicfile writes a file in place of another so that a crash or
// a failed write leaves either the old file or the whole new one, never a
// truncated one: data goes to a temporary file in the same directory,
// which is synced, renamed over the path, and the directory synced so the
// rename itself survives a power cut.
//
// It is a few lines over package os. google/renameio, the usual library,
// promises atomicity only (its README: a power cut may lose the new file),
// and edged's key and backups need the rename to be durable too.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// File is a file being written in place of a path. Write to it, then
// Commit, or Abort.
type File struct {
	*os.File
	path string
	perm os.FileMode
	done bool
}

// Create starts a file in place of path, with permissions perm once
// committed.
func Create(path string, perm os.FileMode) (*File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	return &File{File: tmp, path: path, perm: perm}, nil
}

// Commit syncs the file and puts it in place of the path. On error the
// path is unchanged and the temporary file removed.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: " + f.path + ": already committed or aborted")
	}
	f.done = true
	err := f.Chmod(f.perm)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(f.path))
}

// Abort removes the temporary file; the path is unchanged. It does nothing
// after Commit, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile writes data in place of path.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
