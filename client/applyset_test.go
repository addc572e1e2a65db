package client

import (
	"errors"
	"testing"

	"github.com/osupdate/os-update/repo/remote"
)

// --set keeps our CLI's wording and rules on top of remote.SetOption.
func TestRemoteSetOptionWording(t *testing.T) {
	var r remote.Remote
	if err := applySet(&r, "gpg-verify-summary=T"); err != nil || !r.GPGVerifySummary {
		t.Fatalf("gpg-verify-summary=T: err %v, value %v", err, r.GPGVerifySummary)
	}
	for kv, want := range map[string]string{
		"gpg-verify=yes": `--set gpg-verify: not a boolean: "yes"`,
		"url=http://x/":  "give the URL as an argument",
		"novalue":        `--set wants KEY=VALUE, got "novalue"`,
	} {
		err := applySet(&r, kv)
		var u usageError
		if err == nil || err.Error() != want || !errors.As(err, &u) {
			t.Errorf("applySet(%q) = %v, want usage error %q", kv, err, want)
		}
	}
	if r.URL != "" {
		t.Errorf("url was set to %q", r.URL)
	}
	if _, err := parseVariantText("float 1"); err == nil || err.Error() != `cannot parse "float 1" (quote strings: 'text')` {
		t.Errorf("parseVariantText: %v", err)
	}
}
