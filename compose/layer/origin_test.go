package layer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo/keyfile"
)

func TestOriginRoundTrip(t *testing.T) {
	f, err := keyfile.ParseBytes([]byte("[origin]\nrefspec=remote:os/x86_64\n\n[libostree-transient]\npinned=true\n"))
	if err != nil {
		t.Fatal(err)
	}
	req := Requests{Install: []string{"hello", "/var/cache/os-update/local/abc-x.rpm"}, Remove: []string{"victim"},
		Replace: []string{"libold-2.0-1.noarch", "/k/new.rpm"}}
	SetOrigin(f, "remote:os/x86_64", req)
	text := string(f.Bytes())
	for _, want := range []string{"baserefspec=remote:os/x86_64", "[packages]\nrequested=hello;\nrequested-local=/var/cache/os-update/local/abc-x.rpm;",
		"[overrides]\nremove=victim;\nreplace=libold-2.0-1.noarch;\nreplace-local=/k/new.rpm;", "pinned=true"} {
		if !strings.Contains(text, want) {
			t.Errorf("origin lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\nrefspec=") {
		t.Errorf("a layered origin keeps refspec=:\n%s", text)
	}
	g, _ := keyfile.ParseBytes(f.Bytes())
	base, got := OriginRequests(g)
	if base != "remote:os/x86_64" || strings.Join(got.Install, ",") != strings.Join(req.Install, ",") ||
		strings.Join(got.Remove, ",") != "victim" || strings.Join(got.Replace, ",") != strings.Join(req.Replace, ",") {
		t.Errorf("read back %q %+v", base, got)
	}
	// No requests left (uninstall + override reset --all): a plain origin.
	SetOrigin(g, base, Requests{})
	if text := string(g.Bytes()); !strings.Contains(text, "refspec=remote:os/x86_64") || strings.Contains(text, "baserefspec") ||
		strings.Contains(text, "[packages]") || strings.Contains(text, "[overrides]") {
		t.Errorf("reset origin:\n%s", text)
	}
}

func TestKeepLocal(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "x-1.0-1.noarch.rpm")
	os.WriteFile(src, []byte("payload"), 0o644)
	kept, err := KeepLocal(filepath.Join(dir, "local"), src)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(kept); err != nil || string(b) != "payload" || !strings.HasSuffix(kept, "-x-1.0-1.noarch.rpm") {
		t.Errorf("kept %s: %q %v", kept, b, err)
	}
	again, err := KeepLocal(filepath.Join(dir, "local"), src)
	if err != nil || again != kept {
		t.Errorf("second keep %s %v", again, err)
	}
}
