package testutil

import (
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// CreateUser adds a local user with a password and supplementary groups
// (for tests that log in through PAM, such as Cockpit's) and returns its
// uid. The user and its home go when the test ends. A user of that name
// left by an interrupted run is replaced, so a test that may run in two
// test binaries at once must make its names unique (with the pid).
func CreateUser(t testing.TB, name, password string, groups ...string) uint32 {
	t.Helper()
	RequireRoot(t)
	useradd := RequireTool(t, "useradd")
	userdel := RequireTool(t, "userdel")
	chpasswd := RequireTool(t, "chpasswd")
	if _, err := user.Lookup(name); err == nil {
		exec.Command(userdel, "-f", "-r", name).Run()
	}
	args := []string{"-m", "-s", "/bin/sh"}
	if len(groups) > 0 {
		args = append(args, "-G", strings.Join(groups, ","))
	}
	Run(t, useradd, append(args, name)...)
	t.Cleanup(func() {
		if out, err := exec.Command(userdel, "-f", "-r", name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v %s", name, err, out)
		}
	})
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd %s: %v %s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(uid)
}
