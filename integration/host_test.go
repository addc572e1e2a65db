package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

const (
	testOS  = "testos"
	testRef = "testos/x86_64/stable"
)

// host is a complete update setup on one machine: a signed archive
// repository served over HTTP on loopback, a sysroot with one deployment of
// it, a private dbus-daemon and os-updated serving that sysroot.
type host struct {
	t          *testing.T
	dir        string
	server     *repo.Repo
	signer     *sign.GPGSigner
	keyFile    string
	url        string
	served     *serve.Handler
	slow       atomic.Int64 // per-request delay in ms (to make cancels land mid-download)
	broken     atomic.Bool  // the server answers every request with 503
	deltaRate  atomic.Int64 // bytes per second for static-delta files (0: unlimited)
	logMu      sync.Mutex
	access     []served  // the server's access log
	published  int       // commits published so far (their timestamps follow each other)
	at         time.Time // if set, the timestamp of the next commit published
	sysroot    string
	bus        string
	state      string
	daemon     *exec.Cmd
	daemonLog  *strings.Builder
	daemonArgs []string // extra os-updated arguments
}

func newHost(t *testing.T) *host { return newHostWithPackages(t, nil) }

// newHostWithPackages is newHost whose first commit records a compose-style
// package list (see publishFull).
func newHostWithPackages(t *testing.T, firstPkgs [][5]string) *host {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "dbus-daemon")
	h := &host{t: t, dir: t.TempDir()}
	// Finished deployments are immutable, as libostree makes them; let the
	// temporary directory go.
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(h.dir, "sysroot/ostree/deploy/*/deploy/*"))
		if len(dirs) > 0 {
			exec.Command("chattr", append([]string{"-i"}, dirs...)...).Run()
		}
	})
	var err error
	h.server, err = repo.Init(filepath.Join(h.dir, "server"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := openpgp.NewEntity("os-update test", "", "test@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.signer, err = sign.NewGPGSigner(openpgp.EntityList{ent}, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := h.signer.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	h.keyFile = filepath.Join(h.dir, "key.gpg")
	os.WriteFile(h.keyFile, pub, 0o644)

	h.served, err = serve.NewHandler(h.server.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.broken.Load() {
			http.Error(w, "broken by the test", http.StatusServiceUnavailable)
			return
		}
		if d := h.slow.Load(); d > 0 && strings.HasPrefix(r.URL.Path, "/objects/") {
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
		cw := &countingWriter{ResponseWriter: w, ctx: r.Context()}
		if strings.HasPrefix(r.URL.Path, "/deltas/") {
			cw.rate = h.deltaRate.Load()
		}
		h.served.ServeHTTP(cw, r)
		entry := served{path: r.URL.Path, bytes: cw.n}
		if fi, err := os.Stat(filepath.Join(h.server.Path(), filepath.FromSlash(r.URL.Path))); err == nil && fi.Mode().IsRegular() {
			entry.complete = r.Method == http.MethodGet && cw.n == fi.Size()
		}
		h.logMu.Lock()
		h.access = append(h.access, entry)
		h.logMu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	h.url = "http://" + ln.Addr().String()

	h.publishFull(testRef, "1", nil, firstPkgs)
	h.sysroot = filepath.Join(h.dir, "sysroot")
	osu(t, "admin", "init-fs", h.sysroot)
	osu(t, "admin", "os-init", testOS, "--sysroot", h.sysroot)
	sr, err := repo.Open(filepath.Join(h.sysroot, "ostree/repo"))
	if err != nil {
		t.Fatal(err)
	}
	sr.Config().Set(`remote "origin"`, "url", h.url)
	sr.Config().Set(`remote "origin"`, "gpg-verify", "true")
	sr.Config().Set(`remote "origin"`, "gpg-verify-summary", "true")
	sr.Config().Set(`remote "origin"`, "gpgkeypath", h.keyFile)
	if err := sr.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	// Install the first deployment as an installer would: pull, deploy.
	store := &remote.Store{Repo: sr}
	rm, err := store.Get("origin")
	if err != nil {
		t.Fatal(err)
	}
	src, err := pull.FromRemote(store, rm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pull.Pull(context.Background(), sr, src, pull.Options{Refs: []string{testRef}}); err != nil {
		t.Fatal(err)
	}
	sr.Close()
	osu(t, "admin", "deploy", "--sysroot", h.sysroot, "--os", testOS, "origin:"+testRef)
	h.startDaemon()
	return h
}

// publish commits version v of the test OS on the server (with extra
// files), signs it and updates the signed summary.
func (h *host) publish(version string, extra map[string]string) object.Checksum {
	return h.publishOn(testRef, version, extra)
}

func (h *host) publishOn(ref, version string, extra map[string]string) object.Checksum {
	return h.publishFull(ref, version, extra, nil)
}

// publishFull also records a compose-style package list (name, epoch,
// version, release, arch).
func (h *host) publishFull(ref, version string, extra map[string]string, pkgs [][5]string) object.Checksum {
	t := h.t
	tree := filepath.Join(h.dir, "tree-"+version)
	files := map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz":       "kernel " + version,
		"usr/lib/modules/6.1.0/initramfs.img": "initramfs " + version,
		"usr/lib/os-release":                  "ID=testos\nNAME=\"Test OS\"\nVERSION_ID=" + version + "\n",
		"usr/etc/hostname":                    "testhost\n",
		"usr/bin/tool":                        "tool version " + version + "\n",
	}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("usr/share/data/f%03d", i)] = strings.Repeat(fmt.Sprintf("data %d of %s\n", i, version), 50)
	}
	for k, v := range extra {
		files[k] = v
	}
	for p, content := range files {
		full := filepath.Join(tree, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755 // scripts (health checks) are executable
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	md := object.Metadata{}
	md.Set("version", gvariant.NewVariant("s", version))
	if pkgs != nil {
		list := []gvariant.Value{}
		for _, p := range pkgs {
			list = append(list, []gvariant.Value{p[0], p[1], p[2], p[3], p[4]})
		}
		md.Set("rpmostree.rpmdb.pkglist", gvariant.NewVariant("a(sssss)", list))
	}
	// Each commit is a minute after the one before (commit timestamps
	// have a resolution of seconds), unless the test set h.at.
	h.published++
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h.published) * time.Minute)
	if !h.at.IsZero() {
		when, h.at = h.at, time.Time{}
	}
	c, err := h.server.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: ref, Subject: "Test OS " + version, Metadata: md, Timestamp: when})
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SignCommit(h.server, c, h.signer); err != nil {
		t.Fatal(err)
	}
	if _, err := summary.Update(h.server, summary.Options{Signers: []sign.Signer{h.signer}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// served is one request of the server's access log.
type served struct {
	path     string
	bytes    int64
	complete bool // the whole file was sent
}

// countingWriter counts the bytes a response sends and, with rate set,
// sends them at that many bytes a second (a slow link), stopping when the
// client goes away.
type countingWriter struct {
	http.ResponseWriter
	ctx  context.Context
	rate int64
	n    int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.rate <= 0 {
		n, err := c.ResponseWriter.Write(b)
		c.n += int64(n)
		return n, err
	}
	written := 0
	const chunk = 8 << 10
	for written < len(b) {
		end := min(written+chunk, len(b))
		select {
		case <-c.ctx.Done():
			return written, c.ctx.Err()
		case <-time.After(time.Duration(int64(end-written) * int64(time.Second) / c.rate)):
		}
		n, err := c.ResponseWriter.Write(b[written:end])
		written += n
		c.n += int64(n)
		if err != nil {
			return written, err
		}
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
	return written, nil
}

// accessLog returns the requests served since entry `from` of the log.
func (h *host) accessLog(from int) []served {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return append([]served(nil), h.access[min(from, len(h.access)):]...)
}

func (h *host) accessLen() int {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return len(h.access)
}

func (h *host) startDaemon() {
	t := h.t
	if h.bus == "" {
		h.bus = testutil.StartBus(t)
		h.state = filepath.Join(h.dir, "state.db")
	}
	h.daemonLog = &strings.Builder{}
	args := append([]string{"--bus-address", h.bus, "--sysroot", h.sysroot, "--state", h.state,
		"--idle-exit", "0", "--reboot-command", "touch " + filepath.Join(h.dir, "rebooted")}, h.daemonArgs...)
	cmd := exec.Command(osUpdated, args...)
	cmd.Stderr = h.daemonLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.daemon = cmd
	t.Cleanup(func() {
		if h.daemon == cmd {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("os-updated log:\n%s", h.daemonLog.String())
		}
	})
	// Wait for the bus name.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := h.client("status"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("os-updated did not come up:\n%s", h.daemonLog.String())
}

func (h *host) killDaemon() {
	h.daemon.Process.Kill()
	h.daemon.Wait()
	h.daemon = nil
}

func (h *host) client(args ...string) (string, string, error) {
	return osuErr(append(args, "--bus-address", h.bus)...)
}

func (h *host) mustClient(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.client(args...)
	if err != nil {
		h.t.Fatalf("os-update %s: %v\n%s%s\ndaemon:\n%s", strings.Join(args, " "), err, out, errOut, h.daemonLog.String())
	}
	return out
}

func (h *host) status() api.Status {
	h.t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(h.mustClient("status", "--json")), &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func TestHostUpgradeRollbackStatusHistory(t *testing.T) {
	h := newHost(t)
	v1, _ := h.server.ReadRef("", testRef)
	st := h.status()
	if len(st.Deployments) != 1 || st.Deployments[0].Checksum != v1.String() || st.Deployments[0].Origin != "origin:"+testRef {
		t.Fatalf("initial status: %+v", st.Deployments)
	}
	// Nothing new: --check exits 77.
	_, _, err := h.client("upgrade", "--check")
	if exitCode(err) != 77 {
		t.Fatalf("upgrade --check with no update: %v, want exit 77", err)
	}
	v2 := h.publish("2", map[string]string{"usr/bin/new-in-2": "new\n"})
	if out, _, err := h.client("upgrade", "--check"); err != nil || !strings.Contains(out, v2.String()) {
		t.Fatalf("upgrade --check: %v %s", err, out)
	}
	h.mustClient("upgrade", "--reboot")
	// The daemon reboots after it reported the result.
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(h.dir, "rebooted")); return err == nil })
	st = h.status()
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != v2.String() || st.Deployments[0].Version != "2" ||
		!st.Deployments[0].Default || st.Deployments[1].Checksum != v1.String() || !st.Deployments[1].Rollback ||
		st.Deployments[0].Subject != "Test OS 2" {
		t.Fatalf("after upgrade: %+v", st.Deployments)
	}
	// ostree itself agrees on the order.
	if ostree, err := exec.LookPath("ostree"); err == nil {
		out := testutil.Run(t, ostree, "admin", "status", "--sysroot="+h.sysroot)
		if i, j := strings.Index(out, v2.String()), strings.Index(out, v1.String()); i < 0 || j < 0 || i > j {
			t.Fatalf("ostree admin status:\n%s", out)
		}
	}
	h.mustClient("rollback")
	st = h.status()
	if st.Deployments[0].Checksum != v1.String() || st.Deployments[1].Checksum != v2.String() {
		t.Fatalf("after rollback: %+v", st.Deployments)
	}
	text := h.mustClient("status")
	if !strings.Contains(text, v1.String()) || !strings.Contains(text, "Version: 2") {
		t.Fatalf("status text:\n%s", text)
	}
	h.mustClient("kargs", "--append", "quiet", "--append", "console=ttyS0")
	st = h.status()
	if k := strings.Join(st.Deployments[0].Kargs, " "); !strings.Contains(k, "quiet") || !strings.Contains(k, "console=ttyS0") {
		t.Fatalf("kargs %q", k)
	}
	h.mustClient("cleanup", "--rollback")
	st = h.status()
	if len(st.Deployments) != 1 || st.Deployments[0].Checksum != v1.String() {
		t.Fatalf("after cleanup --rollback: %+v", st.Deployments)
	}
	// deploy by version: v2 is in the origin's history.
	h.mustClient("deploy", "2")
	if st = h.status(); st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("after deploy 2: %+v", st.Deployments)
	}
	// rebase to another branch of the same OS.
	t3 := h.publishOn("testos/x86_64/testing", "3-testing", nil)
	h.mustClient("rebase", "origin:testos/x86_64/testing")
	if st = h.status(); st.Deployments[0].Checksum != t3.String() || st.Deployments[0].Origin != "origin:testos/x86_64/testing" {
		t.Fatalf("after rebase: %+v", st.Deployments)
	}
	// rebase to an OS with another name is refused.
	h.publishOn("otheros/x86_64/stable", "1", map[string]string{"usr/lib/os-release": "ID=otheros\n"})
	if _, errOut, err := h.client("rebase", "origin:otheros/x86_64/stable"); err == nil || !strings.Contains(errOut, "different operating system") {
		t.Fatalf("rebase to another OS: %v %s", err, errOut)
	}
	var hist []api.HistoryEntry
	json.Unmarshal([]byte(h.mustClient("history", "--json")), &hist)
	kinds := []string{}
	for _, e := range hist {
		kinds = append(kinds, e.Kind+":"+e.Result)
	}
	want := "rebase:failed rebase:success deploy:success cleanup:success kargs:success rollback:success upgrade:success check:success check:success"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("history %v\nwant %s", kinds, want)
	}
}

