package sign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyFileSize bounds a key file read into memory.
const maxKeyFileSize = 16 << 20

// GPGSigner makes detached binary OpenPGP signatures, as gpgme's detach
// mode does for libostree.
type GPGSigner struct {
	entity *openpgp.Entity
	key    openpgp.Key
	now    func() time.Time
}

// MetadataKey implements Signer.
func (s *GPGSigner) MetadataKey() string { return KeyGPG }

// KeyID implements Signer: the primary key's fingerprint in upper-case hex.
func (s *GPGSigner) KeyID() string { return fingerprint(s.entity) }

// Sign implements Signer.
func (s *GPGSigner) Sign(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	cfg := &packet.Config{DefaultHash: crypto.SHA256, Time: s.now, SigningKeyId: s.key.PublicKey.KeyId}
	if err := openpgp.DetachSign(&buf, s.entity, bytes.NewReader(data), cfg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// HasSigned implements Signer: a signature issued by this key that verifies.
func (s *GPGSigner) HasSigned(data []byte, sigs [][]byte) bool {
	v := &GPGVerifier{Keyring: openpgp.EntityList{s.entity}, Now: s.now}
	for _, sig := range sigs {
		if _, err := v.verifyOne(data, sig); err == nil {
			return true
		}
	}
	return false
}

// PublicKey returns the signer's public key, ASCII-armored.
func (s *GPGSigner) PublicKey() ([]byte, error) {
	var buf bytes.Buffer
	if err := ExportPublic(&buf, s.entity); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

// matchesKeyID reports whether id (a fingerprint, long or short key ID,
// optionally 0x-prefixed) names e or one of its subkeys.
func matchesKeyID(e *openpgp.Entity, id string) bool {
	id = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(id, "0x"), "0X"))
	if id == "" {
		return true
	}
	fps := []string{fingerprint(e)}
	for _, sk := range e.Subkeys {
		fps = append(fps, strings.ToUpper(fmt.Sprintf("%x", sk.PublicKey.Fingerprint)))
	}
	for _, fp := range fps {
		if len(id) >= 8 && strings.HasSuffix(fp, id) {
			return true
		}
	}
	return false
}

// ReadKeys parses OpenPGP keys, ASCII-armored or binary.
func ReadKeys(data []byte) (openpgp.EntityList, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")) {
		var all openpgp.EntityList
		// A file may hold several armored blocks one after another.
		rest := trimmed
		for len(rest) > 0 {
			end := bytes.Index(rest, []byte("-----END PGP"))
			if end < 0 {
				return nil, errors.New("unterminated armored block")
			}
			nl := bytes.IndexByte(rest[end:], '\n')
			blockEnd := len(rest)
			if nl >= 0 {
				blockEnd = end + nl + 1
			}
			el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(rest[:blockEnd]))
			if err != nil {
				return nil, err
			}
			all = append(all, el...)
			rest = bytes.TrimSpace(rest[blockEnd:])
		}
		return all, nil
	}
	return openpgp.ReadKeyRing(bytes.NewReader(data))
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFileSize)
	}
	buf := make([]byte, st.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

// LoadKeyring reads public keys from files and directories. A directory
// contributes every regular *.gpg, *.asc and *.pub file in it, in name
// order (like trusted.gpg.d). GnuPG's own keybox (pubring.kbx) is not
// read: export keys with `gpg --export` instead.
func LoadKeyring(paths ...string) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		files := []string{p}
		if st.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("keyring: %w", err)
			}
			files = files[:0]
			for _, e := range ents {
				ext := filepath.Ext(e.Name())
				if e.Type().IsRegular() && (ext == ".gpg" || ext == ".asc" || ext == ".pub") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
		}
		for _, fp := range files {
			data, err := readLimited(fp)
			if err != nil {
				return nil, fmt.Errorf("keyring: %w", err)
			}
			el, err := ReadKeys(data)
			if err != nil {
				return nil, fmt.Errorf("keyring %s: %w", fp, err)
			}
			all = append(all, el...)
		}
	}
	return all, nil
}

