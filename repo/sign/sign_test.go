package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

func newRepo(t *testing.T, mode repo.Mode) (*repo.Repo, object.Checksum) {
	t.Helper()
	dir := t.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetFsync(false)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte("signed content\n"), 0o644)
	c, err := r.CommitDir(t.Context(), tree, repo.CommitOptions{Branch: "main", Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func gpgVerifier(t *testing.T, files ...string) *GPGVerifier {
	t.Helper()
	kr, err := LoadKeyring(files...)
	if err != nil {
		t.Fatal(err)
	}
	return &GPGVerifier{Keyring: kr}
}

// TestGPGInterop: our signature verifies with gpg, ostree's verifies with
// us, and a second signature by the same key is refused.
func TestGPGInterop(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	key := gpgtest.NewKey(t, "Repo Signer", "never")
	r, c := newRepo(t, repo.ModeArchive)

	s, err := GPGSignerFromHomedir(key.Home, key.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID() != key.Fingerprint {
		t.Fatalf("key ID %s, want %s", s.KeyID(), key.Fingerprint)
	}
	if err := SignCommit(r, c, s); err != nil {
		t.Fatal(err)
	}
	if err := SignCommit(r, c, s); !errors.Is(err, ErrAlreadySigned) {
		t.Fatalf("second signature by the same key: %v", err)
	}
	ids, err := VerifyCommit(r, c, gpgVerifier(t, key.PublicFile))
	if err != nil || len(ids) != 1 || ids[0] != key.Fingerprint {
		t.Fatalf("verify: %v %v", ids, err)
	}
	// gpg itself accepts the signature over the commit bytes.
	m, _ := r.ReadCommitMeta(c)
	sigs, _ := Signatures(m, KeyGPG)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sig"), sigs[0], 0o644)
	key.Run(t, "--verify", filepath.Join(dir, "sig"), r.ObjectPath(c, object.TypeCommit))

	// A commit signed by ostree verifies with us.
	other := gpgtest.NewKey(t, "Ostree Signer", "never")
	r2, c2 := newRepo(t, repo.ModeArchive)
	testutil.Run(t, "ostree", "--repo="+r2.Path(), "gpg-sign", "--gpg-homedir="+other.Home, c2.String(), other.Fingerprint)
	if _, err := VerifyCommit(r2, c2, gpgVerifier(t, other.PublicFile)); err != nil {
		t.Fatalf("ostree's signature: %v", err)
	}
	// Untrusted key: refused.
	if _, err := VerifyCommit(r2, c2, gpgVerifier(t, key.PublicFile)); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("untrusted key accepted: %v", err)
	}
	// Unsigned commit: refused.
	r3, c3 := newRepo(t, repo.ModeBare)
	if _, err := VerifyCommit(r3, c3, gpgVerifier(t, key.PublicFile)); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("unsigned commit accepted: %v", err)
	}
	// A keyring directory holding both keys verifies both.
	kd := t.TempDir()
	b1, _ := os.ReadFile(key.PublicFile)
	b2, _ := os.ReadFile(other.PublicFile)
	os.WriteFile(filepath.Join(kd, "a.asc"), b1, 0o644)
	os.WriteFile(filepath.Join(kd, "b.asc"), b2, 0o644)
	os.WriteFile(filepath.Join(kd, "README"), []byte("ignored"), 0o644)
	if _, err := VerifyCommit(r2, c2, gpgVerifier(t, kd)); err != nil {
		t.Fatal(err)
	}
	// The secret key file works like the home directory.
	if _, err := LoadGPGSigner(key.SecretFile, ""); err != nil {
		t.Fatal(err)
	}
}

func TestGPGExpiredAndRevoked(t *testing.T) {
	exp := gpgtest.NewKey(t, "Expiring", "1d")
	r, c := newRepo(t, repo.ModeArchive)
	s, err := LoadGPGSigner(exp.SecretFile, exp.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if err := SignCommit(r, c, s); err != nil {
		t.Fatal(err)
	}
	v := gpgVerifier(t, exp.PublicFile)
	if _, err := VerifyCommit(r, c, v); err != nil {
		t.Fatalf("valid now: %v", err)
	}
	v.Now = func() time.Time { return time.Now().Add(72 * time.Hour) }
	if _, err := VerifyCommit(r, c, v); !errors.Is(err, ErrNoValidSignature) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired key accepted: %v", err)
	}

	rev := gpgtest.NewKey(t, "Revoked", "never")
	r2, c2 := newRepo(t, repo.ModeArchive)
	s2, err := LoadGPGSigner(rev.SecretFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := SignCommit(r2, c2, s2); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCommit(r2, c2, gpgVerifier(t, rev.PublicFile)); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	rev.Revoke(t)
	if _, err := VerifyCommit(r2, c2, gpgVerifier(t, rev.PublicFile)); !errors.Is(err, ErrNoValidSignature) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked key accepted: %v", err)
	}
}

// RFC 8032 §7.1, test 2: a secret key file in libostree's format (base64
// of seed‖public) must produce the published signature.
func TestEd25519Vector(t *testing.T) {
	seed, _ := hex.DecodeString("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
	pub, _ := hex.DecodeString("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
	want, _ := hex.DecodeString("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(append(seed, pub...))+"\n"), 0o600)
	s, err := LoadEd25519Signer(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := s.Sign([]byte{0x72})
	if !bytes.Equal(sig, want) {
		t.Fatalf("signature %x", sig)
	}
	// A secret key whose public half does not match is refused.
	bad := append(append([]byte{}, seed...), make([]byte, 32)...)
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(bad)), 0o600)
	if _, err := LoadEd25519Signer(keyFile); err == nil {
		t.Fatal("mismatched secret key accepted")
	}
}

// TestEd25519Metadata checks the detached metadata layout byte by byte,
// built here by hand from the GVariant rules: {"ostree.sign.ed25519":
// <[sig]>} as a{sv} holding aay.
func TestEd25519Metadata(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	priv := ed25519.NewKeyFromSeed(seed)
	s, _ := NewEd25519Signer(priv)
	r, c := newRepo(t, repo.ModeBare)
	if err := SignCommit(r, c, s); err != nil {
		t.Fatal(err)
	}
	data, _ := r.ReadMeta(object.TypeCommit, c)
	sig := ed25519.Sign(priv, data)
	raw, err := os.ReadFile(r.ObjectPath(c, object.TypeCommitMeta))
	if err != nil {
		t.Fatal(err)
	}
	// Entry: key "ostree.sign.ed25519\0" (20 bytes), pad to 24, variant:
	// aay = sig (64) + 1 offset byte (64), then "\0aay"; entry framing
	// offset of the key end (20); array framing offset of the entry end.
	var want []byte
	want = append(want, "ostree.sign.ed25519\x00"...)
	want = append(want, 0, 0, 0, 0)
	want = append(want, sig...)
	want = append(want, 64)
	want = append(want, 0, 'a', 'a', 'y')
	want = append(want, 20)
	want = append(want, byte(len(want)))
	if !bytes.Equal(raw, want) {
		t.Fatalf("commitmeta\n got %x\nwant %x", raw, want)
	}
	// A clean verifier (only the standard library) accepts it.
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), data, raw[24:88]) {
		t.Fatal("stored signature does not verify")
	}
	// And our verifier, through a public key file; revoked: refused.
	pubFile := filepath.Join(t.TempDir(), "trusted.ed25519")
	os.WriteFile(pubFile, []byte("# comment\n"+s.KeyID()+"\n"), 0o644)
	keys, err := LoadEd25519PublicKeys(pubFile)
	if err != nil || len(keys) != 1 {
		t.Fatal(keys, err)
	}
	if _, err := VerifyCommit(r, c, &Ed25519Verifier{Trusted: keys}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCommit(r, c, &Ed25519Verifier{Trusted: keys, Revoked: keys}); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("revoked key accepted: %v", err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyCommit(r, c, &Ed25519Verifier{Trusted: []ed25519.PublicKey{otherPriv.Public().(ed25519.PublicKey)}}); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("untrusted key accepted: %v", err)
	}
}

func FuzzReadKeys(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte{0x99, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := ReadKeys(data)
		if err == nil {
			v := &GPGVerifier{Keyring: el}
			v.Verify([]byte("x"), [][]byte{data})
		}
	})
}

// FuzzVerify feeds arbitrary detached metadata to both verifiers.
func FuzzVerify(f *testing.F) {
	seed := bytes.Repeat([]byte{9}, 32)
	priv := ed25519.NewKeyFromSeed(seed)
	s, _ := NewEd25519Signer(priv)
	var m object.Metadata
	Append(&m, []byte("data"), s)
	b, _ := object.MarshalMetadata(m)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := object.UnmarshalMetadata(data)
		if err != nil {
			return
		}
		ids, err := Verify([]byte("data"), m, &Ed25519Verifier{Trusted: []ed25519.PublicKey{s.Public()}}, &GPGVerifier{})
		if err == nil {
			t.Fatalf("verified without trusted OpenPGP keys: %v", ids)
		}
	})
}
