package boot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
)

// TestBoot boots what os-update deploys under qemu (TCG) and drives
// os-update inside the guest through the serial console: the issue's
// tests 1-5. Run it alone with
//
//	go test -count=1 -timeout 30m -v ./integration/boot/
func TestBoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64")
	testutil.RequireTool(t, "qemu-img")
	start := time.Now()
	work := t.TempDir()
	var g *guestOS
	// OSU_BOOT_WORK=DIR keeps the built guest in DIR and reuses it on the
	// next run (for working on the tests; the suite builds afresh).
	if keep := os.Getenv("OSU_BOOT_WORK"); keep != "" {
		work = keep
		os.MkdirAll(work, 0o755)
		if b, err := os.ReadFile(filepath.Join(work, "guest.json")); err == nil {
			g = &guestOS{}
			if err := json.Unmarshal(b, g); err != nil {
				t.Fatal(err)
			}
		}
	}
	if g == nil {
		g = buildGuest(t, work)
		b, _ := json.Marshal(g)
		os.WriteFile(filepath.Join(work, "guest.json"), b, 0o644)
	}
	logDir := filepath.Join(os.TempDir(), "os-update-boot-logs")
	os.RemoveAll(logDir)
	os.MkdirAll(logDir, 0o755)
	t.Logf("console logs: %s", logDir)
	t.Logf("guest built in %s: v1 %s, v2 %s, kernel %s", time.Since(start).Round(time.Second), g.V1, g.V2, g.KernelVer)

	checkClean := func(t *testing.T, v *vm) {
		t.Helper()
		st := v.status()
		if len(st.Deployments) == 0 {
			t.Fatalf("no deployments: %+v", st)
		}
		if out := v.must("os-update repo fsck --repo /sysroot/ostree/repo", 5*time.Minute); strings.Contains(strings.ToLower(out), "corrupt") || strings.Contains(strings.ToLower(out), "missing") {
			t.Fatalf("fsck:\n%s", out)
		}
	}
	expectBooted := func(t *testing.T, v *vm, commit, version, release string) {
		t.Helper()
		d := v.booted()
		if d.Checksum != commit || d.Version != version {
			t.Fatalf("booted %s (version %q), want %s (version %q)", d.Checksum, d.Version, commit, version)
		}
		if got := strings.TrimSpace(v.must("cat /usr/share/osu-guest/release", time.Minute)); got != release {
			t.Fatalf("/usr/share/osu-guest/release is %q, want %q", got, release)
		}
		// The booted root is the deployment prepare-root chose.
		if got := strings.TrimSpace(v.must("stat -c %i / ; stat -c %i /sysroot/ostree/deploy/os/deploy/"+d.Checksum+"."+itoa(d.Serial), time.Minute)); len(strings.Fields(got)) != 2 || strings.Fields(got)[0] != strings.Fields(got)[1] {
			t.Fatalf("/ is not deployment %s.%d: inodes %q", d.Checksum, d.Serial, got)
		}
	}

	// Tests 1-3: boot v1, upgrade by delta, reboot into v2 with /etc
	// changes kept, roll back, reboot into v1.
	t.Run("UpgradeRebootRollback", func(t *testing.T) {
		disk := overlay(t, g.Image, work, "main")
		v := startVM(t, "1-v1", disk, g.Updates, logDir)
		v.waitBooted()
		expectBooted(t, v, g.V1, g.V1Version, "release 1")
		if out := v.must("os-update status", time.Minute); !strings.Contains(out, g.V1) {
			t.Fatalf("status does not show v1:\n%s", out)
		}
		// compose wrote modules.dep (depmod): modprobe works on the
		// booted system (Debian's kernel package ships none).
		v.must("modprobe virtio_balloon && grep -q '^virtio_balloon ' /proc/modules", time.Minute)
		v.must("echo local-change > /etc/osu-local.conf && echo setting=local > /etc/osu-guest.conf && sync", time.Minute)

		out := v.must("os-update upgrade", 10*time.Minute)
		t.Logf("upgrade:\n%s", out)
		if !strings.Contains(out, "Deployed") {
			t.Fatalf("upgrade did not deploy:\n%s", out)
		}
		// By static delta: progress in bytes, no object-by-object walk.
		if strings.Contains(out, "fetching objects instead") || !strings.Contains(out, "MiB/") {
			t.Fatalf("the upgrade did not go by the static delta:\n%s", out)
		}
		st := v.status()
		if st.Deployments[0].Checksum != g.V2 || !st.Deployments[1].Booted {
			t.Fatalf("after upgrade: %+v", st.Deployments)
		}
		v.reboot()

		v = startVM(t, "2-v2", disk, g.Updates, logDir)
		v.waitBooted()
		expectBooted(t, v, g.V2, g.V2Version, "release 2")
		if got := strings.TrimSpace(v.must("wc -c < /usr/share/osu-guest/blob", time.Minute)); got != "12582912" {
			t.Fatalf("v2's new file: %q bytes", got)
		}
		if got := strings.TrimSpace(v.must("cat /etc/osu-local.conf /etc/osu-guest.conf", time.Minute)); got != "local-change\nsetting=local" {
			t.Fatalf("/etc changes made on v1 lost: %q", got)
		}
		checkClean(t, v)

		v.must("os-update rollback", 5*time.Minute)
		v.reboot()
		v = startVM(t, "3-rollback", disk, g.Updates, logDir)
		v.waitBooted()
		expectBooted(t, v, g.V1, g.V1Version, "release 1")
		checkClean(t, v)

		// Issue #16: an update whose health check fails boots, fails
		// its check, and the machine comes back on the previous version
		// by itself, with the reason in history. Continues on this
		// machine (v1 booted) to save a boot.
		t.Run("HealthCheckRollback", func(t *testing.T) {
			healthCheckRollback(t, g, v, disk, logDir)
		})
		v.kill()
	})

	// Test 4: power cuts during an upgrade; the next boot is v1 or v2.
	for _, cut := range []struct {
		name    string
		trigger *regexp.Regexp
		after   time.Duration // wait this long after the trigger
	}{
		// Mid-download when the progress shows it; a download too quick
		// to show partial progress is cut when the deploy starts.
		{"download", regexp.MustCompile(`download +` + sgr + ` *\[#+-+\] +[1-9]|` + deployStarts), 0},
		{"deploy", regexp.MustCompile(deployStarts), 0},
		// Somewhere in the deploy (checkout, /etc merge, kernel copy or
		// the flip itself), on a loaded machine as on an idle one.
		{"mid-deploy", regexp.MustCompile(deployStarts), 700 * time.Millisecond},
		{"flip", regexp.MustCompile(`Deployed `), 0},
	} {
		t.Run("PowerCut/"+cut.name, func(t *testing.T) {
			disk := overlay(t, g.Image, work, "cut-"+cut.name)
			v := startVM(t, "4-cut-"+cut.name, disk, g.Updates, logDir)
			v.waitBooted()
			v.send("os-update upgrade")
			m := v.expect(cut.trigger, 10*time.Minute)
			time.Sleep(cut.after)
			v.kill()
			t.Logf("power cut %s after %q; console after it: %q", cut.after, m[0], lastLine(v.consoleFrom(v.pos)))
			v = startVM(t, "4-after-"+cut.name, disk, g.Updates, logDir)
			v.waitBooted()
			d := v.booted()
			switch d.Checksum {
			case g.V1, g.V2:
				t.Logf("power cut at %s: booted %s (version %s)", cut.name, d.Checksum, d.Version)
			default:
				t.Fatalf("booted neither v1 nor v2: %+v", d)
			}
			checkClean(t, v)
			// The system still updates.
			if out, rc := v.run("os-update upgrade", 10*time.Minute); rc != 0 && rc != 77 {
				t.Fatalf("upgrade after the power cut exited %d:\n%s\ndaemon log:\n%s", rc, out, v.must("cat /run/os-updated.log", time.Minute))
			}
			if st := v.status(); st.Deployments[0].Checksum != g.V2 {
				t.Fatalf("upgrade after the power cut: %+v", st.Deployments)
			}
			v.kill()
		})
	}

	// Test 5: a staged upgrade is completed by finalize at a clean
	// shutdown; a power cut instead leaves v1.
	t.Run("Staged/CleanReboot", func(t *testing.T) {
		disk := overlay(t, g.Image, work, "staged-clean")
		v := startVM(t, "5-stage", disk, g.Updates, logDir)
		v.waitBooted()
		v.must("os-update upgrade --stage", 10*time.Minute)
		st := v.status()
		if !st.Deployments[0].Staged || st.Deployments[0].Checksum != g.V2 {
			t.Fatalf("not staged: %+v", st.Deployments)
		}
		v.must("echo after-staging > /etc/osu-late.conf", time.Minute)
		v.send("reboot")
		v.expect(regexp.MustCompile(`OSU-GUEST-FINALIZE 0`), 3*time.Minute)
		v.waitExit(3 * time.Minute)
		v = startVM(t, "5-finalized", disk, g.Updates, logDir)
		v.waitBooted()
		expectBooted(t, v, g.V2, g.V2Version, "release 2")
		if got := strings.TrimSpace(v.must("cat /etc/osu-late.conf", time.Minute)); got != "after-staging" {
			t.Fatalf("/etc change made after staging lost: %q", got)
		}
		checkClean(t, v)
		v.kill()
	})
	t.Run("Staged/PowerCut", func(t *testing.T) {
		disk := overlay(t, g.Image, work, "staged-cut")
		v := startVM(t, "5-stage-cut", disk, g.Updates, logDir)
		v.waitBooted()
		v.must("os-update upgrade --stage && sync", 10*time.Minute)
		v.kill()
		v = startVM(t, "5-after-cut", disk, g.Updates, logDir)
		v.waitBooted()
		expectBooted(t, v, g.V1, g.V1Version, "release 1")
		for _, d := range v.status().Deployments {
			if d.Staged {
				t.Fatalf("a staged deployment survived the power cut: %+v", d)
			}
		}
		checkClean(t, v)
		v.kill()
	})
	// Boot counting (grub2): an update whose kernel panics comes back to
	// v1 by itself once its tries are used up.
	t.Run("BootCounting/KernelPanicFallsBack", func(t *testing.T) {
		testKernelPanicFallsBack(t, g, work, logDir)
	})
	t.Logf("boot suite: %s", time.Since(start).Round(time.Second))
}

