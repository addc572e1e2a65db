// Package gpgtest makes throw-away GnuPG keys with the real gpg program,
// for tests of signing and verification.
package gpgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// Key is a passphrase-less key in its own GNUPGHOME.
type Key struct {
	Home        string // GnuPG home directory
	Fingerprint string
	PublicFile  string // ASCII-armored public key
	SecretFile  string // binary secret key export
}

// NewKey generates a key with `gpg --batch --quick-gen-key`. expire is
// gpg's expiry argument ("never", "1d", ...).
func NewKey(t testing.TB, name, expire string) *Key {
	t.Helper()
	testutil.RequireTool(t, "gpg")
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.RunErr("gpgconf", "--homedir", home, "--kill", "gpg-agent") })
	uid := name + " <" + strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@example.com>"
	gpg(t, home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
	out := gpg(t, home, "--with-colons", "--list-keys", uid)
	k := &Key{Home: home}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		if len(f) > 9 && f[0] == "fpr" {
			k.Fingerprint = f[9]
			break
		}
	}
	if k.Fingerprint == "" {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	k.PublicFile = filepath.Join(dir, "public.asc")
	k.SecretFile = filepath.Join(dir, "secret.gpg")
	if err := os.WriteFile(k.PublicFile, []byte(gpg(t, home, "--armor", "--export", k.Fingerprint)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.SecretFile, []byte(gpg(t, home, "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", k.Fingerprint)), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// Revoke imports the revocation certificate gpg made with the key and
// rewrites PublicFile to include the revocation.
func (k *Key) Revoke(t testing.TB) {
	t.Helper()
	rev, err := os.ReadFile(filepath.Join(k.Home, "openpgp-revocs.d", k.Fingerprint+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	// gpg guards the certificate with a leading ':' on its armor line.
	cert := strings.Replace(string(rev), ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----", 1)
	p := filepath.Join(filepath.Dir(k.PublicFile), "revocation.asc")
	if err := os.WriteFile(p, []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	gpg(t, k.Home, "--import", p)
	if err := os.WriteFile(k.PublicFile, []byte(gpg(t, k.Home, "--armor", "--export", k.Fingerprint)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gpg(t testing.TB, home string, args ...string) string {
	t.Helper()
	return testutil.Run(t, "gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--quiet"}, args...)...)
}

// Run runs gpg with this key's home directory.
func (k *Key) Run(t testing.TB, args ...string) string {
	t.Helper()
	return gpg(t, k.Home, args...)
}