// NewGPGSigner picks the signing key named by keyID (fingerprint or key
// ID; "" for the first usable one) among entities with private keys.
// Passphrase-protected keys are refused: signing runs unattended.
func NewGPGSigner(keys openpgp.EntityList, keyID string) (*GPGSigner, error) {
	now := time.Now
	for _, e := range keys {
		if e.PrivateKey == nil || !matchesKeyID(e, keyID) {
			continue
		}
		k, ok := e.SigningKey(now())
		if !ok {
			continue
		}
		if k.PrivateKey == nil {
			continue
		}
		if k.PrivateKey.Encrypted {
			return nil, fmt.Errorf("key %s is passphrase-protected; export it without a passphrase", fingerprint(e))
		}
		return &GPGSigner{entity: e, key: k, now: now}, nil
	}
	if keyID == "" {
		return nil, errors.New("no usable OpenPGP signing key with a secret part")
	}
	return nil, fmt.Errorf("no usable OpenPGP signing key %s with a secret part", keyID)
}

// LoadGPGSigner reads a secret key file (armored or binary, as written by
// `gpg --export-secret-keys`).
func LoadGPGSigner(path, keyID string) (*GPGSigner, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("gpg key: %w", err)
	}
	keys, err := ReadKeys(data)
	if err != nil {
		return nil, fmt.Errorf("gpg key %s: %w", path, err)
	}
	s, err := NewGPGSigner(keys, keyID)
	if err != nil {
		return nil, fmt.Errorf("gpg key %s: %w", path, err)
	}
	return s, nil
}

// GPGSignerFromHomedir exports keyID's secret key from a GnuPG home
// directory with the gpg program (GnuPG's private key store has no stable
// format of its own to read) and returns a signer for it.
func GPGSignerFromHomedir(homedir, keyID string) (*GPGSigner, error) {
	if keyID == "" {
		return nil, errors.New("gpg homedir: a key ID is required")
	}
	args := []string{"--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", keyID}
	if homedir != "" {
		args = append([]string{"--homedir", homedir}, args...)
	}
	cmd := exec.Command("gpg", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg --export-secret-keys %s: %w: %s", keyID, err, strings.TrimSpace(errb.String()))
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("gpg homedir %s: no secret key %s", homedir, keyID)
	}
	keys, err := ReadKeys(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("gpg homedir %s: %w", homedir, err)
	}
	return NewGPGSigner(keys, keyID)
}

// GPGVerifier checks OpenPGP signatures against a keyring. Expired and
// revoked keys, and expired signatures, never verify.
type GPGVerifier struct {
	Keyring openpgp.EntityList
	Now     func() time.Time // nil: time.Now
}

// MetadataKey implements Verifier.
func (v *GPGVerifier) MetadataKey() string { return KeyGPG }

func (v *GPGVerifier) verifyOne(data, sig []byte) (*openpgp.Entity, error) {
	now := v.Now
	if now == nil {
		now = time.Now
	}
	cfg := &packet.Config{Time: now}
	return openpgp.CheckDetachedSignature(v.Keyring, bytes.NewReader(data), bytes.NewReader(sig), cfg)
}

// Verify implements Verifier. libostree hands gpgme all signatures as one
// packet stream; checking them one by one accepts the same set.
func (v *GPGVerifier) Verify(data []byte, sigs [][]byte) (string, error) {
	if len(v.Keyring) == 0 {
		return "", fmt.Errorf("gpg: no trusted keys: %w", ErrNoValidSignature)
	}
	var reasons []string
	for i, sig := range sigs {
		e, err := v.verifyOne(data, sig)
		if err == nil {
			return fingerprint(e), nil
		}
		reasons = append(reasons, fmt.Sprintf("signature %d: %v", i, err))
	}
	return "", fmt.Errorf("gpg: %s: %w", strings.Join(reasons, "; "), ErrNoValidSignature)
}

// ExportPublic writes e's public key, ASCII-armored.
func ExportPublic(w io.Writer, e *openpgp.Entity) error {
	aw, err := armor.Encode(w, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.Serialize(aw); err != nil {
		return err
	}
	return aw.Close()
}
