// Package buildinfo reports which build of edged is running.
//
// Version and Commit are the only package-level variables of edged: the
// linker stamps them, as the Makefile's build target does:
//
//	go build -ldflags "-X github.com/edged-dev/edged/buildinfo.Version=v1.2.3 \
//		-X github.com/edged-dev/edged/buildinfo.Commit=0123abc" ./cmd/edged
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
)

var (
	// Version is the release version, such as "v1.2.3" or a
	// `git describe` string; "dev" in a build that was not stamped.
	Version = "dev"
	// Commit is the source revision; "unknown" in a build that was not
	// stamped.
	Commit = "unknown"
)

// Info describes the running build.
type Info struct {
	Version   string // see Version
	Commit    string // see Commit
	GoVersion string // the Go release that built the binary, e.g. "go1.26.0"
	OS        string // GOOS of the binary, e.g. "linux"
	Arch      string // GOARCH of the binary, e.g. "arm64"
}

// Get returns the description of the running build.
func Get() Info {
	return Info{
		Version:   Version,
		Commit:    Commit,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
}

// String formats i on one line, as `edged version` prints it:
// "edged v1.2.3 (commit 0123abc, go1.26.0, linux/arm64)".
func (i Info) String() string {
	return fmt.Sprintf("edged %s (commit %s, %s, %s/%s)", i.Version, i.Commit, i.GoVersion, i.OS, i.Arch)
}

// epoch is a time every build of edged postdates: the start of the
// project's current release line. Time falls back to it.
var epoch = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Time returns when the built source was committed (the Go toolchain
// records it from version control), or a fixed earlier date when the
// build carries no such record. A wall clock that reads earlier is
// certainly wrong.
func Time() time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil && t.After(epoch) {
					return t
				}
			}
		}
	}
	return epoch
}
