package buildinfo

import (
	"runtime"
	"testing"
)

func TestGet(t *testing.T) {
	got := Get()
	want := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if got != want {
		t.Errorf("Get() = %+v, want %+v", got, want)
	}
}

func TestInfoString(t *testing.T) {
	tests := []struct {
		info Info
		want string
	}{
		{
			info: Info{Version: "dev", Commit: "unknown", GoVersion: "go1.26.0", OS: "linux", Arch: "amd64"},
			want: "edged dev (commit unknown, go1.26.0, linux/amd64)",
		},
		{
			info: Info{Version: "v1.2.3", Commit: "0123abc", GoVersion: "go1.26.1", OS: "linux", Arch: "arm"},
			want: "edged v1.2.3 (commit 0123abc, go1.26.1, linux/arm)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.info.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
