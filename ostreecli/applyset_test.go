package ostreecli

import (
	"testing"

	"github.com/osupdate/os-update/repo/remote"
)

// --set reads booleans and words errors as libostree's key files do.
func TestRemoteSetOptionWording(t *testing.T) {
	var r remote.Remote
	if err := applySet(&r, "gpg-verify=YES"); err != nil || !r.GPGVerify {
		t.Fatalf("gpg-verify=YES: err %v, value %v", err, r.GPGVerify)
	}
	if err := applySet(&r, "url=http://127.0.0.1:1/"); err != nil || r.URL != "http://127.0.0.1:1/" {
		t.Fatalf("url: err %v, value %q", err, r.URL)
	}
	err := applySet(&r, "tls-permissive=t")
	if want := "Key file contains key “tls-permissive” which has a value that cannot be interpreted."; err == nil || err.Error() != want {
		t.Errorf("tls-permissive=t: %v, want %q", err, want)
	}
	if _, err := parseVariantText(" float 1 "); err == nil || err.Error() != "0-7:expected value" {
		t.Errorf("parseVariantText: %v", err)
	}
}
