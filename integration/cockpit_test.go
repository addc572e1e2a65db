package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/osupdate/os-update/internal/testutil"
)

// The Cockpit test: Debian's cockpit-ws serves the page of
// dist/cockpit/os-update on 127.0.0.1 against the test's sysroot, and a
// headless Chromium logs in (PAM, users made by the test) and works it.
//
// cockpit-ws, and the cockpit-session and cockpit-bridge it starts for a
// login, run in a mount namespace of their own where the test's bus is
// /run/dbus/system_bus_socket and the page is in /usr/share/cockpit: the
// page talks to "the system bus" exactly as in production, and nothing of
// the machine is changed but two users for the duration of the test.

const (
	cockpitWS      = "/usr/lib/cockpit/cockpit-ws"
	cockpitPass    = "Cockpit-Test-1"
	cockpitTimeout = 90 * time.Second // one step of the page; the machine is shared
)

// cockpitPackages are the package lists of the commits the page compares.
var (
	cockpitPkgs1 = [][5]string{
		{"bash", "", "5.2.15", "1", "x86_64"}, {"kernel", "", "6.1.0", "1", "x86_64"},
		{"openssl", "", "3.0.11", "1", "x86_64"}, {"oldtool", "", "1.0", "1", "noarch"},
	}
	cockpitPkgs2 = [][5]string{
		{"bash", "", "5.2.21", "1", "x86_64"}, {"kernel", "", "6.1.0", "2", "x86_64"},
		{"openssl", "", "3.0.11", "1", "x86_64"}, {"newtool", "", "2.0", "1", "noarch"},
	}
)

// startCockpit runs cockpit-ws on 127.0.0.1 for the host's bus with the
// page installed and returns its URL.
func (h *host) startCockpit() string {
	t := h.t
	ws := testutil.RequireFile(t, cockpitWS, "cockpit-ws")
	testutil.RequireFile(t, "/usr/bin/cockpit-bridge", "cockpit-bridge")
	// Not under t.TempDir(), whose parent only root may enter: the
	// logged-in users follow links into this directory.
	dir, err := os.MkdirTemp("", "osu-cockpit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// /usr/share/cockpit as installed, plus the page (copied: the
	// bridge runs as the logged-in user, who may not read the checkout).
	// The links lead to the installed files through a second mount of
	// them, since /usr/share/cockpit itself is this directory then.
	share, orig := filepath.Join(dir, "share"), filepath.Join(dir, "installed")
	os.Mkdir(share, 0o755)
	os.Mkdir(orig, 0o755)
	entries, err := os.ReadDir("/usr/share/cockpit")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "os-update" {
			os.Symlink(filepath.Join(orig, e.Name()), filepath.Join(share, e.Name()))
		}
	}
	page := filepath.Join(share, "os-update")
	os.Mkdir(page, 0o755)
	files, err := filepath.Glob(filepath.Join("..", "dist", "cockpit", "os-update", "*"))
	if err != nil || len(files) < 4 {
		t.Fatalf("the page's files: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(page, filepath.Base(f)), b, 0o644)
	}
	// The test's bus as the system bus.
	sock, ok := strings.CutPrefix(strings.Split(h.bus, ",")[0], "unix:path=")
	if !ok {
		t.Fatalf("bus address %q is not a unix path", h.bus)
	}
	run := filepath.Join(dir, "run-dbus")
	os.Mkdir(run, 0o755)
	if err := os.Symlink(sock, filepath.Join(run, "system_bus_socket")); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		cmd := testutil.InMountNamespace(t, []testutil.Bind{
			{From: run, To: "/run/dbus"}, {From: "/usr/share/cockpit", To: orig}, {From: share, To: "/usr/share/cockpit"}},
			ws, "--no-tls", "--address", "127.0.0.1", "--port", fmt.Sprint(port))
		log := &lockedBuilder{}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		lastErr = nil
		deadline := time.Now().Add(30 * time.Second)
		for lastErr == nil && time.Now().Before(deadline) {
			select {
			case <-exited:
				lastErr = fmt.Errorf("cockpit-ws exited: %s", log.String())
				continue
			default:
			}
			if resp, err := http.Get(url + "/"); err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					lastErr = fmt.Errorf("cockpit-ws answers %s: %s", resp.Status, log.String())
				} else {
					t.Cleanup(func() {
						// The sessions (cockpit-session, the bridges) are in
						// its process group.
						syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
						select {
						case <-exited:
						case <-time.After(10 * time.Second):
							syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
							<-exited
						}
						if t.Failed() {
							t.Logf("cockpit-ws:\n%s", log.String())
						}
					})
					return url
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if lastErr == nil {
			lastErr = fmt.Errorf("cockpit-ws did not answer on %s: %s", url, log.String())
		}
	}
	t.Fatal(lastErr)
	return ""
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// browser is one headless Chromium with a fresh profile, logged in to
// the page as one user.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	name  string
	n     int
}

// screenshotDir is where the screenshots go: $OS_UPDATE_TEST_ARTIFACTS/cockpit,
// else /tmp/os-update-cockpit-shots.
func screenshotDir(t *testing.T) string {
	dir := "/tmp/os-update-cockpit-shots"
	if a := os.Getenv("OS_UPDATE_TEST_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "cockpit")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openBrowser(t *testing.T, name, shots string) *browser {
	chromium := testutil.RequireTool(t, "chromium")
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser now, without a deadline (a deadline on the first
	// run would end the browser with it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, shots: shots, name: name}
}

// do runs steps with a deadline.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, cockpitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// eval returns the value of a JavaScript expression.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, cockpitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true; errors while the
// page (re)loads count as false.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(cockpitTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fail("waiting for %s (%s)", what, cond)
}

// fail ends the test with a screenshot and the page's text.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	b.screenshot("failure")
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	b.t.Fatalf("%s: "+format+"\npage text:\n%s", append([]any{b.name}, append(args, text)...)...)
}

func (b *browser) screenshot(label string) {
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", label, err)
		return
	}
	path := filepath.Join(b.shots, fmt.Sprintf("%s-%02d-%s.png", b.name, b.n, label))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", label, err)
	}
}

