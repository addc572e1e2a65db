package integration

// End-to-end tests of the host commands' defects found by trying every
// command as a user (issue 19) and of refused downgrades (issue 10, item
// 4): os-updated runs as its own process on a private bus, updates come
// from a real HTTP server on loopback whose access log the tests read.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// sysrootRef reads a ref of the sysroot's repository ("" if absent).
func (h *host) sysrootRef(rel string) string {
	b, err := os.ReadFile(filepath.Join(h.sysroot, "ostree/repo/refs", rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// countObjects counts the objects of the sysroot's repository.
func (h *host) countObjects() int {
	h.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(h.sysroot, "ostree/repo/objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *host) history() []api.HistoryEntry {
	h.t.Helper()
	var hist []api.HistoryEntry
	if err := json.Unmarshal([]byte(h.mustClient("history", "--json")), &hist); err != nil {
		h.t.Fatal(err)
	}
	return hist
}

// restartDaemon runs os-updated again with extra arguments.
func (h *host) restartDaemon(args ...string) {
	h.killDaemon()
	h.daemonArgs = args
	h.startDaemon()
}

// Issue 19 item 2: a client that saw Finished can start the next
// transaction at once. A reboot command that takes a while makes the gap
// between Finished and the end of the transaction's goroutine wide.
func TestHostNotBusyAfterFinished(t *testing.T) {
	h := newHost(t)
	h.restartDaemon("--reboot-command", "sleep 3")
	h.publish("2", nil)
	h.mustClient("upgrade", "--reboot")
	if out, errOut, err := h.client("rollback"); err != nil {
		t.Fatalf("rollback right after upgrade: %v\n%s%s", err, out, errOut)
	}
	if st := h.status(); st.Deployments[0].Version != "1" {
		t.Fatalf("after rollback: %+v", st.Deployments)
	}
	if text := h.mustClient("status"); !strings.Contains(text, "State: idle") {
		t.Fatalf("status right after a transaction:\n%s", text)
	}
}

// Issue 19 items 3 and 5: a staged deployment is what is installed next,
// and cleanup --pending removes it with its record.
func TestHostStagedDeployment(t *testing.T) {
	h := newHost(t)
	v2 := h.publish("2", nil)
	h.mustClient("upgrade", "--stage")
	record := filepath.Join(h.sysroot, "run/ostree/staged-deployment")
	st := h.status()
	if len(st.Deployments) != 2 || !st.Deployments[0].Staged || st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("after upgrade --stage: %+v", st.Deployments)
	}
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("staged record: %v", err)
	}
	// Item 5: staged counts as installed.
	if out, errOut, err := h.client("upgrade", "--check"); exitCode(err) != 77 {
		t.Fatalf("upgrade --check with the update staged: %v, want exit 77\n%s%s", err, out, errOut)
	}
	out := h.mustClient("upgrade")
	if !strings.Contains(out, "No update available") || !strings.Contains(out, "already staged") {
		t.Fatalf("upgrade with the update staged:\n%s", out)
	}
	if st := h.status(); len(st.Deployments) != 2 || !st.Deployments[0].Staged {
		t.Fatalf("upgrade deployed the staged commit again: %+v", st.Deployments)
	}
	h.restartDaemon("--automatic-update-policy", "stage")
	out = h.mustClient("automatic")
	if !strings.Contains(out, "No update available") {
		t.Fatalf("automatic stage with the update staged:\n%s", out)
	}
	if st := h.status(); len(st.Deployments) != 2 {
		t.Fatalf("automatic staged again: %+v", st.Deployments)
	}
	// Item 3: cleanup --pending drops the staged deployment and its record.
	before := h.countObjects()
	out = h.mustClient("cleanup", "--pending")
	if !strings.Contains(out, "Removed staged deployment "+v2.String()) {
		t.Fatalf("cleanup --pending:\n%s", out)
	}
	st = h.status()
	if len(st.Deployments) != 1 || st.Deployments[0].Version != "1" {
		t.Fatalf("after cleanup --pending: %+v", st.Deployments)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("staged record still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", v2.String()+".0")); !os.IsNotExist(err) {
		t.Fatalf("staged deployment directory still there: %v", err)
	}
	// The tracking ref still holds the commit: nothing to free but what
	// the report says.
	checkFreed(t, out, before, h.countObjects(), false)
	// Finalizing now has nothing to do.
	osu(t, "finalize", "--sysroot", h.sysroot)
	if st := h.status(); len(st.Deployments) != 1 || st.Deployments[0].Version != "1" {
		t.Fatalf("after finalize: %+v", st.Deployments)
	}
}

// checkFreed checks that cleanup's "Freed N objects" is what the
// repository lost, and (with some) that it lost something.
func checkFreed(t *testing.T, out string, before, after int, some bool) {
	t.Helper()
	m := regexp.MustCompile(`Freed (\d+) objects \((\d+) bytes\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no Freed line:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	bytes, _ := strconv.Atoi(m[2])
	if n != before-after || some && (n == 0 || bytes == 0) {
		t.Fatalf("cleanup reported %d objects (%d bytes) freed; the repository went from %d to %d objects\n%s", n, bytes, before, after, out)
	}
}

// Issue 19 item 4: cleanup reports what it really freed.
func TestHostCleanupReportsFreed(t *testing.T) {
	h := newHost(t)
	h.publish("2", nil)
	h.mustClient("upgrade")
	before := h.countObjects()
	out := h.mustClient("cleanup", "--rollback")
	checkFreed(t, out, before, h.countObjects(), true)
	if st := h.status(); len(st.Deployments) != 1 || st.Deployments[0].Version != "2" {
		t.Fatalf("after cleanup --rollback: %+v", st.Deployments)
	}
}

// saveSummary returns the server's current summary, signature and ref
// files, to replay them later.
func (h *host) saveSummary() map[string][]byte {
	h.t.Helper()
	out := map[string][]byte{}
	for _, rel := range []string{"summary", "summary.sig", "refs/heads/" + testRef} {
		b, err := os.ReadFile(filepath.Join(h.server.Path(), rel))
		if err != nil {
			h.t.Fatal(err)
		}
		out[rel] = b
	}
	return out
}

func (h *host) replay(files map[string][]byte) {
	h.t.Helper()
	for rel, b := range files {
		if err := os.WriteFile(filepath.Join(h.server.Path(), rel), b, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// contentRequests counts requests for tree objects (dirtrees, dirmetas,
// files) and static deltas.
func contentRequests(log []served) (n int, paths []string) {
	for _, e := range log {
		if strings.HasSuffix(e.path, ".filez") || strings.HasSuffix(e.path, ".dirtree") ||
			strings.HasSuffix(e.path, ".dirmeta") || strings.HasPrefix(e.path, "/deltas/") {
			n++
			paths = append(paths, e.path)
		}
	}
	return n, paths
}

// Issue 19 item 6 and issue 10 item 4: a replayed old signed summary is
// refused from the commit object alone, fetches no content and leaves the
// tracking ref where it was; --allow-downgrade takes it (item 7).
func TestHostReplayedDowngradeRefusedBeforeDownload(t *testing.T) {
	h := newHost(t)
	old := h.saveSummary()
	v1 := h.sysrootRef("remotes/origin/" + testRef)
	v2 := h.publish("2", map[string]string{"usr/bin/new-in-2": "2\n"})
	h.mustClient("upgrade")
	refPath := "remotes/origin/" + testRef
	if got := h.sysrootRef(refPath); got != v2.String() {
		t.Fatalf("tracking ref after upgrade: %s, want %s", got, v2)
	}
	h.replay(old)
	mark := h.accessLen()
	_, errOut, err := h.client("upgrade")
	if err == nil || !strings.Contains(errOut, "refusing to downgrade") || !strings.Contains(errOut, "--allow-downgrade") {
		t.Fatalf("upgrade to a replayed old commit: %v %s", err, errOut)
	}
	if n, paths := contentRequests(h.accessLog(mark)); n != 0 {
		t.Fatalf("the refused downgrade fetched %d content objects: %v", n, paths)
	}
	if got := h.sysrootRef(refPath); got != v2.String() {
		t.Fatalf("the refused downgrade moved the tracking ref to %s (want it at %s)", got, v2)
	}
	if _, errOut, err := h.client("upgrade", "--check"); err == nil || !strings.Contains(errOut, "refusing to downgrade") {
		t.Fatalf("upgrade --check of a replayed old commit: %v %s", err, errOut)
	}
	// Item 7: the client's --allow-downgrade reaches the daemon.
	h.mustClient("upgrade", "--allow-downgrade")
	if st := h.status(); st.Deployments[0].Checksum != v1 {
		t.Fatalf("upgrade --allow-downgrade: %+v", st.Deployments)
	}
}

// Issue 19 item 6: a rebase to another OS is refused after fetching only
// the way to its os-release, and leaves no ref; cleanup --refs removes
// refs no deployment follows.
func TestHostRebaseOtherOSRefusedBeforeDownload(t *testing.T) {
	h := newHost(t)
	h.publishOn("otheros/x86_64/stable", "1", map[string]string{"usr/lib/os-release": "ID=otheros\n"})
	mark := h.accessLen()
	_, errOut, err := h.client("rebase", "origin:otheros/x86_64/stable")
	if err == nil || !strings.Contains(errOut, "different operating system") {
		t.Fatalf("rebase to another OS: %v %s", err, errOut)
	}
	// The root, usr and lib dirtrees and os-release itself; the tree has
	// more than 200 files.
	if n, paths := contentRequests(h.accessLog(mark)); n > 4 {
		t.Fatalf("the refused rebase fetched %d content objects: %v", n, paths)
	}
	if ref := h.sysrootRef("remotes/origin/otheros/x86_64/stable"); ref != "" {
		t.Fatalf("the refused rebase left a ref at %s", ref)
	}
	// A branch deployed, then removed, leaves its ref behind until
	// cleanup --refs.
	h.publishOn("testos/x86_64/testing", "2-testing", nil)
	h.mustClient("rebase", "origin:testos/x86_64/testing")
	h.mustClient("cleanup", "--pending")
	if ref := h.sysrootRef("remotes/origin/testos/x86_64/testing"); ref == "" {
		t.Fatal("the testing ref is gone before cleanup --refs")
	}
	before := h.countObjects()
	out := h.mustClient("cleanup", "--refs")
	if !strings.Contains(out, "Removed ref origin:testos/x86_64/testing") {
		t.Fatalf("cleanup --refs:\n%s", out)
	}
	if ref := h.sysrootRef("remotes/origin/testos/x86_64/testing"); ref != "" {
		t.Fatal("cleanup --refs left the unused ref")
	}
	if ref := h.sysrootRef("remotes/origin/" + testRef); ref == "" {
		t.Fatal("cleanup --refs removed the ref the deployment follows")
	}
	checkFreed(t, out, before, h.countObjects(), true)
}

// Issue 19 item 7: deploy goes to any version of the history, older ones
// too; upgrade, and a rebase that stays on its branch, refuse an older
// commit unless --allow-downgrade; a rebase to another branch does not.
func TestHostDowngradeRules(t *testing.T) {
	h := newHost(t)
	// A branch whose head is older than what is deployed.
	h.at = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	old := h.publishOn("testos/x86_64/old", "0.9", nil)
	h.publish("2", nil)
	v3 := h.publish("3", nil)
	h.mustClient("upgrade")
	if st := h.status(); st.Deployments[0].Checksum != v3.String() {
		t.Fatalf("upgrade: %+v", st.Deployments)
	}
	out := h.mustClient("deploy", "2")
	if st := h.status(); st.Deployments[0].Version != "2" {
		t.Fatalf("deploy 2 (older): %+v", st.Deployments)
	}
	if !strings.Contains(out, "Deployed 2 ") {
		t.Fatalf("deploy printed no result line:\n%s", out)
	}
	// Another branch has no chronological order with this one: a rebase to
	// a branch whose head is older goes ahead, as `ostree admin switch` does.
	h.mustClient("rebase", "origin:testos/x86_64/old")
	if st := h.status(); st.Deployments[0].Checksum != old.String() || st.Deployments[0].Origin != "origin:testos/x86_64/old" {
		t.Fatalf("rebase to another branch with an older head: %+v", st.Deployments)
	}
	// Back on the first branch, a rebase to its own older head (published
	// after the fact) is refused before any content is fetched.
	h.mustClient("rebase", "origin:"+testRef)
	h.at = time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	older := h.publish("1.5", nil)
	mark := h.accessLen()
	if _, errOut, err := h.client("rebase", "origin:"+testRef); err == nil || !strings.Contains(errOut, "refusing to downgrade") {
		t.Fatalf("rebase to the same branch's older head: %v %s", err, errOut)
	}
	if n, paths := contentRequests(h.accessLog(mark)); n != 0 {
		t.Fatalf("the refused rebase fetched %d content objects: %v", n, paths)
	}
	h.mustClient("rebase", "--allow-downgrade", "origin:"+testRef)
	if st := h.status(); st.Deployments[0].Checksum != older.String() {
		t.Fatalf("rebase --allow-downgrade: %+v", st.Deployments)
	}
	// The D-Bus option is read for Deploy too (and of the right type).
	if out, err := exec.Command("busctl", "--address="+h.bus, "call", api.BusName, api.ObjectPath, api.SysrootIface, "Deploy",
		"sa{sv}", "3", "1", "allow-downgrade", "s", "yes").CombinedOutput(); err == nil || !strings.Contains(string(out), "boolean") {
		t.Fatalf("Deploy with a string allow-downgrade: %v %s", err, out)
	}
}

// Issue 19 item 8: db diff reads from the older deployment to the newer
// one and takes versions as well as checksums.
func TestHostDbDiffDirection(t *testing.T) {
	h := newHost(t)
	p7 := [][5]string{{"bash", "", "5.2.15", "1", "x86_64"}}
	p8 := [][5]string{{"bash", "", "5.2.21", "1", "x86_64"}}
	p9 := [][5]string{{"bash", "", "5.2.26", "1", "x86_64"}}
	v7 := h.publishFull(testRef, "7", nil, p7)
	h.mustClient("upgrade")
	v8 := h.publishFull(testRef, "8", nil, p8)
	h.mustClient("upgrade")
	out := h.mustClient("db", "diff")
	if !strings.Contains(out, "Upgraded:   bash-5.2.15-1.x86_64 -> bash-5.2.21-1.x86_64") || strings.Contains(out, "Downgraded") {
		t.Fatalf("db diff after upgrading 7 to 8:\n%s", out)
	}
	if !strings.Contains(out, "from: "+v7.String()) || !strings.Contains(out, "to:   "+v8.String()) {
		t.Fatalf("db diff endpoints:\n%s", out)
	}
	// A staged deployment is what the default diff goes to.
	h.publishFull(testRef, "9", nil, p9)
	h.mustClient("upgrade", "--stage")
	if out := h.mustClient("db", "diff"); !strings.Contains(out, "bash-5.2.21-1.x86_64 -> bash-5.2.26-1.x86_64") {
		t.Fatalf("db diff with 9 staged:\n%s", out)
	}
	// Versions and checksums.
	if out := h.mustClient("db", "diff", "9", "7"); !strings.Contains(out, "Downgraded: bash-5.2.26-1.x86_64 -> bash-5.2.15-1.x86_64") {
		t.Fatalf("db diff 9 7:\n%s", out)
	}
	if out := h.mustClient("db", "diff", v7.String()[:10], "8"); !strings.Contains(out, "Upgraded:   bash-5.2.15-1.x86_64 -> bash-5.2.21-1.x86_64") {
		t.Fatalf("db diff CHECKSUM 8:\n%s", out)
	}
	if _, errOut, err := h.client("db", "diff", "nosuchversion", "8"); err == nil || !strings.Contains(errOut, "nosuchversion") {
		t.Fatalf("db diff of an unknown version: %v %s", err, errOut)
	}
}

// Issue 19 item 9: history records what each transaction really was, its
// JSON always has from, to and error, and results are printed.
func TestHostHistoryKindsAndOutput(t *testing.T) {
	h := newHost(t)
	h.restartDaemon("--automatic-update-policy", "check")
	out := h.mustClient("automatic")
	if !strings.Contains(out, "No update available") {
		t.Fatalf("automatic with nothing new:\n%s", out)
	}
	h.publishFull(testRef, "2", nil, [][5]string{{"bash", "", "5.2", "1", "x86_64"}})
	h.mustClient("automatic")
	h.mustClient("upgrade", "--check")
	h.client("upgrade", "--preview")
	h.mustClient("upgrade", "--download-only")
	h.mustClient("upgrade")
	h.mustClient("deploy", "1")
	hist := h.history()
	kinds := []string{}
	for _, e := range hist {
		kinds = append(kinds, e.Kind)
	}
	want := "deploy upgrade download preview check automatic-check automatic-check"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("history kinds %v, want %s", kinds, want)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(h.mustClient("history", "--json")), &raw); err != nil {
		t.Fatal(err)
	}
	for _, e := range raw {
		for _, k := range []string{"id", "kind", "caller-uid", "start", "end", "from", "to", "result", "error"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("history entry lacks %q: %v", k, e)
			}
		}
	}
	// The Kind property of a transaction says the same.
	h.restartDaemon("--automatic-update-policy", "stage")
	h.mustClient("automatic")
	if hist := h.history(); hist[0].Kind != "automatic-stage" {
		t.Fatalf("automatic stage recorded as %q", hist[0].Kind)
	}
}

// Issue 19 item 10: kargs --replace follows rpm-ostree: KEY=VALUE replaces
// the only value of KEY, KEY=OLD=NEW one of several, and anything else is
// a clear error that changes nothing.
func TestHostKargsReplace(t *testing.T) {
	h := newHost(t)
	h.mustClient("kargs", "--append", "console=tty0", "--append", "console=ttyS0", "--append", "quiet", "--append", "resume=UUID=abc")
	kargs := func() string { return strings.Join(h.status().Deployments[0].Kargs, " ") }
	start := kargs()
	for _, c := range []struct{ arg, want string }{
		{"absent=1", "absent is not set"},
		{"console=ttyS1", "console has 2 values"},
		{"console=tty9=ttyS1", "console has 2 values"},
	} {
		if _, errOut, err := h.client("kargs", "--replace", c.arg); err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("kargs --replace %s: %v %q, want an error saying %q", c.arg, err, errOut, c.want)
		}
	}
	if got := kargs(); got != start {
		t.Fatalf("refused replacements changed the arguments: %q -> %q", start, got)
	}
	h.mustClient("kargs", "--replace", "console=ttyS0=ttyS1")
	h.mustClient("kargs", "--replace", "resume=UUID=def")
	h.mustClient("kargs", "--replace", "quiet")
	got := kargs()
	if !strings.Contains(got, "console=tty0 console=ttyS1 quiet resume=UUID=def") {
		t.Fatalf("kargs after replacements: %q", got)
	}
}

// randomFiles returns n incompressible files of size bytes each.
func randomFiles(seed int64, n, size int) map[string]string {
	rng := rand.New(rand.NewSource(seed))
	out := map[string]string{}
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		rng.Read(b)
		out[fmt.Sprintf("usr/share/big/f%02d", i)] = string(b)
	}
	return out
}

// partRequests lists the delta part indexes requested in a log.
func partRequests(log []served, dir string) (idx []int, bytes int64) {
	for _, e := range log {
		rest, ok := strings.CutPrefix(e.path, "/"+dir+"/")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil {
			idx = append(idx, i)
			bytes += e.bytes
		}
	}
	return idx, bytes
}

// Issue 19 item 1: a cancelled or killed static-delta download keeps the
// parts it fetched and verified; the next upgrade fetches only the rest,
// and a cancel never falls back to fetching objects.
func TestHostDeltaPartsSurviveCancelAndCrash(t *testing.T) {
	h := newHost(t)
	v1 := object.Checksum{}
	if c, err := h.server.ReadRef("", testRef); err == nil {
		v1 = c
	}
	v2 := h.publish("2", randomFiles(2, 10, 256<<10))
	if _, err := delta.Generate(context.Background(), h.server, v1, v2, delta.GenerateOptions{MaxChunkSize: 256 << 10, NoFallbacks: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := summary.Update(h.server, summary.Options{Signers: []sign.Signer{h.signer}}); err != nil {
		t.Fatal(err)
	}
	sb, err := delta.DecodeSuperblock(mustRead(t, filepath.Join(h.server.Path(), delta.SuperblockPath(v1, v2))))
	if err != nil {
		t.Fatal(err)
	}
	parts := len(sb.Parts)
	if parts < 8 {
		t.Fatalf("the delta has %d parts; the test needs at least 8", parts)
	}
	dir := filepath.ToSlash(filepath.Dir(delta.PartPath(v1, v2, 0)))
	maxPart := func(log []served) int {
		idx, _ := partRequests(log, dir)
		m := -1
		for _, i := range idx {
			m = max(m, i)
		}
		return m
	}
	start := func() (*exec.Cmd, *strings.Builder) {
		up := exec.Command(osUpdate, "upgrade", "--bus-address", h.bus)
		out := &strings.Builder{}
		up.Stdout, up.Stderr = out, out
		if err := up.Start(); err != nil {
			t.Fatal(err)
		}
		return up, out
	}
	// 1. Cancel in the middle of the delta (a slow link: 512 KiB/s).
	h.deltaRate.Store(512 << 10)
	mark1 := h.accessLen()
	up, out := start()
	waitFor(t, func() bool { return maxPart(h.accessLog(mark1)) >= 3 })
	h.mustClient("cancel")
	if err := up.Wait(); err == nil || !strings.Contains(out.String(), "cancelled") {
		t.Fatalf("cancelled upgrade: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "fetching objects instead") || strings.Contains(h.daemonLog.String(), "fetching objects instead") {
		t.Fatalf("a cancel was taken for a delta failure:\n%s", out.String())
	}
	log1 := h.accessLog(mark1)
	for _, e := range log1 {
		if strings.HasSuffix(e.path, ".filez") {
			t.Fatalf("the cancelled delta download fell back to fetching objects (%s)", e.path)
		}
	}
	// A part is only requested once the one before it was stored.
	done1 := maxPart(log1) - 1
	// 2. Kill the daemon further on.
	mark2 := h.accessLen()
	up, _ = start()
	waitFor(t, func() bool { return maxPart(h.accessLog(mark2)) >= done1+3 })
	log2 := h.accessLog(mark2)
	h.killDaemon()
	up.Wait()
	h.startDaemon()
	idx2, _ := partRequests(log2, dir)
	for _, i := range idx2 {
		if i < done1 {
			t.Errorf("after the cancel, part %d was fetched again (parts 0..%d were complete)", i, done1-1)
		}
	}
	done2 := maxPart(h.accessLog(mark2)) - 1
	// 3. Finish on a fast link: only the missing parts are fetched.
	h.deltaRate.Store(0)
	mark3 := h.accessLen()
	h.mustClient("upgrade")
	if st := h.status(); len(st.Deployments) != 2 || st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("resumed upgrade: %+v", st.Deployments)
	}
	idx3, bytes3 := partRequests(h.accessLog(mark3), dir)
	for _, i := range idx3 {
		if i < done2 {
			t.Errorf("after the crash, part %d was fetched again (parts 0..%d were complete)", i, done2-1)
		}
	}
	var total int64
	for _, p := range sb.Parts {
		total += int64(p.Size)
	}
	t.Logf("delta: %d parts, %d bytes; fetched before the cancel up to part %d, before the kill up to part %d; the last run fetched %d parts, %d bytes",
		parts, total, done1, done2, len(idx3), bytes3)
	if len(idx3) >= parts || bytes3 >= total {
		t.Fatalf("the last run fetched %d of %d parts (%d of %d bytes)", len(idx3), parts, bytes3, total)
	}
	// The finished delta leaves no cached parts behind.
	if des, err := os.ReadDir(filepath.Join(h.sysroot, "ostree/repo/tmp/cache/deltaparts")); err == nil && len(des) > 0 {
		t.Fatalf("cached parts left after the delta was applied: %v", des)
	}
	out2 := osu(t, "repo", "fsck", "--repo", filepath.Join(h.sysroot, "ostree/repo"))
	if !strings.Contains(out2, "no errors found") {
		t.Fatalf("fsck: %s", out2)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
