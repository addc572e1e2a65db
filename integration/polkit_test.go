package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
)

// startPolkit runs polkitd on the host's bus with the policy and the
// optional rules os-update ships.
func (h *host) startPolkit() {
	testutil.StartPolkit(h.t, h.bus,
		[]string{filepath.Join("..", "dist", "polkit", "org.osupdate.OSUpdate1.policy")},
		[]string{filepath.Join("..", "dist", "polkit", "org.osupdate.OSUpdate1.rules")})
}

// asUser runs a command as a local user with its groups.
func asUser(t *testing.T, name string, args ...string) (string, string, error) {
	t.Helper()
	setpriv := testutil.RequireTool(t, "setpriv")
	cmd := exec.Command(setpriv, append([]string{"--reuid=" + name, "--regid=" + name, "--init-groups", "--"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// authorizationsOf asks the daemon what a user may do.
func (h *host) authorizationsOf(name string) api.Authorizations {
	h.t.Helper()
	dbusSend := testutil.RequireTool(h.t, "dbus-send")
	out, errOut, err := asUser(h.t, name, dbusSend, "--bus="+h.bus, "--print-reply=literal", "--dest="+api.BusName,
		api.ObjectPath, api.SysrootIface+".GetAuthorizations")
	if err != nil {
		h.t.Fatalf("GetAuthorizations as %s: %v %s", name, err, errOut)
	}
	var a api.Authorizations
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &a); err != nil {
		h.t.Fatalf("GetAuthorizations as %s %q: %v", name, out, err)
	}
	return a
}

// TestPolkitAuthorizesAdministrators runs the daemon with a real polkitd
// and the shipped policy and rules: a member of group sudo may update, any
// other user may read, is refused changes, and GetAuthorizations says so
// before either tries.
func TestPolkitAuthorizesAdministrators(t *testing.T) {
	h := newHost(t)
	// Names of this run: another test binary may be running this test.
	adminName, viewerName := fmt.Sprintf("osu-pk-admin-%d", os.Getpid()), fmt.Sprintf("osu-pk-view-%d", os.Getpid())
	adminUID := testutil.CreateUser(t, adminName, "unused-Pa55", "sudo")
	viewerUID := testutil.CreateUser(t, viewerName, "unused-Pa55")
	h.startPolkit()

	admin := h.authorizationsOf(adminName)
	if admin.CallerUID != adminUID || admin.Reason != "" {
		t.Fatalf("admin: %+v", admin)
	}
	viewer := h.authorizationsOf(viewerName)
	if viewer.CallerUID != viewerUID || !strings.Contains(viewer.Reason, "after authenticating") {
		t.Fatalf("viewer: %+v", viewer)
	}
	for _, kind := range []string{"upgrade", "rollback", "rebase", "deploy", "pkgchange", "kargs", "cleanup", "health-check", "automatic", "cancel"} {
		if admin.Actions[kind] != api.AuthYes {
			t.Errorf("admin may %s: %q", kind, admin.Actions[kind])
		}
		// The policy asks for an administrator's password; nothing
		// can answer it here, so the call itself is refused.
		if viewer.Actions[kind] != api.AuthChallenge {
			t.Errorf("viewer may %s: %q, want %q", kind, viewer.Actions[kind], api.AuthChallenge)
		}
	}
	// What the daemon then does agrees.
	h.publish("2", nil)
	if _, errOut, err := asUser(t, viewerName, osUpdate, "upgrade", "--check", "--bus-address", h.bus); err == nil ||
		!strings.Contains(errOut, "may not upgrade") {
		t.Fatalf("viewer upgrade --check: %v %s", err, errOut)
	}
	if out, errOut, err := asUser(t, adminName, osUpdate, "upgrade", "--check", "--bus-address", h.bus); err != nil {
		t.Fatalf("admin upgrade --check: %v %s %s", err, out, errOut)
	}
	var hist []api.HistoryEntry
	json.Unmarshal([]byte(h.mustClient("history", "--json")), &hist)
	if len(hist) != 1 || hist[0].Kind != "check" || hist[0].CallerUID != adminUID || hist[0].Result != "success" {
		t.Fatalf("history %+v", hist)
	}
}