func itoa(n int) string { return strconv.Itoa(n) }

// The progress display on the guest's console (a terminal) sets stage
// names in bold: "\x1b[1mdeploy   \x1b[0m", then the bar, if any.
const (
	sgr          = `(?:\x1b\[[0-9;]*m)?`
	deployStarts = `deploy +` + sgr + `(?:\x1b\[K|\[)`
)

// lastLine is the last non-empty line of console output (progress bars
// redraw with carriage returns and escape sequences).
func lastLine(s string) string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\x1b[K", "\n"), "\n ")
	if i := strings.LastIndexAny(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// healthCheckRollback rebases the running v1 guest to the bad update
// (its health.d script exits 7) and reboots. rcS runs `os-update
// health-check` at boot, as os-update-health-check.service does: the
// check fails, v1 is made the default and the guest reboots by itself;
// it comes up on v1 with the verdict and the reason in status and history.
func healthCheckRollback(t *testing.T, g *guestOS, v *vm, disk, logDir string) {
	v1 := v.booted()
	if v1.BootVerdict == nil || v1.BootVerdict.Verdict != api.VerdictHealthy {
		t.Fatalf("v1's boot was not checked healthy at boot: %+v", v1.BootVerdict)
	}
	v.must("os-update rebase "+guestRemote+":"+guestBadRef, 10*time.Minute)
	if st := v.status(); st.Deployments[0].Checksum != g.Bad {
		t.Fatalf("after rebase to the bad update: %+v", st.Deployments)
	}
	v.reboot()

	// The bad update boots, fails its check and reboots on its own.
	v = startVM(t, "3b-bad-update", disk, g.Updates, logDir)
	m := v.expect(regexp.MustCompile(`OSU-GUEST-HEALTH (\d+)`), bootTimeout)
	out := v.consoleFrom(0)
	if m[1] != "1" || !strings.Contains(out, "50-osu-guest-app exited 7") {
		t.Fatalf("the bad update's health check exited %s:\n%s", m[1], v.tail())
	}
	v.waitExit(3 * time.Minute)

	// Back on v1, by itself.
	v = startVM(t, "3c-back-on-v1", disk, g.Updates, logDir)
	if m := v.expect(regexp.MustCompile(`OSU-GUEST-HEALTH (\d+)`), bootTimeout); m[1] != "0" {
		t.Fatalf("v1's health check after the rollback exited %s:\n%s", m[1], v.tail())
	}
	v.waitBooted()
	if d := v.booted(); d.Checksum != g.V1 {
		t.Fatalf("booted %s (%s) after the failed health check, want v1 %s", d.Checksum, d.Version, g.V1)
	}
	wantReason := "50-osu-guest-app exited 7: osu-guest-app: starting check | osu-guest-app: not responding on port 8080"
	var hist []api.HistoryEntry
	if err := json.Unmarshal([]byte(v.must("os-update history --json", 2*time.Minute)), &hist); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range hist {
		if e.Kind == "health-check" && e.Result == "failed" {
			if e.From != g.Bad || e.To != g.V1 || !strings.Contains(e.Error, wantReason) || !strings.Contains(e.Error, "rolled back to "+g.V1Version) {
				t.Fatalf("history entry of the failed check: %+v", e)
			}
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no failed health-check in history: %+v", hist)
	}
	if text := v.must("os-update history", time.Minute); !strings.Contains(text, wantReason) {
		t.Fatalf("history text lacks the reason:\n%s", text)
	}
	var bad *api.BootVerdict
	for _, d := range v.status().Deployments {
		if d.Checksum == g.Bad {
			bad = d.BootVerdict
		}
	}
	if bad == nil || bad.Verdict != api.VerdictUnhealthy || bad.Reason != wantReason || bad.Action != api.ActionRolledBack {
		t.Fatalf("the bad update's verdict in status: %+v", bad)
	}
	if text := v.must("os-update status", time.Minute); !strings.Contains(text, "Reason: "+wantReason) {
		t.Fatalf("status text lacks the reason:\n%s", text)
	}
	v.kill()
}
