package sign

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Ed25519Signer makes raw 64-byte Ed25519 signatures (libsodium's detached
// form), as libostree's "ed25519" sign type stores them.
type Ed25519Signer struct {
	key ed25519.PrivateKey
}

// NewEd25519Signer wraps a 64-byte secret key (seed followed by public key).
func NewEd25519Signer(key ed25519.PrivateKey) (*Ed25519Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 secret key: %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	// The public half is stored in the key; reject a mismatching one.
	if !bytes.Equal(ed25519.NewKeyFromSeed(key.Seed()), key) {
		return nil, fmt.Errorf("ed25519 secret key: public half does not match the seed")
	}
	return &Ed25519Signer{key: key}, nil
}

// LoadEd25519Signer reads a secret key file: base64 of the 64-byte key on
// the first non-empty line, as `ostree sign --keys-file` takes it.
func LoadEd25519Signer(path string) (*Ed25519Signer, error) {
	keys, err := readBase64Keys(path, ed25519.PrivateKeySize)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ed25519 key %s: no key", path)
	}
	s, err := NewEd25519Signer(ed25519.PrivateKey(keys[0]))
	if err != nil {
		return nil, fmt.Errorf("ed25519 key %s: %w", path, err)
	}
	return s, nil
}

// MetadataKey implements Signer.
func (s *Ed25519Signer) MetadataKey() string { return KeyEd25519 }

// KeyID implements Signer: the base64 public key, as libostree names keys.
func (s *Ed25519Signer) KeyID() string {
	return base64.StdEncoding.EncodeToString(s.key.Public().(ed25519.PublicKey))
}

// Public returns the public key.
func (s *Ed25519Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign implements Signer.
func (s *Ed25519Signer) Sign(data []byte) ([]byte, error) { return ed25519.Sign(s.key, data), nil }

// HasSigned implements Signer.
func (s *Ed25519Signer) HasSigned(data []byte, sigs [][]byte) bool {
	pub := s.Public()
	for _, sig := range sigs {
		if len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, data, sig) {
			return true
		}
	}
	return false
}

// Ed25519Verifier checks Ed25519 signatures against trusted public keys;
// a key also listed as revoked never verifies.
type Ed25519Verifier struct {
	Trusted []ed25519.PublicKey
	Revoked []ed25519.PublicKey
}

// MetadataKey implements Verifier.
func (v *Ed25519Verifier) MetadataKey() string { return KeyEd25519 }

func (v *Ed25519Verifier) revoked(k ed25519.PublicKey) bool {
	for _, r := range v.Revoked {
		if bytes.Equal(r, k) {
			return true
		}
	}
	return false
}

// Verify implements Verifier.
func (v *Ed25519Verifier) Verify(data []byte, sigs [][]byte) (string, error) {
	usable := 0
	for _, k := range v.Trusted {
		if len(k) != ed25519.PublicKeySize || v.revoked(k) {
			continue
		}
		usable++
		for _, sig := range sigs {
			if len(sig) == ed25519.SignatureSize && ed25519.Verify(k, data, sig) {
				return base64.StdEncoding.EncodeToString(k), nil
			}
		}
	}
	if usable == 0 {
		return "", fmt.Errorf("ed25519: no trusted keys that are not revoked: %w", ErrNoValidSignature)
	}
	return "", fmt.Errorf("ed25519: none of %d signatures matches %d trusted keys: %w", len(sigs), usable, ErrNoValidSignature)
}

// ParseEd25519PublicKey decodes a base64 32-byte public key.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// LoadEd25519PublicKeys reads base64 public keys, one per line, from files
// and from every regular file of directories (like trusted.ed25519.d).
func LoadEd25519PublicKeys(paths ...string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("ed25519 keys: %w", err)
		}
		files := []string{p}
		if st.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("ed25519 keys: %w", err)
			}
			files = files[:0]
			for _, e := range ents {
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
		}
		for _, f := range files {
			keys, err := readBase64Keys(f, ed25519.PublicKeySize)
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				out = append(out, ed25519.PublicKey(k))
			}
		}
	}
	return out, nil
}

// readBase64Keys reads one base64 key per non-empty, non-comment line.
func readBase64Keys(path string, size int) ([][]byte, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 keys: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return nil, fmt.Errorf("ed25519 keys %s:%d: %w", path, line, err)
		}
		if len(b) != size {
			return nil, fmt.Errorf("ed25519 keys %s:%d: %d bytes, want %d", path, line, len(b), size)
		}
		keys = append(keys, b)
	}
	return keys, sc.Err()
}
