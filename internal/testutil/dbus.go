package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartBus runs a private dbus-daemon that any local user may connect to
// (so tests can also talk to it as an unprivileged user) and returns its
// address. It is stopped when the test ends.
func StartBus(t testing.TB) string {
	t.Helper()
	return StartBusWithServices(t, "")
}

// StartBusWithServices is StartBus with a directory of D-Bus activation
// files (NAME.service) the bus starts services from on demand.
func StartBusWithServices(t testing.TB, serviceDir string) string {
	t.Helper()
	bin := RequireTool(t, "dbus-daemon")
	dir, err := os.MkdirTemp("", "osu-bus-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	cfg := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
%s
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`, sock, servicedir(serviceDir))
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr // it warns about fd limits when not PID-1's child; show only on failure
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon: %s", stderr.String())
		}
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if !ok || addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		os.Chmod(sock, 0o777)
		return strings.TrimSpace(addr)
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon did not start within 10 s")
	}
	return ""
}

func servicedir(dir string) string {
	if dir == "" {
		return ""
	}
	return "<servicedir>" + dir + "</servicedir>"
}
