package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PolkitdPath is where Debian's polkitd package installs the daemon.
const PolkitdPath = "/usr/lib/polkit-1/polkitd"

// StartPolkit runs polkitd on the bus at busAddr (as the system bus it
// serves), knowing only the actions of the .policy files and the rules of
// the .rules files given: they are bind-mounted over polkit's directories
// in a mount namespace of its own, so the machine's polkit setup is
// neither used nor changed. It returns when polkitd owns its bus name and
// stops it when the test ends.
func StartPolkit(t testing.TB, busAddr string, policies, rules []string) {
	t.Helper()
	RequireRoot(t)
	polkitd := RequireFile(t, PolkitdPath, "polkitd")
	dbusSend := RequireTool(t, "dbus-send")
	dir := t.TempDir()
	actions, rulesDir := filepath.Join(dir, "actions"), filepath.Join(dir, "rules.d")
	for _, d := range []string{actions, rulesDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755) // polkitd drops to its own user
	copyInto := func(dst string, files []string) {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyInto(actions, policies)
	copyInto(rulesDir, rules)
	cmd := InMountNamespace(t, []Bind{
		{actions, "/usr/share/polkit-1/actions"},
		{rulesDir, "/etc/polkit-1/rules.d"},
		{rulesDir, "/usr/share/polkit-1/rules.d"},
	}, polkitd, "--no-debug")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+busAddr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start polkitd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("polkitd: %s", log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command(dbusSend, "--bus="+busAddr, "--print-reply", "--dest=org.freedesktop.DBus", "/",
			"org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.PolicyKit1").Output()
		if strings.Contains(string(out), "boolean true") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("polkitd did not get its bus name within 30 s: %s", log.String())
}
