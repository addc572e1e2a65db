package testutil

import (
	"os/exec"
	"strconv"
	"testing"
)

// Bind is a bind mount: the directory or file From appears at To.
type Bind struct{ From, To string }

// InMountNamespace returns a command that runs name with args in a new
// private mount namespace where binds are mounted first. The rest of the
// machine does not see the mounts; they go with the process. It lets a
// test give a program (and its children) another /run/dbus or
// /usr/share/... without touching the machine's.
func InMountNamespace(t testing.TB, binds []Bind, name string, args ...string) *exec.Cmd {
	t.Helper()
	unshare := RequireTool(t, "unshare")
	// The paths travel as arguments, never through the shell's parser.
	script := `set -e
n=$1; shift
while [ "$n" -gt 0 ]; do mount --bind "$1" "$2"; shift 2; n=$((n-1)); done
exec "$@"`
	all := []string{"-m", "--propagation", "private", "--", "sh", "-c", script, "sh", strconv.Itoa(len(binds))}
	for _, b := range binds {
		all = append(all, b.From, b.To)
	}
	all = append(all, name)
	all = append(all, args...)
	return exec.Command(unshare, all...)
}
