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
	return errors.New("ostree gpg-sign: not implemented by os-update")
}