// login fills Cockpit's login form and waits for the page to load.
func (b *browser) login(url, user string) {
	b.t.Helper()
	b.do("open the login page",
		chromedp.Navigate(url+"/cockpit/@localhost/os-update/index.html"),
		chromedp.WaitVisible(chromedp.ID("login-user-input")),
		chromedp.SendKeys(chromedp.ID("login-user-input"), user),
		chromedp.SendKeys(chromedp.ID("login-password-input"), cockpitPass),
		chromedp.Click(chromedp.ID("login-button")))
	b.waitFor("the page after login", `document.getElementById("app") && document.getElementById("app").dataset.state === "ready"`)
}

// text is the visible text of the element with this id.
func (b *browser) text(id string) string {
	return b.eval(fmt.Sprintf(`document.getElementById(%q).innerText`, id))
}

// deployments lists "version:roles" of the page's deployment cards.
func (b *browser) deployments() string {
	return b.eval(`[...document.querySelectorAll("#deployments article")].map(a => a.dataset.version + ":" + a.dataset.roles).join(" | ")`)
}

// txnDone waits for the transaction shown to finish and returns its
// result text.
func (b *browser) txnDone(what string) string {
	b.t.Helper()
	b.waitFor(what+" to finish", `document.getElementById("transaction").dataset.finished === "true"`)
	// The page refreshes after Finished; wait for it to settle.
	b.waitFor(what+": result shown", `document.getElementById("txn-result").innerText !== ""`)
	return b.text("txn-result")
}

// click presses a button (a real mouse click).
func (b *browser) click(id string) {
	b.t.Helper()
	b.waitFor(id+" enabled", fmt.Sprintf(`!document.getElementById(%q).disabled`, id))
	b.do("click "+id, chromedp.Click(chromedp.ID(id)))
}

// start clicks a button that starts a transaction and waits until the
// page shows that new transaction.
func (b *browser) start(id string) {
	b.t.Helper()
	before := b.eval(`document.getElementById("transaction").dataset.path || ""`)
	b.click(id)
	b.waitFor("a new transaction after "+id, fmt.Sprintf(`(document.getElementById("transaction").dataset.path || "") !== %q`, before))
}

// settled waits until the page shows deployments of these versions (in
// order, space-separated) and checks that it gives each the roles status
// --json gives it.
func (b *browser) settled(h *host, what, versions string) {
	b.t.Helper()
	b.waitFor(what, fmt.Sprintf(`[...document.querySelectorAll("#deployments article")].map(a => a.dataset.version).join(" ") === %q`, versions))
	var want []string
	for _, d := range h.status().Deployments {
		var roles []string
		for _, r := range []struct {
			on   bool
			name string
		}{{d.Booted, "booted"}, {d.Default, "default"}, {d.Staged, "staged"}, {d.Pending, "pending"}, {d.Rollback, "rollback"}, {d.Pinned, "pinned"}} {
			if r.on {
				roles = append(roles, r.name)
			}
		}
		want = append(want, d.Version+":"+strings.Join(roles, " "))
	}
	if got := b.deployments(); got != strings.Join(want, " | ") {
		b.fail("%s: the page shows %q, status --json %q", what, got, strings.Join(want, " | "))
	}
}

