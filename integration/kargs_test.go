package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func currentEntries(t *testing.T, sysroot string) map[string]string {
	t.Helper()
	out := map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(sysroot, "boot/loader/entries/*.conf"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = string(b)
	}
	return out
}

// Issue 10 item 2 through the daemon: the D-Bus KernelArgs method with a
// newline in an argument fails its transaction with the argument named,
// and the boot entries stay as they were.
func TestKernelArgsNewlineRefusedOverDBus(t *testing.T) {
	h := newHost(t)
	before := currentEntries(t, h.sysroot)
	for _, args := range [][]string{
		{"kargs", "--append", "y=2\nlinux /evil"},
		{"kargs", "--replace", "y=2\rinitrd /evil"},
	} {
		_, errOut, err := h.client(args...)
		if err == nil || !strings.Contains(errOut, "control character") {
			t.Errorf("%q: err %v, stderr %q: want a refusal naming the control character", args, err, errOut)
		}
	}
	after := currentEntries(t, h.sysroot)
	if len(after) != len(before) {
		t.Fatalf("entries %v, were %v", after, before)
	}
	for n, b := range before {
		if after[n] != b {
			t.Errorf("%s changed:\n%s", n, after[n])
		}
	}
}

// A sysroot whose entry an older version corrupted (lines injected by a
// kernel argument with a newline) still opens in the daemon: status names
// the entry, and kargs --delete repairs it.
func TestDaemonOpensCorruptedEntry(t *testing.T) {
	h := newHost(t)
	paths, _ := filepath.Glob(filepath.Join(h.sysroot, "boot/loader/entries/ostree-*.conf"))
	sort.Strings(paths)
	p := paths[len(paths)-1]
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	nb := regexp.MustCompile(`(?m)^options (.*)(ostree=\S+)$`).ReplaceAllString(string(b), "options ${1}y=2\nlinux /evil $2")
	if nb == string(b) {
		t.Fatalf("no options line:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(nb), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.mustClient("status")
	if !strings.Contains(out, "Warning: boot entry "+filepath.Base(p)+" is damaged") {
		t.Fatalf("status does not name the damaged entry:\n%s", out)
	}
	if st := h.status(); len(st.Warnings) != 1 || len(st.Deployments) != 1 {
		t.Fatalf("status %+v", st)
	}
	h.mustClient("kargs", "--delete", "y")
	for n, e := range currentEntries(t, h.sysroot) {
		if strings.Contains(e, "/evil") || !regexp.MustCompile(`(?m)^options .*ostree=`).MatchString(e) {
			t.Errorf("%s still damaged:\n%s", n, e)
		}
	}
	if st := h.status(); len(st.Warnings) != 0 {
		t.Errorf("warnings after repair: %v", st.Warnings)
	}
}
