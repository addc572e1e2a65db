package ostreecli

import (
	"context"
	"errors"
	"fmt"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
)

// writeCommitMeta replaces a commit's detached metadata.
func writeCommitMeta(r *repo.Repo, sum object.Checksum, m object.Metadata) error {
	return r.Update(context.Background(), func(tx *repo.Transaction) error { return tx.WriteCommitMeta(sum, m) })
}

// ed25519Signer makes the signer of `--sign=KEY --sign-type=ed25519`:
// KEY is a base64 secret key (seed and public key).
func ed25519Signer(signType, key string) (sign.Signer, error) {
	if signType != "" && signType != "ed25519" {
		return nil, fmt.Errorf("Requested signature type is not implemented")
	}
	return nil, errors.New("ostree --sign: not implemented by os-update")
}

// printSignatures prints what `ostree show` says about a commit's GPG
// signatures.
func printSignatures(e *env, r *repo.Repo, sum object.Checksum, gpgHome, remote string) error {
	return nil
}

func runGPGSign(ctx context.Context, e *env, args []string) error {
	c := newCmd("gpg-sign", "COMMIT KEY-ID...", "Sign a commit", true)
	var del bool
	var home string
	c.flag("delete", 'd', &del, "Delete signatures having any of the GPG KEY-IDs")
	c.str("gpg-homedir", 0, &home, "HOMEDIR", "GPG Homedir to use when looking for keyrings")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return c.usageError(e, "Need a COMMIT to sign or verify")
	}
	if del {
		return errors.New("ostree gpg-sign --delete: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := resolve(r, pos[0])
	if err != nil {
		return err
	}
	for _, key := range pos[1:] {
		s, err := sign.GPGSignerFromHomedir(home, key)
		if err != nil {
			return err
		}
		if err := sign.SignCommit(r, sum, s); err != nil && !errors.Is(err, sign.ErrAlreadySigned) {
			return err
		}
	}
	return nil
}
