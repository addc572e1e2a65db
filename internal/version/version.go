// Package version tells which build of os-update is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time to override what the build info says:
//
//	go build -ldflags "-X github.com/osupdate/os-update/internal/version.Version=1.2 \
//	  -X github.com/osupdate/os-update/internal/version.Commit=$(git rev-parse HEAD)"
var (
	Version string
	Commit  string
)

// Info is the version, the VCS commit and the Go release of this binary.
type Info struct {
	Version, Commit, Go string
}

// Get reads the link-time values, else the build info Go records (the
// module version, vcs.revision and vcs.modified), else "devel"/"unknown".
func Get() Info {
	i := Info{Version: Version, Commit: Commit, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			modified := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					i.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if i.Commit != "" && modified {
				i.Commit += "-dirty"
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is what --version prints after the program name.
func String() string {
	i := Get()
	return fmt.Sprintf("%s\ncommit: %s\ngo: %s", i.Version, i.Commit, i.Go)
}