func TestCockpitPage(t *testing.T) {
	testutil.RequireTool(t, "chromium")
	testutil.RequireFile(t, cockpitWS, "cockpit-ws")
	h := newHostWithPackages(t, cockpitPkgs1)
	// Names of this run: another test binary may be running this test.
	cockpitAdmin, cockpitViewer := fmt.Sprintf("osu-ck-admin-%d", os.Getpid()), fmt.Sprintf("osu-ck-view-%d", os.Getpid())
	adminUID := testutil.CreateUser(t, cockpitAdmin, cockpitPass, "sudo")
	viewerUID := testutil.CreateUser(t, cockpitViewer, cockpitPass)
	h.startPolkit()
	url := h.startCockpit()
	shots := screenshotDir(t)
	old, _ := filepath.Glob(filepath.Join(shots, "*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	t.Logf("screenshots in %s", shots)
	rebooted := filepath.Join(h.dir, "rebooted")

	admin := openBrowser(t, "admin", shots)
	admin.login(url, cockpitAdmin)
	admin.settled(h, "the first deployment", "1")
	if s := admin.text("deployments"); !strings.Contains(s, "Test OS 1") || !strings.Contains(s, "origin:"+testRef) {
		admin.fail("deployment card lacks the subject or origin:\n%s", s)
	}
	if ro := admin.eval(`document.body.dataset.readonly`); ro != "false" {
		admin.fail("an administrator sees the page read-only (%q)", ro)
	}
	admin.screenshot("loaded")

	// A failing transaction shows the daemon's error text.
	h.broken.Store(true)
	admin.start("check")
	if res := admin.txnDone("failing check"); !strings.HasPrefix(res, "Failed: ") || !strings.Contains(res, "503") {
		admin.fail("failed check shows %q", res)
	}
	admin.screenshot("check-failed")
	h.broken.Store(false)

	// Check for updates: v2 is found.
	v2 := h.publishFull(testRef, "2", nil, cockpitPkgs2)
	admin.start("check")
	if res := admin.txnDone("check"); res != "Done." {
		admin.fail("check shows %q", res)
	}
	admin.waitFor("the update to be shown", `document.getElementById("update-info").dataset.available === "true"`)
	if info := admin.text("update-info"); !strings.Contains(info, "Update available: 2") || !strings.Contains(info, v2.String()[:12]) {
		admin.fail("update info %q", info)
	}
	admin.screenshot("update-available")

	// Update and reboot, slowly enough to watch the progress.
	h.slow.Store(25)
	admin.start("update")
	// The first signals come before the expected total is known (the
	// commit is fetched first), so wait for the percentage too.
	admin.waitFor("download progress with a percentage and a rate",
		`Number(document.getElementById("transaction").dataset.bytes) > 0 && Number(document.getElementById("transaction").dataset.rate) > 0 && document.getElementById("txn-figures").innerText.includes("/s") && document.getElementById("txn-figures").innerText.includes("%")`)
	if fig := admin.text("txn-figures"); !strings.Contains(fig, "%") || !strings.Contains(fig, "B") {
		admin.fail("progress figures %q lack the percentage or the bytes", fig)
	}
	admin.screenshot("update-progress")
	if ok := admin.eval(`String(document.getElementById("cancel").disabled)`); ok != "false" {
		admin.fail("Cancel is not enabled during the update")
	}
	h.slow.Store(0)
	if res := admin.txnDone("update"); !strings.Contains(res, "Deployed") {
		admin.fail("update shows %q", res)
	}
	admin.settled(h, "v2 deployed, v1 rollback", "2 1")
	waitFor(t, func() bool { _, err := os.Stat(rebooted); return err == nil })
	os.Remove(rebooted)
	// The rollback card lists what going back would change.
	diff := admin.eval(`document.querySelector('#deployments article[data-version="1"] .osu-diff').innerText`)
	for _, want := range []string{"2 downgraded", "1 added", "1 removed", "bash-5.2.21-1.x86_64 → bash-5.2.15-1.x86_64",
		"kernel-6.1.0-2.x86_64 → kernel-6.1.0-1.x86_64", "+ oldtool-1.0-1.noarch", "− newtool-2.0-1.noarch"} {
		if !strings.Contains(diff, want) {
			admin.fail("package changes lack %q:\n%s", want, diff)
		}
	}
	admin.screenshot("updated")

	// Roll back.
	admin.start("rollback")
	if res := admin.txnDone("rollback"); !strings.Contains(res, "Deployed") && res != "Done." {
		admin.fail("rollback shows %q", res)
	}
	admin.settled(h, "v1 default again", "1 2")
	waitFor(t, func() bool { _, err := os.Stat(rebooted); return err == nil })
	admin.screenshot("rolled-back")

	// Cancel an update in the middle of its download.
	h.publishFull(testRef, "3", map[string]string{"usr/share/big": strings.Repeat("3", 1<<20)}, cockpitPkgs2)
	h.slow.Store(150)
	admin.start("update")
	admin.waitFor("the object download to start", `Number(document.getElementById("transaction").dataset.objects) > 0`)
	admin.click("cancel")
	h.slow.Store(0)
	if res := admin.txnDone("cancelled update"); res != "Cancelled." {
		admin.fail("cancelled update shows %q", res)
	}
	admin.settled(h, "nothing deployed by the cancelled update", "1 2")
	admin.waitFor("the cancel in the history", `document.querySelector("#history tbody tr").dataset.result === "cancelled"`)
	admin.screenshot("cancelled")

	// The automatic update policy, changed from the page.
	admin.waitFor("the policy control enabled", `!document.getElementById("policy-apply").disabled`)
	// What choosing an option does: the value changes and "change" fires.
	admin.eval(`(() => { const s = document.getElementById("policy-select"); s.value = "check"; s.dispatchEvent(new Event("change")); return s.value })()`)
	admin.click("policy-apply")
	admin.waitFor("the new policy shown", `document.getElementById("policy-value").innerText === "check"`)
	if st := h.status(); st.AutomaticPolicy != "check" {
		admin.fail("status --json policy %q after the page set check", st.AutomaticPolicy)
	}
	admin.screenshot("policy")

	// Someone else updates (the command line): the page follows the
	// daemon's signals, without reloading.
	admin.eval(`(window.osuNotReloaded = "yes")`)
	h.mustClient("upgrade")
	admin.settled(h, "v3 deployed from the command line", "3 1")
	if marker := admin.eval(`String(window.osuNotReloaded)`); marker != "yes" {
		admin.fail("the page reloaded instead of following the signals")
	}
	admin.waitFor("the upgrade in the history", `document.querySelector("#history tbody tr").dataset.kind === "upgrade" && document.querySelector("#history tbody tr").dataset.result === "success"`)
	hist := admin.text("history")
	for _, want := range []string{"cancelled", "rollback", "check", "failed", "503", fmt.Sprint(adminUID)} {
		if !strings.Contains(hist, want) {
			admin.fail("history lacks %q:\n%s", want, hist)
		}
	}
	admin.screenshot("followed-cli")

	// An unprivileged login sees everything, read-only, and why.
	viewer := openBrowser(t, "viewer", shots)
	viewer.login(url, cockpitViewer)
	viewer.settled(h, "the viewer's first view", "3 1")
	viewer.waitFor("the read-only notice", `!document.getElementById("readonly").hidden`)
	notice := viewer.text("readonly")
	if !strings.Contains(notice, "Read-only") || !strings.Contains(notice, fmt.Sprintf("uid %d", viewerUID)) {
		viewer.fail("read-only notice %q", notice)
	}
	for _, id := range []string{"check", "update", "rollback", "cancel", "policy-apply"} {
		if d := viewer.eval(fmt.Sprintf(`String(document.getElementById(%q).disabled)`, id)); d != "true" {
			viewer.fail("%s is enabled for an unprivileged user", id)
		}
	}
	if title := viewer.eval(`document.getElementById("update").title`); !strings.Contains(title, fmt.Sprintf("uid %d", viewerUID)) {
		viewer.fail("the disabled button does not say why: %q", title)
	}
	if hist := viewer.text("history"); !strings.Contains(hist, "upgrade") {
		viewer.fail("history not shown read-only:\n%s", hist)
	}
	viewer.screenshot("read-only")

	// The page the viewer sees follows the daemon too.
	h.mustClient("rollback")
	viewer.settled(h, "the viewer's page after a rollback", "1 3")
	viewer.screenshot("read-only-followed")
}
