package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// Issue 15: an upgrade by static delta reports over D-Bus the bytes it
// fetched (what the HTTP server sent), the bytes expected and the delta's
// parts; the client in a pipe prints plain lines (no \r, no ANSI); a
// check shows no download stage and is recorded as a check.
func TestHostUpgradeProgressOverDBus(t *testing.T) {
	h := newHost(t)
	v1, err := h.server.ReadRef("", testRef)
	if err != nil {
		t.Fatal(err)
	}
	v2 := h.publish("2", randomFiles(2, 4, 64<<10))
	if _, err := delta.Generate(context.Background(), h.server, v1, v2, delta.GenerateOptions{MaxChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := summary.Update(h.server, summary.Options{Signers: []sign.Signer{h.signer}}); err != nil {
		t.Fatal(err)
	}

	// A check, its output captured from a pipe.
	out, errOut, err := h.client("upgrade", "--check")
	if err != nil || !strings.Contains(out, v2.String()) {
		t.Fatalf("upgrade --check: %v\n%s%s", err, out, errOut)
	}
	if strings.Contains(out, "download") || strings.ContainsAny(out+errOut, "\r\x1b") {
		t.Fatalf("upgrade --check output shows a download or terminal codes:\n%q", out+errOut)
	}
	if !strings.Contains(out, "check...") {
		t.Fatalf("upgrade --check does not name its stage:\n%s", out)
	}
	// --quiet: the result, no progress.
	if out, _, err := h.client("upgrade", "--check", "--quiet"); err != nil || !strings.Contains(out, v2.String()) || strings.Contains(out, "check") {
		t.Fatalf("upgrade --check --quiet: %v\n%s", err, out)
	}
	if hist := h.history(); len(hist) == 0 || hist[0].Kind != "check" || hist[0].To != "" {
		t.Fatalf("history after a check: %+v", hist)
	}
	if line := strings.SplitN(h.mustClient("history"), "\n", 2)[0]; !strings.Contains(line, " check ") || strings.Contains(line, "->") ||
		strings.Contains(line, "upgrade") {
		t.Fatalf("history shows the check as %q", line)
	}

	// The upgrade, followed by the client and by this test on the bus.
	conn, err := dbus.Connect(h.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchPathNamespace(api.TransactionPathPrefix)); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 4096)
	conn.Signal(signals)
	mark := h.accessLen()
	out, errOut, err = h.client("upgrade")
	if err != nil {
		t.Fatalf("upgrade: %v\n%s%s", err, out, errOut)
	}
	if strings.ContainsAny(out+errOut, "\r\x1b") {
		t.Fatalf("upgrade output in a pipe has terminal codes:\n%q", out+errOut)
	}
	if !strings.Contains(out, "download...") || !strings.Contains(out, "static delta") {
		t.Fatalf("upgrade output:\n%s", out)
	}
	var last, first api.Progress
	seen, finished := 0, false
	for timeout := time.After(30 * time.Second); !finished; {
		select {
		case s := <-signals:
			switch s.Name {
			case api.TransactionIface + ".Progress":
				p, ok := api.ParseProgress(s.Body)
				if !ok {
					t.Fatalf("Progress signal body %v does not have signature %s", s.Body, api.ProgressSignature)
				}
				if p.Stage == "download" {
					if seen == 0 {
						first = p
					}
					last = p
					seen++
					if p.BytesExpected > 0 && p.BytesDone > p.BytesExpected {
						t.Fatalf("progress %+v: more bytes done than expected", p)
					}
				}
			case api.TransactionIface + ".Finished":
				finished = true
			}
		case <-timeout:
			t.Fatal("no Finished signal")
		}
	}
	var sent uint64
	for _, e := range h.accessLog(mark) {
		// Only files that exist were sent (a 404's body is not read).
		if fi, err := os.Stat(filepath.Join(h.server.Path(), filepath.FromSlash(e.path))); err == nil && fi.Mode().IsRegular() {
			sent += uint64(e.bytes)
		}
	}
	t.Logf("%d download signals; first %+v, last %+v; the server sent %d bytes", seen, first, last, sent)
	if sent == 0 || last.BytesDone != sent || last.BytesExpected != sent {
		t.Fatalf("last download progress %+v: want %d bytes done of %d expected", last, sent, sent)
	}
	if last.PartsTotal == 0 || last.PartsDone != last.PartsTotal {
		t.Fatalf("last download progress %+v: want every delta part applied", last)
	}
	st := h.status()
	if st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("not deployed: %+v", st.Deployments)
	}
	// The check found v2; now that it is deployed it is no update.
	if c := st.CachedUpdate; c == nil || c.Checksum != v2.String() || c.Available {
		t.Fatalf("cached update after deploying it: %+v", c)
	}
	// One schema: `status --json` (the daemon) and `admin status --json`
	// (offline) print the same deployments, field for field.
	var raw struct {
		Deployments []map[string]any `json:"deployments"`
	}
	var offline struct {
		Deployments []map[string]any `json:"deployments"`
	}
	if err := json.Unmarshal([]byte(h.mustClient("status", "--json")), &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(osu(t, "admin", "status", "--sysroot", h.sysroot, "--json")), &offline); err != nil {
		t.Fatal(err)
	}
	for _, d := range raw.Deployments {
		delete(d, "boot-verdict") // the daemon's own record
	}
	if !reflect.DeepEqual(raw.Deployments, offline.Deployments) {
		t.Fatalf("status --json deployments:\n%v\nadmin status --json deployments:\n%v", raw.Deployments, offline.Deployments)
	}
	if _, ok := offline.Deployments[0]["origin"]; !ok {
		t.Fatalf("admin status --json has no origin: %v", offline.Deployments[0])
	}
}

// Issue 15: `repo pull` against a dead server reports each retry once,
// with its reason and backoff, and no progress lines repeating nothing.
func TestRepoPullDeadServerReportsRetries(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	osu(t, "repo", "init", "--repo", repoDir, "--mode", "archive")
	osu(t, "repo", "remote", "add", "--repo", repoDir, "--no-gpg-verify", "dead", "http://127.0.0.1:9/repo")
	cmd := exec.Command(osUpdate, "repo", "pull", "--repo", repoDir, "dead", "os/main")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err == nil {
		t.Fatalf("pull from a dead server succeeded:\n%s", out.String())
	}
	s := out.String()
	t.Logf("after %s:\n%s", time.Since(start).Round(time.Millisecond), s)
	if strings.ContainsAny(s, "\r\x1b") {
		t.Fatalf("terminal codes in piped output: %q", s)
	}
	retries := strings.Count(s, "retry ")
	if retries != 5 || !strings.Contains(s, "retry 1 of 5 in ") ||
		!strings.Contains(s, "connection refused") {
		t.Fatalf("want 5 retry lines naming the URL, the backoff and the reason:\n%s", s)
	}
	if strings.Count(s, "127.0.0.1:9/repo/summary.sig") != retries+1 {
		t.Fatalf("each line should name the URL once:\n%s", s)
	}
	if n := strings.Count(s, "\n"); n > retries+4 {
		t.Fatalf("%d lines for %d retries:\n%s", n, retries, s)
	}
}
