// Package sign creates and checks the signatures libostree attaches to
// commits (in the commit's detached metadata) and to summaries (summary.sig):
// detached binary OpenPGP signatures under "ostree.gpgsigs" and raw 64-byte
// Ed25519 signatures under "ostree.sign.ed25519", both of type aay.
//
// Both kinds sign the exact bytes of the .commit object or summary file.
// A verifier accepts the data when at least one stored signature verifies
// against a trusted key that is neither expired nor revoked.
package sign

import (
	"errors"
	"fmt"

	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// Metadata keys under which libostree stores signatures.
const (
	KeyGPG     = "ostree.gpgsigs"
	KeyEd25519 = "ostree.sign.ed25519"
)

// ErrNoValidSignature is wrapped when no signature verified.
var ErrNoValidSignature = errors.New("no valid signature")

// Signer produces one detached signature of a kind identified by its
// metadata key.
type Signer interface {
	// MetadataKey is the a{sv} key the signature is appended under.
	MetadataKey() string
	// Sign returns a detached signature of data.
	Sign(data []byte) ([]byte, error)
	// KeyID names the key for messages.
	KeyID() string
	// HasSigned reports whether one of sigs is this key's signature.
	HasSigned(data []byte, sigs [][]byte) bool
}

// Verifier checks the signatures of one kind stored in metadata.
type Verifier interface {
	MetadataKey() string
	// Verify returns which key made a valid signature over data, or an
	// error wrapping ErrNoValidSignature.
	Verify(data []byte, sigs [][]byte) (string, error)
}

// Signatures returns the aay list stored under key, or nil.
func Signatures(m object.Metadata, key string) ([][]byte, error) {
	v, ok := m.Get(key)
	if !ok {
		return nil, nil
	}
	if v.Type == nil || v.Type.String() != "aay" {
		return nil, fmt.Errorf("%s: type %v, want aay", key, v.Type)
	}
	list, ok := v.Value.([]gvariant.Value)
	if !ok {
		return nil, fmt.Errorf("%s: malformed value", key)
	}
	out := make([][]byte, 0, len(list))
	for _, e := range list {
		b, ok := e.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s: malformed element", key)
		}
		out = append(out, b)
	}
	return out, nil
}

func setSignatures(m *object.Metadata, key string, sigs [][]byte) {
	vals := make([]gvariant.Value, len(sigs))
	for i, s := range sigs {
		vals[i] = s
	}
	m.Set(key, gvariant.NewVariant("aay", vals))
}

// ErrAlreadySigned is returned by Append when the key signed already.
var ErrAlreadySigned = errors.New("already signed by this key")

// Append signs data with s and appends the signature to m under the
// signer's key. Like `ostree gpg-sign`, it refuses a second signature by
// the same key.
func Append(m *object.Metadata, data []byte, s Signer) error {
	sigs, err := Signatures(*m, s.MetadataKey())
	if err != nil {
		return err
	}
	if s.HasSigned(data, sigs) {
		return fmt.Errorf("key %s: %w", s.KeyID(), ErrAlreadySigned)
	}
	sig, err := s.Sign(data)
	if err != nil {
		return fmt.Errorf("sign with %s: %w", s.KeyID(), err)
	}
	setSignatures(m, s.MetadataKey(), append(sigs, sig))
	return nil
}

// Verify checks data against every verifier: each must find a valid
// signature of its kind in m. It returns the verified key IDs.
func Verify(data []byte, m object.Metadata, verifiers ...Verifier) ([]string, error) {
	var ids []string
	for _, v := range verifiers {
		sigs, err := Signatures(m, v.MetadataKey())
		if err != nil {
			return nil, err
		}
		if len(sigs) == 0 {
			return nil, fmt.Errorf("%s: no signatures: %w", v.MetadataKey(), ErrNoValidSignature)
		}
		id, err := v.Verify(data, sigs)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
