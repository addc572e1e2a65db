package fleetlock

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

func TestLockUnlockAgainstSemaphore(t *testing.T) {
	srv := testutil.StartFleetLock(t, 1)
	ctx := context.Background()
	a, err := New(srv.URL, "workers", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(srv.URL+"/", "workers", "node-b")
	if err := a.Lock(ctx); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if err := a.Lock(ctx); err != nil {
		t.Fatalf("recursive lock: %v", err)
	}
	err = b.Lock(ctx)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != 409 || fe.Kind != "failed_lock_semaphore_full" || !strings.Contains(err.Error(), "semaphore currently full") {
		t.Fatalf("second client: %v, want the server's semaphore-full error", err)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if h := srv.Holders("workers"); len(h) != 1 || h[0] != "node-b" {
		t.Fatalf("holders %v", h)
	}
	// Another group has its own slots.
	c, _ := New(srv.URL, "", "node-c")
	if c.Group() != DefaultGroup {
		t.Fatalf("default group %q", c.Group())
	}
	if err := c.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"pre-reboot node-a workers -> OK", "pre-reboot node-a workers -> OK", "pre-reboot node-b workers -> Conflict",
		"steady-state node-a workers -> OK", "pre-reboot node-b workers -> OK", "pre-reboot node-c default -> OK"}
	if got := srv.Requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("server saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestServerDownIsAnError(t *testing.T) {
	srv := testutil.StartFleetLock(t, 1)
	c, _ := New(srv.URL+"/nothing-here", "g", "id")
	err := c.Lock(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != 404 {
		t.Fatalf("lock at a wrong path: %v", err)
	}
	c, _ = New("http://127.0.0.1:1", "g", "id")
	if err := c.Lock(context.Background()); err == nil || !strings.Contains(err.Error(), "fleetlock pre-reboot") {
		t.Fatalf("lock with no server: %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, c := range []struct{ url, group, id, want string }{
		{"ftp://x", "g", "id", "fleetlock URL"},
		{"http://", "g", "id", "fleetlock URL"},
		{"http://h", "bad group", "id", "fleetlock group"},
		{"http://h", "g", " ", "client id"},
	} {
		if _, err := New(c.url, c.group, c.id); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q, %q): %v, want an error naming the %s", c.url, c.group, c.id, err, c.want)
		}
	}
}

// The client id is what systemd derives as application-specific id
// (systemd-id128 is the oracle).
func TestMachineIDMatchesSystemd(t *testing.T) {
	tool := testutil.RequireTool(t, "systemd-id128")
	testutil.RequireFile(t, "/etc/machine-id", "systemd")
	out, err := exec.Command(tool, "machine-id", "--app-specific=902ffeff3c174560b457fcb41ee61b40").Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := MachineIDFromFile("/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("client id %s, systemd says %s", got, want)
	}
	if _, err := MachineID("xyz"); err == nil {
		t.Fatal("bad machine id accepted")
	}
}
