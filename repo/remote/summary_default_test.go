package remote

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

// An unset gpg-verify-summary follows libostree (off, with a note) when
// the remote has no key, and verifies when it has one.
func TestSummaryVerificationDefault(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := gpgtest.NewKey(t, "Summary Key", "never")
	r.Config().Set(`remote "plain"`, "url", "http://127.0.0.1:1/repo")
	r.Config().Set(`remote "plain"`, "gpg-verify", "false")
	r.Config().Set(`remote "keyed"`, "url", "http://127.0.0.1:1/repo")
	r.Config().Set(`remote "keyed"`, "gpgkeypath", key.PublicFile)
	r.Config().Set(`remote "off"`, "url", "http://127.0.0.1:1/repo")
	r.Config().Set(`remote "off"`, "gpg-verify-summary", "false")
	if err := r.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	s := &Store{Repo: r}
	for _, tc := range []struct {
		name      string
		verifiers int
		note      bool
	}{{"plain", 0, true}, {"keyed", 1, false}, {"off", 0, false}} {
		rm, err := s.Get(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := s.Verifiers(rm, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		note := s.SummaryUnverified(rm)
		if len(vs) != tc.verifiers || (note != "") != tc.note {
			t.Fatalf("%s: %d summary verifiers, note %q; want %d, note %v", tc.name, len(vs), note, tc.verifiers, tc.note)
		}
		if tc.note && !strings.Contains(note, "gpg-verify-summary") {
			t.Fatalf("note does not name the option: %q", note)
		}
	}
}