func TestHostRefusesBadRequests(t *testing.T) {
	h := newHost(t)
	before := h.status()
	for _, args := range [][]string{
		{"rebase", "nosuchremote:" + testRef},
		{"rebase", "origin:testos/x86_64/missing"},
		{"deploy", "99.9"},
	} {
		_, errOut, err := h.client(args...)
		if err == nil || strings.TrimSpace(errOut) == "" || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: err %v, stderr %q: want a one-line error", args, err, errOut)
		}
	}
	// An unsigned update is refused.
	c, err := h.server.CommitDir(context.Background(), filepath.Join(h.dir, "tree-1"), repo.CommitOptions{Branch: testRef, Subject: "unsigned"})
	if err != nil {
		t.Fatal(err)
	}
	summary.Update(h.server, summary.Options{Signers: []sign.Signer{h.signer}})
	_, errOut, err := h.client("upgrade")
	if err == nil || !strings.Contains(errOut, "signature") {
		t.Fatalf("unsigned %s: err %v, stderr %s", c, err, errOut)
	}
	after := h.status()
	if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Fatalf("a refused request changed the deployments: %+v", after.Deployments)
	}
}

func TestUnprivilegedClientMayOnlyRead(t *testing.T) {
	setpriv := testutil.RequireTool(t, "setpriv")
	h := newHost(t)
	asNobody := func(args ...string) (string, string, error) {
		all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", osUpdate}, append(args, "--bus-address", h.bus)...)
		cmd := exec.Command(setpriv, all...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	// The binary must be reachable for nobody.
	os.Chmod(filepath.Dir(osUpdate), 0o755)
	if out, errOut, err := asNobody("status", "--json"); err != nil || !strings.Contains(out, "deployments") {
		t.Fatalf("status as nobody: %v %s %s", err, out, errOut)
	}
	for _, args := range [][]string{{"upgrade"}, {"rollback"}, {"rebase", "origin:" + testRef}, {"kargs", "--append", "x=1"}, {"cleanup"}, {"deploy", "1"}} {
		_, errOut, err := asNobody(args...)
		if err == nil || !strings.Contains(errOut, "uid 65534 may not") {
			t.Errorf("%v as nobody: err %v, stderr %q", args, err, errOut)
		}
	}
}

func TestConcurrentUpgradesOneRunsOtherBusy(t *testing.T) {
	h := newHost(t)
	h.publish("2", nil)
	h.slow.Store(20)
	first := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
	var firstOut strings.Builder
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first transaction runs, then try a second one.
	waitFor(t, func() bool { return h.status().Transaction != "" })
	_, errOut, err := h.client("upgrade")
	if err == nil || !strings.Contains(errOut, "is running") {
		t.Fatalf("second upgrade: err %v stderr %s", err, errOut)
	}
	h.slow.Store(0)
	if err := first.Wait(); err != nil {
		t.Fatalf("first upgrade: %v\n%s", err, firstOut.String())
	}
	if st := h.status(); len(st.Deployments) != 2 {
		t.Fatalf("deployments %+v", st.Deployments)
	}
}

func TestCancelDuringDownloadThenResume(t *testing.T) {
	h := newHost(t)
	h.publish("2", nil)
	h.slow.Store(30)
	up := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
	var out strings.Builder
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	base := h.served.Requests()
	waitFor(t, func() bool { return h.served.Requests() > base+20 })
	h.mustClient("cancel")
	err := up.Wait()
	if err == nil || !strings.Contains(out.String(), "cancelled") {
		t.Fatalf("cancelled upgrade: %v\n%s", err, out.String())
	}
	if st := h.status(); len(st.Deployments) != 1 {
		t.Fatalf("a cancelled upgrade deployed: %+v", st.Deployments)
	}
	h.slow.Store(0)
	before := h.served.Requests()
	h.mustClient("upgrade")
	fetched := h.served.Requests() - before
	if st := h.status(); len(st.Deployments) != 2 {
		t.Fatalf("resumed upgrade: %+v", st.Deployments)
	}
	// v2 changed about 200 files: a restart from zero would fetch them all
	// again on top of the metadata.
	if fetched >= 215 {
		t.Errorf("resumed upgrade fetched %d objects: it did not reuse the cancelled download", fetched)
	}
}

func TestDaemonKilledMidTransactionRepairs(t *testing.T) {
	h := newHost(t)
	h.publish("2", nil)
	h.slow.Store(30)
	up := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	base := h.served.Requests()
	waitFor(t, func() bool { return h.served.Requests() > base+20 })
	h.killDaemon()
	if err := up.Wait(); err == nil {
		t.Fatal("the client reported success although the daemon died")
	}
	h.slow.Store(0)
	h.startDaemon()
	var hist []api.HistoryEntry
	json.Unmarshal([]byte(h.mustClient("history", "--json")), &hist)
	if len(hist) == 0 || hist[0].Result != "interrupted" {
		t.Fatalf("history after crash: %+v", hist)
	}
	h.mustClient("upgrade")
	if st := h.status(); len(st.Deployments) != 2 || st.Deployments[0].Version != "2" {
		t.Fatalf("upgrade after repair: %+v", st.Deployments)
	}
	out := osu(t, "repo", "fsck", "--repo", filepath.Join(h.sysroot, "ostree/repo"))
	if !strings.Contains(out, "no errors found") {
		t.Fatalf("fsck: %s", out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not reached within 20 s")
}

func TestPreviewAndDbDiff(t *testing.T) {
	h := newHost(t)
	v1 := h.publishFull(testRef, "1.1", nil, [][5]string{{"bash", "", "5.1", "1", "x86_64"}, {"gone", "", "1", "1", "noarch"}, {"kernel", "1", "6.1", "2", "x86_64"}})
	h.mustClient("upgrade")
	v2 := h.publishFull(testRef, "1.2", nil, [][5]string{{"bash", "", "5.2", "1", "x86_64"}, {"kernel", "1", "6.1", "1", "x86_64"}, {"new", "", "0.1", "1", "noarch"}})
	out, _, err := h.client("upgrade", "--preview")
	if err != nil {
		t.Fatalf("preview: %v", err)
	}
	for _, want := range []string{"upgraded   bash-5.1-1.x86_64 -> bash-5.2-1.x86_64", "downgraded kernel-1:6.1-2.x86_64 -> kernel-1:6.1-1.x86_64", "removed    gone-1-1.noarch", "added      new-0.1-1.noarch"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	if st := h.status(); st.Deployments[0].Checksum != v1.String() {
		t.Fatal("preview deployed")
	}
	h.mustClient("upgrade")
	var d api.PackageDiff
	if err := json.Unmarshal([]byte(h.mustClient("db", "diff", v1.String(), v2.String(), "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0] != "new-0.1-1.noarch" || len(d.Removed) != 1 || len(d.Upgraded) != 1 || d.Upgraded[0].Name != "bash" || len(d.Downgraded) != 1 {
		t.Fatalf("db diff %+v", d)
	}
	text := h.mustClient("db", "diff")
	if !strings.Contains(text, "bash") {
		t.Fatalf("default db diff:\n%s", text)
	}
	if _, errOut, err := h.client("db", "diff", "nosuchrev", v2.String()); err == nil || !strings.Contains(errOut, "nosuchrev") {
		t.Fatalf("bad revision: %v %s", err, errOut)
	}
}

func TestClientKilledDaemonFinishes(t *testing.T) {
	h := newHost(t)
	v2 := h.publish("2", nil)
	h.slow.Store(20)
	up := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	base := h.served.Requests()
	waitFor(t, func() bool { return h.served.Requests() > base+10 })
	up.Process.Kill()
	up.Wait()
	h.slow.Store(0)
	waitFor(t, func() bool {
		st := h.status()
		return st.Transaction == "" && len(st.Deployments) == 2
	})
	if st := h.status(); st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("after the client died: %+v", st.Deployments)
	}
}

func TestIdleExitAndDBusActivation(t *testing.T) {
	h := newHost(t)
	// Replace the running daemon by one the bus starts on demand.
	h.daemon.Process.Signal(syscall.SIGTERM)
	h.daemon.Wait()
	h.daemon = nil
	svc := t.TempDir()
	os.WriteFile(filepath.Join(svc, api.BusName+".service"), []byte(fmt.Sprintf(
		"[D-BUS Service]\nName=%s\nExec=%s --sysroot %s --state %s --idle-exit 1s\n", api.BusName, osUpdated, h.sysroot, h.state)), 0o644)
	h.bus = testutil.StartBusWithServices(t, svc)
	st := h.status() // activates the daemon
	if len(st.Deployments) != 1 {
		t.Fatalf("status through activation: %+v", st)
	}
	hasOwner := func() bool {
		out, _, _ := testutil.RunErr("dbus-send", "--bus="+h.bus, "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus.NameHasOwner", "string:"+api.BusName)
		return strings.Contains(out, "boolean true")
	}
	if !hasOwner() {
		t.Fatal("activated daemon does not own its name")
	}
	waitFor(t, func() bool { return !hasOwner() }) // idle exit
	h.publish("2", nil)
	h.mustClient("upgrade") // activates it again
	if st := h.status(); len(st.Deployments) != 2 {
		t.Fatalf("after reactivation: %+v", st.Deployments)
	}
}

func TestAutomaticUpdatePolicies(t *testing.T) {
	h := newHost(t)
	// none: the timer's command does nothing.
	if out := h.mustClient("automatic"); !strings.Contains(out, "disabled") {
		t.Fatalf("policy none: %s", out)
	}
	v2 := h.publish("2", nil)
	// check: records the available update, deploys nothing.
	h.killDaemon()
	h.daemonArgs = []string{"--automatic-update-policy", "check"}
	h.startDaemon()
	h.mustClient("automatic")
	st := h.status()
	if st.CachedUpdate == nil || !st.CachedUpdate.Available || st.CachedUpdate.Checksum != v2.String() || len(st.Deployments) != 1 {
		t.Fatalf("policy check: %+v", st)
	}
	// stage: downloads and stages; finalize at shutdown makes it the default.
	h.killDaemon()
	h.daemonArgs = []string{"--automatic-update-policy", "stage"}
	h.startDaemon()
	h.mustClient("automatic")
	st = h.status()
	if len(st.Deployments) != 2 || !st.Deployments[0].Staged || st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("policy stage: %+v", st.Deployments)
	}
	osu(t, "finalize", "--sysroot", h.sysroot)
	st = h.status()
	if len(st.Deployments) != 2 || st.Deployments[0].Staged || st.Deployments[0].Checksum != v2.String() || !st.Deployments[0].Default {
		t.Fatalf("after finalize: %+v", st.Deployments)
	}
}

func TestDeployOlderVersionNotDownloaded(t *testing.T) {
	h := newHost(t)
	v2 := h.publish("2", map[string]string{"usr/bin/only-in-2": "2\n"})
	v3 := h.publish("3", nil)
	h.mustClient("upgrade")
	if st := h.status(); st.Deployments[0].Checksum != v3.String() {
		t.Fatalf("upgrade: %+v", st.Deployments)
	}
	h.mustClient("deploy", "2")
	st := h.status()
	if st.Deployments[0].Checksum != v2.String() || st.Deployments[0].Version != "2" {
		t.Fatalf("deploy 2: %+v", st.Deployments)
	}
	dep := filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", v2.String()+".0", "usr/bin/only-in-2")
	if b, err := os.ReadFile(dep); err != nil || string(b) != "2\n" {
		t.Fatalf("deployed v2 lacks its file: %v", err)
	}
	h.mustClient("deploy", v3.String()[:12])
	if st := h.status(); st.Deployments[0].Checksum != v3.String() {
		t.Fatalf("deploy by checksum: %+v", st.Deployments)
	}
}

func TestCancelDuringDeploy(t *testing.T) {
	h := newHost(t)
	// A large update makes the deploy stage (checkout of every file) long
	// enough to cancel in the middle of it.
	extra := map[string]string{}
	for i := 0; i < 15000; i++ {
		extra[fmt.Sprintf("usr/share/many/d%02d/f%05d", i%50, i)] = fmt.Sprint(i)
	}
	h.publish("2", extra)
	up := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	up.Stderr = up.Stdout
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "deploy..." {
			// The same thing Ctrl-C does: the client asks the daemon to cancel.
			up.Process.Signal(os.Interrupt)
		}
	}
	err = up.Wait()
	if err == nil || !strings.Contains(out.String(), "cancelled") {
		t.Fatalf("upgrade cancelled during deploy: %v\n%s", err, out.String())
	}
	st := h.status()
	if len(st.Deployments) != 1 {
		t.Fatalf("a cancelled deploy left a deployment: %+v", st.Deployments)
	}
	dirs, _ := filepath.Glob(filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", "*"))
	if len(dirs) != 2 { // the one deployment and its .origin
		t.Fatalf("leftovers after a cancelled deploy: %v", dirs)
	}
	h.mustClient("upgrade")
	if st := h.status(); len(st.Deployments) != 2 || st.Deployments[0].Version != "2" {
		t.Fatalf("upgrade after the cancel: %+v", st.Deployments)
	}
}
