package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// TestInstallScript installs into a staging root: the binaries report the
// version they were built with, and completions, man pages and the dist/
// files land where docs/daemon.md says.
func TestInstallScript(t *testing.T) {
	testutil.RequireTool(t, "go")
	bash := testutil.RequireTool(t, "bash")
	dest := t.TempDir()
	cmd := exec.Command(bash, "../scripts/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "VERSION=9.9-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	for _, p := range []string{
		"usr/bin/os-update", "usr/libexec/os-updated",
		"usr/share/bash-completion/completions/os-update", "usr/share/zsh/site-functions/_os-update",
		"usr/share/fish/vendor_completions.d/os-update.fish",
		"usr/share/man/man1/os-update.1", "usr/share/man/man1/os-update-upgrade.1", "usr/share/man/man1/os-update-repo-pull.1",
		"usr/share/man/man8/os-updated.8",
		"usr/share/dbus-1/system.d/org.osupdate.OSUpdate1.conf", "usr/share/dbus-1/system-services/org.osupdate.OSUpdate1.service",
		"usr/lib/systemd/system/os-updated.service", "usr/lib/systemd/system/os-update-automatic.timer",
		"usr/share/polkit-1/actions/org.osupdate.OSUpdate1.policy",
	} {
		if fi, err := os.Stat(filepath.Join(dest, p)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, bin := range []string{"usr/bin/os-update", "usr/libexec/os-updated"} {
		out, err := exec.Command(filepath.Join(dest, bin), "--version").Output()
		if err != nil || !strings.Contains(string(out), " 9.9-test\ncommit: ") {
			t.Errorf("%s --version: %v %q", bin, err, out)
		}
	}
	if out, err := exec.Command(bash, "-n", filepath.Join(dest, "usr/share/bash-completion/completions/os-update")).CombinedOutput(); err != nil {
		t.Errorf("bash -n completion: %v\n%s", err, out)
	}
	// The installed completion completes subcommands by asking the binary.
	bashCompletion := testutil.RequireFile(t, "/usr/share/bash-completion/bash_completion", "bash-completion")
	script := `source "$3"; source "$1"; PATH="$2:$PATH"; COMP_WORDS=(os-update repo pu); COMP_CWORD=2; COMP_LINE="os-update repo pu"; COMP_POINT=${#COMP_LINE}; __start_os-update os-update pu os-update; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command(bash, "-c", script, "bash", filepath.Join(dest, "usr/share/bash-completion/completions/os-update"), filepath.Join(dest, "usr/bin"), bashCompletion).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pull") {
		t.Errorf("bash completion of 'os-update repo pu': %v %q", err, out)
	}
}
