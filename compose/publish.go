package compose

import (
	"context"
	"fmt"
	"io"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// Publish describes what happens around a new commit: signatures, a
// static delta from the ref's previous commit, and a new signed summary.
type Publish struct {
	Signers   []sign.Signer
	NoDelta   bool
	NoSummary bool
	Log       io.Writer // nil: quiet
}

// Hooks returns the Options.Sign and Options.PostCommit functions. The
// delta comes before the summary so that the summary lists it.
func (p Publish) Hooks() (func(*repo.Repo, object.Checksum) error, func(context.Context, *repo.Repo, string, object.Checksum, object.Checksum) error) {
	log := p.Log
	if log == nil {
		log = io.Discard
	}
	var signFn func(*repo.Repo, object.Checksum) error
	if len(p.Signers) > 0 {
		signFn = func(r *repo.Repo, c object.Checksum) error {
			for _, s := range p.Signers {
				if err := sign.SignCommit(r, c, s); err != nil {
					return fmt.Errorf("sign with %s: %w", s.KeyID(), err)
				}
				fmt.Fprintf(log, "Signed commit %s with %s\n", c, s.KeyID())
			}
			return nil
		}
	}
	post := func(ctx context.Context, r *repo.Repo, ref string, parent, commit object.Checksum) error {
		if !p.NoDelta && !parent.IsZero() {
			if _, err := delta.Generate(ctx, r, parent, commit, delta.GenerateOptions{}); err != nil {
				return fmt.Errorf("static delta %s-%s: %w", parent, commit, err)
			}
			fmt.Fprintf(log, "Generated static delta %s-%s\n", parent, commit)
		}
		if !p.NoSummary {
			if _, err := summary.Update(r, summary.Options{Signers: p.Signers}); err != nil {
				return fmt.Errorf("update summary: %w", err)
			}
			signed := ""
			if len(p.Signers) > 0 {
				signed = " (signed)"
			}
			fmt.Fprintf(log, "Updated summary%s\n", signed)
		}
		return nil
	}
	return signFn, post
}
