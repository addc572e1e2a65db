package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// root is a host root in a temp dir with the two health.d directories.
type root struct {
	dir string
	cfg Config
}

func newRoot(t *testing.T) *root {
	dir := t.TempDir()
	r := &root{dir: dir, cfg: ForRoot(dir)}
	for _, d := range r.cfg.Dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *root) script(t *testing.T, rel, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(r.dir, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *root) run(t *testing.T) *Report {
	t.Helper()
	rep, err := Run(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func names(cs []Check) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, " ")
}

func TestAllPassInLexicalOrderAcrossDirectories(t *testing.T) {
	r := newRoot(t)
	order := filepath.Join(r.dir, "order")
	r.script(t, UsrDir+"/20-usr", "echo 20-usr >> "+order, 0o755)
	r.script(t, EtcDir+"/10-etc", "echo 10-etc >> "+order, 0o755)
	r.script(t, UsrDir+"/30-usr", "echo 30-usr >> "+order+"; echo some output", 0o755)
	rep := r.run(t)
	if !rep.Healthy || rep.Reason != "" {
		t.Fatalf("not healthy: %+v", rep)
	}
	if got := names(rep.Checks); got != "10-etc 20-usr 30-usr" {
		t.Fatalf("checks %q", got)
	}
	b, _ := os.ReadFile(order)
	if string(b) != "10-etc\n20-usr\n30-usr\n" {
		t.Fatalf("ran in order %q", b)
	}
	if rep.Checks[2].Output != "some output" || rep.Checks[2].ExitCode != 0 {
		t.Fatalf("output not captured: %+v", rep.Checks[2])
	}
}

func TestFailureNamesScriptExitCodeAndLastLines(t *testing.T) {
	r := newRoot(t)
	r.script(t, UsrDir+"/10-ok", "exit 0", 0o755)
	r.script(t, UsrDir+"/50-disk", `for i in 1 2 3 4 5 6 7; do echo "line $i"; done; echo "disk /data missing" >&2; exit 3`, 0o755)
	r.script(t, UsrDir+"/90-after", "echo ran > "+filepath.Join(r.dir, "after-ran"), 0o755)
	rep := r.run(t)
	if rep.Healthy {
		t.Fatalf("healthy with a failing script: %+v", rep)
	}
	c := rep.Checks[1]
	if c.Name != "50-disk" || c.OK || c.ExitCode != 3 {
		t.Fatalf("failed check: %+v", c)
	}
	// The last five lines, stderr included; the first ones dropped.
	if c.Output != "line 4\nline 5\nline 6\nline 7\ndisk /data missing" {
		t.Fatalf("output %q", c.Output)
	}
	want := "50-disk exited 3: line 4 | line 5 | line 6 | line 7 | disk /data missing"
	if rep.Reason != want {
		t.Fatalf("reason %q\nwant   %q", rep.Reason, want)
	}
	// Every check runs, also after a failure.
	if _, err := os.Stat(filepath.Join(r.dir, "after-ran")); err != nil {
		t.Fatalf("the check after the failure did not run: %v", err)
	}
}

func TestSeveralFailuresCounted(t *testing.T) {
	r := newRoot(t)
	r.script(t, UsrDir+"/a", "exit 1", 0o755)
	r.script(t, UsrDir+"/b", "exit 2", 0o755)
	rep := r.run(t)
	if rep.Healthy || rep.Reason != "a exited 1 (and 1 more failed check(s))" {
		t.Fatalf("reason %q", rep.Reason)
	}
}

func TestTimeoutKillsScriptAndItsChildren(t *testing.T) {
	r := newRoot(t)
	pidFile := filepath.Join(r.dir, "child.pid")
	// A child that would outlive its parent keeps the output pipe open.
	r.script(t, UsrDir+"/10-hang", "sleep 60 & echo $! > "+pidFile+"; echo waiting; wait", 0o755)
	r.cfg.Timeout = 500 * time.Millisecond
	start := time.Now()
	rep := r.run(t)
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the timeout did not stop the check: %s", took)
	}
	c := rep.Checks[0]
	if rep.Healthy || c.OK || c.Problem != "timed out after 500ms (killed)" || c.Output != "waiting" {
		t.Fatalf("timed-out check: %+v", c)
	}
	if !strings.HasPrefix(rep.Reason, "10-hang timed out after 500ms (killed): waiting") {
		t.Fatalf("reason %q", rep.Reason)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		// Gone, or a zombie waiting for its reaper.
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script's child %s survived the timeout", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEtcOverridesAndMasksUsr(t *testing.T) {
	r := newRoot(t)
	r.script(t, UsrDir+"/10-check", "echo usr; exit 1", 0o755)
	r.script(t, EtcDir+"/10-check", "echo etc; exit 0", 0o755)
	r.script(t, UsrDir+"/20-masked", "exit 1", 0o755)
	if err := os.Symlink("/dev/null", filepath.Join(r.dir, EtcDir, "20-masked")); err != nil {
		t.Fatal(err)
	}
	rep := r.run(t)
	if !rep.Healthy || len(rep.Checks) != 1 || rep.Checks[0].Output != "etc" || rep.Checks[0].Path != filepath.Join(r.dir, EtcDir, "10-check") {
		t.Fatalf("/etc did not override /usr: %+v", rep)
	}
	if len(rep.Skipped) != 1 || !strings.HasSuffix(rep.Skipped[0], "20-masked (masked)") {
		t.Fatalf("skipped %v", rep.Skipped)
	}
}

func TestNonExecutableHiddenAndDirectoriesIgnored(t *testing.T) {
	r := newRoot(t)
	r.script(t, UsrDir+"/10-readme", "exit 1", 0o644)
	r.script(t, UsrDir+"/.hidden", "exit 1", 0o755)
	os.Mkdir(filepath.Join(r.dir, UsrDir, "20-dir"), 0o755)
	r.script(t, EtcDir+"/30-ok", "exit 0", 0o755)
	rep := r.run(t)
	if !rep.Healthy || names(rep.Checks) != "30-ok" {
		t.Fatalf("%+v", rep)
	}
	if got := strings.Join(rep.Skipped, ";"); !strings.Contains(got, "10-readme (not executable)") || !strings.Contains(got, "20-dir (not a regular file)") || strings.Contains(got, "hidden") {
		t.Fatalf("skipped %q", got)
	}
}

func TestNoChecksIsHealthy(t *testing.T) {
	r := &root{dir: t.TempDir()}
	r.cfg = ForRoot(r.dir) // no directories at all
	rep := r.run(t)
	if !rep.Healthy || len(rep.Checks) != 0 {
		t.Fatalf("%+v", rep)
	}
}

func TestRequiredUnitsWithoutSystemdFail(t *testing.T) {
	r := newRoot(t)
	os.WriteFile(filepath.Join(r.dir, UsrConfig), []byte("# shipped\nrequired-units = a.service\n"), 0o644)
	os.WriteFile(filepath.Join(r.dir, EtcConfig), []byte("required-units = b.service a.service\n"), 0o644)
	rep := r.run(t)
	if rep.Healthy || names(rep.Checks) != "a.service b.service" {
		t.Fatalf("%+v", rep)
	}
	want := "required unit a.service cannot be checked: systemd is not running (no " + filepath.Join(r.dir, "run/systemd/system") + ") (and 1 more failed check(s))"
	if rep.Reason != want {
		t.Fatalf("reason %q\nwant   %q", rep.Reason, want)
	}
}

// With systemd, units are asked with `systemctl is-active`. systemd does
// not run here, so a systemctl stand-in answers as systemctl does (state
// on stdout, exit 0 only for active).
func TestRequiredUnitsAskSystemctl(t *testing.T) {
	r := newRoot(t)
	os.MkdirAll(filepath.Join(r.dir, "run/systemd/system"), 0o755)
	os.WriteFile(filepath.Join(r.dir, EtcConfig), []byte("required-units = up.service down.service\n"), 0o644)
	r.cfg.Systemctl = r.script(t, "bin/systemctl", `[ "$1" = is-active ] || exit 2
case "$2" in up.service) echo active; exit 0;; *) echo failed; exit 3;; esac`, 0o755)
	rep := r.run(t)
	if rep.Healthy || len(rep.Checks) != 2 || !rep.Checks[0].OK || rep.Checks[1].OK {
		t.Fatalf("%+v", rep)
	}
	if rep.Reason != "required unit down.service is failed" {
		t.Fatalf("reason %q", rep.Reason)
	}
}

func TestBadConfigurationIsAnError(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key": "required-unit = x\n",
		"no equals":   "required-units\n",
		"bad timeout": "script-timeout = soon\n",
	} {
		t.Run(name, func(t *testing.T) {
			r := newRoot(t)
			p := filepath.Join(r.dir, EtcConfig)
			os.WriteFile(p, []byte(body), 0o644)
			_, err := Run(context.Background(), r.cfg)
			if err == nil || !strings.Contains(err.Error(), p+":1:") {
				t.Fatalf("error %v does not name %s:1", err, p)
			}
		})
	}
}

func TestScriptTimeoutFromConfig(t *testing.T) {
	r := newRoot(t)
	os.WriteFile(filepath.Join(r.dir, EtcConfig), []byte("script-timeout = 300ms\n"), 0o644)
	r.script(t, UsrDir+"/slow", "sleep 30", 0o755)
	rep := r.run(t)
	if rep.Healthy || rep.Checks[0].Problem != "timed out after 300ms (killed)" {
		t.Fatalf("%+v", rep.Checks)
	}
}
