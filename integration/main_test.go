// Package integration holds end-to-end tests that run the os-update binary
// against real external components: the ostree command (the reference
// implementation), HTTP servers on loopback, and so on.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// osUpdate and osUpdated are the binaries built for this test run.
var osUpdate, osUpdated string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "os-update-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // tests run the client as an unprivileged user too
	osUpdate = filepath.Join(dir, "os-update")
	osUpdated = filepath.Join(dir, "os-updated")
	for bin, pkg := range map[string]string{osUpdate: "./cmd/os-update", osUpdated: "./cmd/os-updated"} {
		build := exec.Command("go", "build", "-o", bin, "github.com/osupdate/os-update/"+pkg[2:])
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// osu runs os-update and fails the test if it fails.
func osu(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := osuErr(args...)
	if err != nil {
		t.Fatalf("os-update %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func osuErr(args ...string) (string, string, error) {
	cmd := exec.Command(osUpdate, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}
