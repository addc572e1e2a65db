package sign

import (
	"context"
	"fmt"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// SignCommit appends a signature by s to the commit's detached metadata,
// keeping every other key, and stores it through a transaction.
func SignCommit(r *repo.Repo, commit object.Checksum, s Signer) error {
	data, err := r.ReadMeta(object.TypeCommit, commit)
	if err != nil {
		return fmt.Errorf("sign commit %s: %w", commit, err)
	}
	if object.SumMeta(data) != commit {
		return fmt.Errorf("sign commit %s: stored object is corrupt", commit)
	}
	m, err := r.ReadCommitMeta(commit)
	if err != nil {
		return fmt.Errorf("sign commit %s: %w", commit, err)
	}
	if err := Append(&m, data, s); err != nil {
		return fmt.Errorf("sign commit %s: %w", commit, err)
	}
	err = r.Update(context.Background(), func(tx *repo.Transaction) error {
		return tx.WriteCommitMeta(commit, m)
	})
	if err != nil {
		return fmt.Errorf("sign commit %s: %w", commit, err)
	}
	return nil
}

// VerifyCommit checks a stored commit's detached signatures with every
// verifier and returns the keys that signed.
func VerifyCommit(r *repo.Repo, commit object.Checksum, verifiers ...Verifier) ([]string, error) {
	data, err := r.ReadMeta(object.TypeCommit, commit)
	if err != nil {
		return nil, fmt.Errorf("verify commit %s: %w", commit, err)
	}
	if object.SumMeta(data) != commit {
		return nil, fmt.Errorf("verify commit %s: stored object is corrupt", commit)
	}
	m, err := r.ReadCommitMeta(commit)
	if err != nil {
		return nil, fmt.Errorf("verify commit %s: %w", commit, err)
	}
	ids, err := Verify(data, m, verifiers...)
	if err != nil {
		return nil, fmt.Errorf("verify commit %s: %w", commit, err)
	}
	return ids, nil
}
